// The rain2avoid page: upload photos, follow their training, compare, download.
// It only talks to this server's JSON API (/api/...), like any other client.
// This tab's jobs that reached the server are listed in sessionStorage (ids and names, never
// images), so that a reload brings them back while the server still has them.
"use strict";

const $ = (id) => document.getElementById(id);
const jobs = [];          // this visit's jobs, newest last
const SAVED = "rain2avoid.jobs";   // the sessionStorage key of that list
let current = null;       // the job shown in the viewer
let maxUploadBytes = null;
const IMAGE_NAME = /\.(png|jpe?g|bmp|tiff?|webp)$/i;
const UPLOAD_TRIES = 12;  // an upload that cannot reach the server is tried again every 5 s, for a minute

function amount(value) {   // 0.4, 1.5, 12, 50: two significant digits below 10, whole numbers above
  return value >= 10 ? String(Math.round(value)) : String(Number(value.toPrecision(2)));
}

function megabytes(bytes) {   // the server's MB are MiB
  return `${amount(bytes / 1048576)} MB`;
}

function describe(job) {
  const s = job.state;
  if (job.cancelled) return "cancelled";
  if (job.lost && !job.finished()) return "cannot reach the server; retrying…";   // the last state is stale
  if (!s) return job.note || "uploading…";
  if (s.status === "queued") {
    return s.queue_position ? `waiting: ${s.queue_position} ahead` : "waiting for a worker";
  }
  if (s.status === "running") {
    if (s.stage === "rain" || !s.steps_done) return "finding the rain…";
    if (s.stage === "cleaning") return "cleaning the whole photo…";
    return `training: step ${s.steps_done} of ${s.steps_total} (${Math.round(100 * s.progress)}%)`;
  }
  if (s.status === "done") return `done in ${s.seconds.toFixed(1)} s` + (s.note ? `: ${s.note}` : "");
  return `failed: ${s.error}`;
}

function resultUrl(job, what) {
  return `/api/jobs/${job.id}/${what}`;
}

// --- gallery -----------------------------------------------------------------------------------

function addCard(job) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "card";
  const thumb = document.createElement("img");
  thumb.alt = "";
  const placeholder = document.createElement("span");
  placeholder.className = "nopreview";
  placeholder.textContent = "no preview in this browser";
  placeholder.hidden = true;
  thumb.addEventListener("error", () => {   // e.g. TIFF in Chrome, or a file that is no image
    thumb.hidden = true;
    placeholder.hidden = false;
  });
  if (job.localUrl) thumb.src = job.localUrl;   // a job brought back by a reload has no local file
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = job.name;
  const state = document.createElement("span");
  state.className = "state";
  const bar = document.createElement("progress");
  bar.max = 1;
  button.append(thumb, placeholder, name, state, bar);
  button.addEventListener("click", () => show(job));
  const stop = document.createElement("button");   // beside the card: a button cannot hold another
  stop.type = "button";
  stop.className = "cancel";
  stop.addEventListener("click", () => (job.finished() ? remove(job) : cancel(job)));
  item.append(button, stop);
  $("gallery").append(item);
  $("visit").hidden = false;
  job.card = { button, thumb, placeholder, state, bar, stop };
}

function renderCard(job) {
  const c = job.card;
  c.state.textContent = describe(job);
  c.placeholder.textContent = job.failed() ? "no preview" : "no preview in this browser";   // a bad file, or TIFF
  c.bar.value = job.state ? job.state.progress : 0;
  c.bar.hidden = !job.state || job.finished();
  const verb = job.finished() ? "Remove" : "Cancel";   // a finished card can be taken off the page
  c.stop.textContent = verb;
  c.stop.setAttribute("aria-label", `${verb} ${job.name}`);
  c.button.classList.toggle("failed", job.failed());
  c.button.classList.toggle("cancelled", job.cancelled);
  c.button.setAttribute("aria-current", job === current ? "true" : "false");
  if (job.done() && !c.thumbDone) {
    c.thumbDone = true;
    c.thumb.src = resultUrl(job, "result");
  }
}

// --- viewer ------------------------------------------------------------------------------------

function show(job) {
  current = job;
  $("viewer").hidden = false;
  $("title").textContent = job.name;
  if (job.localUrl) $("before").src = job.localUrl;
  else $("before").removeAttribute("src");
  jobs.forEach(renderCard);
  renderViewer();
}

function renderViewer() {
  const job = current;
  if (!job) return;
  const done = job.done();
  const original = Boolean(job.localUrl);   // after a reload only the result is left: no slider
  $("compare").hidden = job.failed();   // a failed job shows only its error line
  $("compare").classList.toggle("alone", !original);
  $("controls").hidden = job.failed() || job.cancelled;
  $("before").hidden = job.unviewable || !original;
  $("nopreview").hidden = !job.unviewable;
  $("busy").hidden = done;
  $("after").hidden = !done || job.unviewable;
  $("divider").hidden = !done || job.unviewable || !original;
  $("slider").parentElement.hidden = !original;
  $("alone").hidden = original;
  $("state").textContent = describe(job);
  $("progress").value = job.state ? job.state.progress : 0;
  $("progress").hidden = job.failed() || job.cancelled;
  const download = $("download");
  if (done) {
    const want = resultUrl(job, $("mask").checked ? "mask" : "result");
    if (!$("after").src.endsWith(want)) $("after").src = want;
    download.href = resultUrl(job, "result");
    download.download = job.state.filename;
    download.removeAttribute("aria-disabled");
  } else {
    download.removeAttribute("href");
    download.setAttribute("aria-disabled", "true");
  }
  $("error").hidden = !job.failed();
  $("error").textContent = job.failed() ? describe(job) : "";
}

function setSplit() {   // the derained photo is left of the split: the slider's value is how much of it shows
  const value = $("slider").value;
  $("compare").style.setProperty("--split", `${value}%`);
  $("slider").setAttribute("aria-valuetext", `${value}% derained`);
}

function dragSplit(event) {   // drag (or tap) on the picture itself moves the split too
  if (event.type === "pointermove" && !event.buttons) return;
  const box = $("compare").getBoundingClientRect();
  $("slider").value = Math.round(100 * Math.min(1, Math.max(0, (event.clientX - box.left) / box.width)));
  setSplit();
}

// --- talking to the server ---------------------------------------------------------------------

async function detail(response) {
  try {
    return (await response.json()).detail;
  } catch (e) {
    return `HTTP ${response.status}`;
  }
}

async function upload(job) {
  if (job.cancelled) return;   // cancelled while waiting to try again
  if (maxUploadBytes !== null && job.file.size > maxUploadBytes) {
    return fail(job, `the file is larger than this server's limit of ${megabytes(maxUploadBytes)}`);
  }
  const form = new FormData();
  form.append("file", job.file);
  form.append("preset", job.preset);
  let response;
  try {
    response = await fetch("/api/derain", { method: "POST", body: form });
  } catch (e) {   // the server is down or restarting: the file is still here, so try again
    job.tries += 1;
    if (job.tries >= UPLOAD_TRIES) return fail(job, `cannot reach the server (${e.message})`);
    job.note = "cannot reach the server; trying again in 5 s";
    update(job);
    setTimeout(() => upload(job), 5000);
    return;
  }
  if (response.status === 503) {   // queue full: wait as the server asks, then try again
    const wait = Number(response.headers.get("Retry-After")) || 5;
    job.note = `the server is busy; trying again in ${wait} s`;
    update(job);
    setTimeout(() => upload(job), wait * 1000);
    return;
  }
  if (response.status !== 202) return fail(job, await detail(response));
  job.id = (await response.json()).id;
  remember();
  if (job.cancelled) return cancel(job);   // cancelled while it uploaded: the server has it now
  poll(job);
}

async function poll(job) {
  if (job.cancelled) return;
  let response;
  try {
    response = await fetch(`/api/jobs/${job.id}`, { cache: "no-store" });
  } catch (e) {
    job.lost = true;
    update(job);
    setTimeout(() => poll(job), 2000);
    return;
  }
  if (job.cancelled) return;   // cancelled while this request was on its way
  job.lost = false;
  if (response.status === 404) {   // an unfinished job the server forgot: it was restarted
    return fail(job, "the server no longer has this photo's job (was it restarted?): upload the photo again");
  }
  if (!response.ok) return fail(job, await detail(response));
  job.state = await response.json();
  update(job);
  if (!job.finished()) setTimeout(() => poll(job), 400);
}

function cancel(job) {   // stop polling at once; the server forgets the job and deletes its files
  job.cancelled = true;
  update(job);
  remember();
  if (job.id) fetch(`/api/jobs/${job.id}`, { method: "DELETE" }).catch(() => {});
}

function remove(job) {   // a finished card leaves the page, and the server deletes the job's files
  const index = jobs.indexOf(job);
  if (index < 0) return;
  jobs.splice(index, 1);
  const item = job.card.button.parentElement;
  const next = item.nextElementSibling || item.previousElementSibling;
  item.remove();
  if (job.localUrl) URL.revokeObjectURL(job.localUrl);
  if (job.id && !job.cancelled) fetch(`/api/jobs/${job.id}`, { method: "DELETE" }).catch(() => {});
  remember();
  if (job === current) {
    current = null;
    if (jobs.length) show(jobs[jobs.length - 1]);
    else $("viewer").hidden = true;
  }
  if (!jobs.length && $("expired").hidden) $("visit").hidden = true;
  (next ? next.querySelector(".card") : $("drop")).focus();   // the next card itself: Enter there shows it, never cancels it
}

function fail(job, message) {
  job.state = { status: "failed", error: message, progress: 0 };
  update(job);
}

function update(job) {
  renderCard(job);
  if (job === current) renderViewer();
  const ended = job.cancelled ? "cancelled" : job.state && ["done", "failed"].includes(job.state.status);
  if (ended && !job.announced) {   // screen readers hear each photo's end once, not every progress step
    job.announced = true;
    $("announce").textContent = `${job.name}: ${describe(job)}`;
  }
}

function newJob(name, preset, file) {   // file: null for a job brought back by a reload
  return {
    name, preset, file, id: null, state: null, note: null, unviewable: false, cancelled: false, lost: false, tries: 0,
    localUrl: file ? URL.createObjectURL(file) : null,   // the original, for the viewer's "before" side
    done() { return this.state && this.state.status === "done"; },
    failed() { return this.state && this.state.status === "failed"; },
    finished() { return this.cancelled || this.done() || this.failed(); },
  };
}

function addFiles(fileList) {
  const preset = $("preset").value;
  for (const file of fileList) {
    const job = newJob(file.name, preset, file);
    jobs.push(job);
    addCard(job);
    if (!current || current.finished()) show(job);
    update(job);
    if (file.type.startsWith("image/") || IMAGE_NAME.test(file.name)) upload(job);
    else fail(job, "the file is not an image (expected PNG, JPEG, BMP, TIFF or WebP)");
  }
}

// --- surviving a reload ------------------------------------------------------------------------

function remember() {   // this tab's jobs that reached the server (uploads still on their way cannot come back)
  const saved = jobs.filter((job) => job.id)
    .map(({ id, name, preset, cancelled }) => ({ id, name, preset, cancelled }));
  try {
    sessionStorage.setItem(SAVED, JSON.stringify(saved));
  } catch (e) {}   // storage off or full: a reload then starts empty, as without it
}

function recalled() {   // what remember() saved in this tab, or nothing
  try {
    const saved = JSON.parse(sessionStorage.getItem(SAVED));
    return Array.isArray(saved) ? saved : [];
  } catch (e) {
    return [];
  }
}

async function restore() {   // after a reload: the saved jobs get their cards back, unless the server forgot them
  const saved = recalled();
  const answers = await Promise.all(saved.map((s) => s.cancelled ? null
    : fetch(`/api/jobs/${s.id}`, { cache: "no-store" }).catch(() => null)));
  let expired = 0;
  for (const [k, s] of saved.entries()) {
    const response = answers[k];
    if (response && response.status === 404) {   // expired, or deleted: dropped
      expired += 1;
      continue;
    }
    const job = newJob(s.name, s.preset, null);
    Object.assign(job, { id: s.id, cancelled: Boolean(s.cancelled), note: "asking the server…" });
    if (response && response.ok) job.state = await response.json();
    jobs.push(job);
    addCard(job);
    if (!current || current.finished()) show(job);
    update(job);
    if (!job.finished()) poll(job);   // queued or running: follow it (a request that failed above is retried)
  }
  remember();
  if (expired) {
    $("expired").textContent = `${expired === 1 ? "1 photo" : `${expired} photos`} from before the reload`
      + (expired === 1 ? " is no longer on the server (its result expired, or the server was restarted)."
        : " are no longer on the server (their results expired, or the server was restarted).");
    $("expired").hidden = false;
    $("visit").hidden = false;
  }
}

// --- wiring ------------------------------------------------------------------------------------

function start() {
  $("files").addEventListener("change", (event) => {
    addFiles(event.target.files);
    event.target.value = "";
  });
  const drop = $("drop");
  document.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  document.addEventListener("dragleave", (event) => {
    if (!event.relatedTarget) drop.classList.remove("over");
  });
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    addFiles(event.dataTransfer.files);   // a non-image gets its own card saying so
  });
  drop.addEventListener("keydown", (event) => {   // the drop zone is a tab stop: Enter or Space chooses files
    if (event.target !== drop || !["Enter", " "].includes(event.key)) return;
    event.preventDefault();
    $("files").click();
  });
  window.addEventListener("beforeunload", (event) => {   // leaving would lose the unfinished jobs
    if (jobs.every((job) => job.finished())) return;
    event.preventDefault();
    event.returnValue = "";
  });
  $("slider").addEventListener("input", setSplit);
  $("compare").addEventListener("pointerdown", dragSplit);
  $("compare").addEventListener("pointermove", dragSplit);
  $("mask").addEventListener("change", renderViewer);
  $("after").addEventListener("error", () => {   // a TIFF result shown alone after a reload: the note, as below
    if (!current || !$("after").src.endsWith(resultUrl(current, "result"))) return;
    current.unviewable = true;
    renderViewer();
  });
  $("before").addEventListener("error", () => {   // e.g. TIFF in Chrome: a lasting note, not a broken image
    const job = jobs.find((j) => j.localUrl === $("before").src);
    if (!job) return;
    job.unviewable = true;
    if (job === current) renderViewer();
  });
  setSplit();
  fetch("/api/config").then((r) => r.json()).then((config) => {
    maxUploadBytes = config.max_upload_bytes;
    const pixels = config.max_pixels ? ` and ${amount(config.max_pixels / 1e6)} MP` : "";
    $("limits").textContent = `up to ${megabytes(maxUploadBytes)}${pixels} per photo`;
  }).catch(() => {});
  restore();
}

start();
