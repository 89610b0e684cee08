"""A picture report: one self-contained HTML page that shows what deraining did to a folder.

For each image (inputs and results paired by file stem): input | result | rain
mask, a before/after slider, and the scores: NIQE and BRISQUE of input and
result always, PSNR and SSIM (Y) against clean images when a target folder is
given. A summary table on top gives the means and how many images improved;
the table of images under it sorts by a column when its heading is clicked
(scores: by the result's).
Everything is inside the one file: pictures as base64 ``data:`` URIs (shrunk
to a display width), inline CSS and JavaScript, no external reference.

>>> from rain2avoid.report import build_report
>>> build_report("rainy/", "derained/", "report.html", target="clean/")
"""

from __future__ import annotations

import base64
import html
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np
from tqdm.auto import tqdm

from .batch.plan import same_file
from .io import DEFAULT_MAX_PIXELS, list_images, read_image, same_pixels, to_float_rgb, to_uint8
from .detect import compute_mask
from .files import write_bytes
from .ldgp import RAIN_LEVEL
from .metrics import as_rgb, psnr, ssim
from .noref import brisque, niqe
from .pairing import ambiguous_pair, by_stem

__all__ = ["build_report", "Report", "NoImages", "METRICS", "MAX_PSNR"]

MAX_PSNR = 100.0
"""PSNR above this (identical images: infinite) counts as this, as in ``rain2avoid eval``."""

# key, label, decimals, whether higher is better, needs clean images
METRICS = (("niqe", "NIQE", 4, False, False), ("brisque", "BRISQUE", 3, False, False),
           ("psnr_y", "PSNR-Y (dB)", 2, True, True), ("ssim_y", "SSIM-Y", 4, True, True))


@dataclass
class Report:
    """What :func:`build_report` did: the file, the images in it, the problems met (one line each:
    a file left out or unusable) and the notes (one line each: a score undefined for an image,
    results without an input)."""

    path: Path
    images: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def _by_stem(folder: Optional[Path]) -> dict[str, list[Path]]:
    return by_stem(list_images(folder)) if folder is not None else {}


def _try(score: Callable, *images, undefined: Optional[set] = None) -> Optional[float]:
    """A score, or None where it is undefined for these images (too small, flat): why is added
    to ``undefined``."""
    try:
        return float(score(*images))
    except ValueError as e:
        if undefined is not None:
            undefined.add(" ".join(str(e).split()))
        return None


def _data_uri(rgb8: np.ndarray, max_width: int, png: bool = False, size: Optional[tuple] = None) -> str:
    """``rgb8`` (uint8, gray or RGB) shrunk to ``max_width`` (or to ``size``) as a base64 JPEG/PNG URI."""
    h, w = rgb8.shape[:2]
    if size is None:
        size = (w, h) if w <= max_width else (max_width, max(1, round(h * max_width / w)))
    if size != (w, h):
        rgb8 = cv2.resize(rgb8, size, interpolation=cv2.INTER_NEAREST if png else cv2.INTER_AREA)
    pixels = rgb8 if rgb8.ndim == 2 else cv2.cvtColor(rgb8, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".png" if png else ".jpg", pixels, [] if png else [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise ValueError(f"could not encode a {w}x{h} picture for the report")
    kind = "png" if png else "jpeg"
    return f"data:image/{kind};base64," + base64.b64encode(data.tobytes()).decode("ascii")


def _mask_file(source: Path, masks: Optional[Path], files: dict[str, list[Path]], plain: bool,
               problems: list) -> Optional[Path]:
    """The mask file of ``source`` in the folder ``masks``: ``<stem>_mask.*``, or ``<stem>.*`` where
    ``plain`` (a folder of masks only, as ``rain2avoid mask`` writes); None, with a problem said when
    ``masks`` is given, where there is none or more than one."""
    if masks is None:
        return None
    stem = source.stem
    for name in (f"{stem}_mask", stem) if plain else (f"{stem}_mask",):
        if len(files.get(name, [])) == 1:
            return files[name][0]
        if name in files:
            problems.append(f"{ambiguous_pair(stem, [source], files[name])}; the mask shown is computed")
            return None
    names = f"{stem}_mask.* or {stem}.*" if plain else f"{stem}_mask.*"
    problems.append(f"{source}: no mask named {names} in {masks} (derain --save-intermediates writes "
                    f"{stem}_mask.png); the mask shown is computed")
    return None


def _mask_for(path: Optional[Path], rgb8: np.ndarray, max_pixels, problems: list) -> tuple[np.ndarray, bool]:
    """The mask in the file ``path``, else the guarded LDGP mask; and whether it came from the file."""
    if path is not None:
        try:
            picture = to_uint8(to_float_rgb(read_image(path, max_pixels=max_pixels)))
            mask = picture.max(axis=2)
            if int(np.abs(picture - picture.min(axis=2, keepdims=True)).max()) > 16:   # JPEG's colour noise passes
                problems.append(f"{path}: is a colour picture, not a rain mask (a mask is grey: white where the "
                                "rain is); the mask shown is computed")
            elif mask.shape == rgb8.shape[:2]:
                return mask, True
            problems.append(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, the image "
                            f"{rgb8.shape[1]}x{rgb8.shape[0]}; the mask shown is computed")
        except ValueError as e:
            problems.append(f"{' '.join(str(e).split())}; the mask shown is computed")
    return compute_mask(rgb8, "guarded").mask, False


def _entry(stem: str, paths: dict, max_width: int, max_pixels, problems: list, undefined: set) -> dict:
    """Scores and pictures of one image; ValueError (one line) when its input or result is unusable.
    Why a score is undefined for it (too small, flat) is added to ``undefined``."""
    image = read_image(paths["input"], max_pixels=max_pixels)
    result = read_image(paths["result"], max_pixels=max_pixels)
    if image.shape[:2] != result.shape[:2]:
        raise ValueError(f"{paths['result']}: the result is {result.shape[1]}x{result.shape[0]}, its input "
                         f"{image.shape[1]}x{image.shape[0]}; a result must keep the input's size")
    scores = {name: {"niqe": _try(niqe, picture, undefined=undefined),
                     "brisque": _try(brisque, picture, undefined=undefined)}
              for name, picture in (("input", image), ("result", result))}
    if "target" in paths:
        try:
            clean = read_image(paths["target"], max_pixels=max_pixels)
            if clean.shape[:2] != image.shape[:2]:
                raise ValueError(f"{paths['target']}: the clean image is {clean.shape[1]}x{clean.shape[0]}, "
                                 f"the input {image.shape[1]}x{image.shape[0]}")
            clean = as_rgb(clean)
            for name, picture in (("input", as_rgb(image)), ("result", as_rgb(result))):
                p = _try(psnr, picture, clean, "y")
                scores[name]["psnr_y"] = None if p is None else min(p, MAX_PSNR)
                scores[name]["ssim_y"] = _try(ssim, picture, clean, "y")
        except ValueError as e:
            problems.append(f"{' '.join(str(e).split())} (no PSNR/SSIM for {stem})")
    rgb8, out8 = to_uint8(to_float_rgb(image)), to_uint8(to_float_rgb(result))
    mask, from_file = _mask_for(paths.get("mask"), rgb8, max_pixels, problems)
    shown = _data_uri(rgb8, max_width)
    h, w = rgb8.shape[:2]
    size = (w, h) if w <= max_width else (max_width, max(1, round(h * max_width / w)))
    return {"name": stem, "width": w, "height": h, "shown_width": size[0], "scores": scores,
            "rain": round(float(np.mean(mask > RAIN_LEVEL)), 4), "mask_file": from_file,
            "unchanged": same_pixels(image, result),
            "pictures": {"input": shown, "result": _data_uri(out8, max_width, size=size),
                         "mask": _data_uri(mask, max_width, png=True, size=size)}}


def _summary(entries: list[dict]) -> list[dict]:
    """Per metric: mean of input and result over images with both, and how many images improved."""
    rows = []
    for key, label, decimals, higher, _ in METRICS:
        pairs = [(e["scores"]["input"].get(key), e["scores"]["result"].get(key)) for e in entries]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        if pairs:
            a, b = np.mean(pairs, axis=0)
            better = sum((y > x) if higher else (y < x) for x, y in pairs)
            rows.append({"key": key, "label": label, "decimals": decimals, "input": float(a), "result": float(b),
                         "improved": int(better), "n": len(pairs), "higher_is_better": higher})
    return rows


class NoImages(ValueError):
    """The folder of inputs holds no image: there is nothing to report."""


def build_report(inputs, outputs, path, target=None, masks=None, max_width: int = 1200,
                 title: str = "rain2avoid report", max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                 progress: bool = False, on_problem: Optional[Callable[[str], None]] = None,
                 on_note: Optional[Callable[[str], None]] = None) -> Report:
    """Write the HTML report of the rainy ``inputs`` and their derained ``outputs`` (folders) to ``path``.

    Images pair by file stem. ``target``: folder of clean images (adds PSNR/SSIM
    on Y). ``masks``: folder of rain masks, ``<stem>_mask.png`` (``derain
    --save-intermediates``), or ``<stem>.png`` (``rain2avoid mask``) in a folder
    that is not ``inputs``, ``outputs`` or ``target``; without it, or where an
    image has no mask file there (reported), the guarded LDGP mask of the input
    is computed. Pictures are shrunk to ``max_width`` pixels. A missing or
    unreadable file, or a name held by two files of a folder (``a.png`` and
    ``a.jpg``: which pairs with which is unclear), is reported (in
    ``Report.problems`` and to ``on_problem``) and its image left out. A score
    undefined for an image (NIQE below 192x96 pixels, a flat image) shows as
    n/a, and results without an input are left out; both are noted (in
    ``Report.notes`` and to ``on_note``). The file is written atomically;
    ``ValueError`` when no image could be shown.
    """
    inputs, outputs, path = Path(inputs), Path(outputs), Path(path)
    if max_width < 16:
        raise ValueError(f"max_width must be at least 16 pixels, got {max_width}")
    results, cleans, mask_files = _by_stem(outputs), _by_stem(target), _by_stem(masks)
    # <stem>.* in the folder of the inputs, results or clean images is that picture, not its mask
    plain = masks is not None and not any(same_file(Path(masks), Path(f)) for f in (inputs, outputs, target)
                                          if f is not None)
    report = Report(path)

    def problem(line: str) -> None:
        report.problems.append(line)
        if on_problem is not None:
            on_problem(line)

    def note(line: str) -> None:
        report.notes.append(line)
        if on_note is not None:
            on_note(line)

    sources = list_images(inputs)
    if not sources:
        raise NoImages(f"no images in {inputs}")
    same_stem = by_stem(sources)
    quiet = not progress or len(sources) < 2 or sys.stderr is None
    for source in tqdm(sources, desc="report", unit="image", disable=quiet):
        stem = source.stem
        if stem not in results:
            problem(f"{source}: no result named {stem}.* in {outputs}; left out")
            continue
        if len(same_stem[stem]) > 1 or len(results[stem]) > 1:
            if source == same_stem[stem][0]:  # one line for the stem
                problem(f"{ambiguous_pair(stem, same_stem[stem], results[stem])}; left out")
            continue
        paths = {"input": source, "result": results[stem][0]}
        notes: list[str] = []
        if len(cleans.get(stem, [])) == 1:
            paths["target"] = cleans[stem][0]
        elif stem in cleans:
            notes.append(f"{ambiguous_pair(stem, [source], cleans[stem])} (no PSNR/SSIM for {stem})")
        elif target is not None:
            notes.append(f"{source}: no clean image named {stem}.* in {target} (no PSNR/SSIM for it)")
        mask = _mask_file(source, masks, mask_files, plain, notes)
        if mask is not None:
            paths["mask"] = mask
        undefined: set = set()
        try:
            report.images.append(_entry(stem, paths, max_width, max_pixels, notes, undefined))
        except Exception as e:  # one bad file must not stop the report
            text = " ".join(str(e).split()) or type(e).__name__
            if str(source) not in text and str(paths["result"]) not in text:
                text = f"{source}: {text}"
            notes, undefined = [f"{text}; left out"], set()  # the image is left out: its other notes are moot
        for line in notes:
            problem(line)
        for line in sorted(undefined):
            note(f"{stem}: {line} (shown as n/a)")
    # derain --save-intermediates writes <stem>_mask.png and <stem>_reference.png beside a result: not results
    beside = {f"{stem}_{kind}" for stem in same_stem for kind in ("mask", "reference")}
    extra = [str(f) for stem, files in results.items() if stem not in same_stem and stem not in beside for f in files]
    if extra:
        note(f"{len(extra)} result(s) without an input of the same name in {inputs} are left out: "
             f"{', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")
    if not report.images:
        raise ValueError(f"nothing to report: no image of {inputs} could be shown with its result")
    page = render(report.images, _summary(report.images), title, report.problems, report.notes)
    write_bytes(path, page.encode("utf-8"))   # atomically: never a half-written page
    return report


# --- the page ------------------------------------------------------------------------------------------------------

def _fmt(value: Optional[float], decimals: int) -> str:
    return "n/a" if value is None else f"{value:.{decimals}f}"


def _change(a: Optional[float], b: Optional[float], decimals: int, higher: bool) -> str:
    if a is None or b is None:
        return "<td>n/a</td>"
    d = b - a
    kind = "same" if abs(d) < 0.5 * 10 ** -decimals else ("better" if (d > 0) == higher else "worse")
    return f'<td class="{kind}">{d:+.{decimals}f}</td>'


def render(entries: list[dict], summary: list[dict], title: str, problems: list[str],
           notes: tuple = ()) -> str:
    """The HTML page (a string) for the entries of :func:`build_report`."""
    used = [m for m in METRICS if any(e["scores"]["input"].get(m[0]) is not None or
                                      e["scores"]["result"].get(m[0]) is not None for e in entries)]
    esc = html.escape
    top = "".join(
        f'<tr><th>{esc(r["label"])}</th><td>{_fmt(r["input"], r["decimals"])}</td>'
        f'<td>{_fmt(r["result"], r["decimals"])}</td>'
        f'{_change(r["input"], r["result"], r["decimals"], r["higher_is_better"])}'
        f'<td>{r["improved"]} of {r["n"]}</td></tr>' for r in summary)
    head = _sort_heading("name", "image", "sort by name") + "".join(
        _sort_heading(k, f"{esc(label)}<br>input &rarr; result", f"sort by the result's {esc(label)}")
        for k, label, *_ in used)
    index = "".join(
        f'<tr data-i="{i}"><td><a href="#image-{i}">{esc(e["name"])}</a></td>' + "".join(
            f'<td>{_fmt(e["scores"]["input"].get(k), d)} &rarr; {_fmt(e["scores"]["result"].get(k), d)}</td>'
            for k, _, d, *_ in used) + "</tr>" for i, e in enumerate(entries))
    sections = "".join(_section(i, e, used) for i, e in enumerate(entries))
    issues = ("<details class='problems'><summary>" + f"{len(problems)} problem(s) with the files</summary><ul>"
              + "".join(f"<li>{esc(p)}</li>" for p in problems) + "</ul></details>") if problems else ""
    issues += ("<details class='notes'><summary>" + f"{len(notes)} note(s)</summary><ul>"
               + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul></details>") if notes else ""
    data = json.dumps([{"name": e["name"], "scores": e["scores"], "rain": e["rain"], "unchanged": e["unchanged"]}
                       for e in entries])
    # no '<' inside <script>: a name such as "<!--<script>" would otherwise swallow the page's script
    data = data.replace("<", "\\u003c")
    full = ("; higher PSNR and SSIM (on Y, against the clean images) are better"
            if any(m[4] for m in used) else "")
    return _PAGE.format(title=esc(title), n=len(entries), full=full, top=top, head=head, index=index, sections=sections,
                        problems=issues, data=data, css=_CSS, js=_JS)


def _sort_heading(key: str, label: str, title: str) -> str:
    """A heading of the table of images: a button that sorts the rows by ``key`` (``name``, or a key of
    METRICS: the result's score). ``label`` and ``title`` are HTML, escaped by the caller."""
    return f'<th><button type="button" class="sort" data-key="{key}" title="{title}">{label}</button></th>'


def _section(i: int, e: dict, used) -> str:
    esc, s = html.escape, e["scores"]
    rows = "".join(
        f'<tr><th>{esc(label)}</th><td>{_fmt(s["input"].get(k), d)}</td><td>{_fmt(s["result"].get(k), d)}</td>'
        f'{_change(s["input"].get(k), s["result"].get(k), d, higher)}</tr>' for k, label, d, higher, _ in used)
    pic = e["pictures"]
    name = esc(e["name"])
    mask_note = "" if e.get("mask_file") else " (computed)"
    same = ", the result is its input, unchanged" if e.get("unchanged") else ""
    return f"""
<section class="image" id="image-{i}" data-name="{name}">
  <h2>{name} <small>{e["width"]}&times;{e["height"]} px, mask covers {100 * e["rain"]:.1f}%{same}</small></h2>
  <div class="row">
    <figure><img id="in-{i}" src="{pic["input"]}" alt="input {name}"><figcaption>input</figcaption></figure>
    <figure><img id="out-{i}" src="{pic["result"]}" alt="result {name}"><figcaption>result</figcaption></figure>
    <figure><img src="{pic["mask"]}" alt="rain mask {name}"><figcaption>rain mask{mask_note}</figcaption></figure>
  </div>
  <div class="row">
    <div class="slider" data-before="in-{i}" data-after="out-{i}" style="max-width:{e["shown_width"]}px">
      <img class="after" alt="result {name}" draggable="false"><img class="before" alt="input {name}" draggable="false">
      <span class="tag left">input</span><span class="tag right">result</span><div class="bar"></div>
      <input type="range" min="0" max="100" step="1" value="50" aria-label="input / result split for {name}">
    </div>
    <table class="scores"><tr><th></th><th>input</th><th>result</th><th>change</th></tr>{rows}</table>
  </div>
</section>"""


_CSS = """
body{font:15px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}.better{color:#087a2a}.worse{color:#b3261e}
.image{border-top:2px solid #ddd;margin-top:2em}.image h2 small{font-weight:normal;color:#666;font-size:.7em}
.row{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
figure{margin:0;flex:1 1 0;min-width:200px}figure img{width:100%;display:block;background:#eee}
figcaption{text-align:center;color:#555}.problems{margin:1em 0;color:#b3261e}.notes{margin:1em 0;color:#555}
.slider{position:relative;flex:3 1 600px;user-select:none;touch-action:pan-y;cursor:ew-resize}
.slider img{display:block;width:100%}.slider .before{position:absolute;top:0;left:0;clip-path:inset(0 50% 0 0)}
.slider .bar{position:absolute;top:0;bottom:2em;left:50%;width:2px;background:#fff;box-shadow:0 0 3px #000}
.slider input{width:100%;margin:.5em 0}.tag{position:absolute;top:.4em;background:#000a;color:#fff;
padding:0 .4em;border-radius:3px;font-size:.85em}.tag.left{left:.4em}.tag.right{right:.4em}
.wide{overflow-x:auto}h2,.index td:first-child{overflow-wrap:anywhere}.index td+td{white-space:nowrap}
.sort{font:inherit;color:inherit;background:none;border:0;padding:0;cursor:pointer;
text-align:inherit}[aria-sort=ascending] .sort::after{content:" \\25B2"}
[aria-sort=descending] .sort::after{content:" \\25BC"}
"""

_JS = """
document.querySelectorAll('.slider').forEach(function (box) {
  var before = box.querySelector('.before'), after = box.querySelector('.after');
  var range = box.querySelector('input'), bar = box.querySelector('.bar');
  before.src = document.getElementById(box.dataset.before).src;
  after.src = document.getElementById(box.dataset.after).src;
  function show(v) {
    before.style.clipPath = 'inset(0 ' + (100 - v) + '% 0 0)';
    bar.style.left = v + '%';
    range.setAttribute('aria-valuetext', Math.round(v) + '% input');
  }
  range.addEventListener('input', function () { show(range.value); });
  function drag(ev) {
    var r = after.getBoundingClientRect();
    range.value = Math.max(0, Math.min(100, 100 * (ev.clientX - r.left) / r.width));
    show(range.value);
  }
  box.addEventListener('pointerdown', function (ev) {
    if (ev.target === range) return;
    ev.preventDefault(); box.setPointerCapture(ev.pointerId); drag(ev);
    box.onpointermove = drag;
  });
  function stop() { box.onpointermove = null; }
  box.addEventListener('pointerup', stop);
  box.addEventListener('pointercancel', stop);  // a touch that scrolls the page (touch-action: pan-y)
  show(range.value);
});

// the table of images: a heading's button sorts its rows (names naturally, 2 before 10; scores by the
// result's, missing ones last either way); a second press reverses; aria-sort marks the sorted column
(function () {
  var entries = JSON.parse(document.getElementById('scores').textContent);
  var table = document.querySelector('table.index'), body = table.tBodies[0];
  var names = new Intl.Collator(undefined, {numeric: true});
  table.querySelectorAll('button.sort').forEach(function (button) {
    button.addEventListener('click', function () {
      var heading = button.parentNode, key = button.dataset.key;
      var order = heading.getAttribute('aria-sort') === 'ascending' ? -1 : 1;
      table.querySelectorAll('th[aria-sort]').forEach(function (th) { th.removeAttribute('aria-sort'); });
      heading.setAttribute('aria-sort', order > 0 ? 'ascending' : 'descending');
      function value(row) {
        var e = entries[row.dataset.i];
        return key === 'name' ? e.name : e.scores.result[key];
      }
      var rows = Array.prototype.slice.call(body.rows).sort(function (a, b) {
        var x = value(a), y = value(b);
        if (key === 'name') return order * names.compare(x, y);
        if (x == null || y == null) return (x == null) - (y == null);
        return order * (x - y);
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{css}</style></head>
<body>
<h1>{title}</h1>
<p>{n} image(s). Lower NIQE and BRISQUE are better (no clean image needed; BRISQUE also rewards blur){full}.
Drag across a picture, or move the bar under it, to compare input and result.
Click a heading of the table of images to sort it by that column (scores: the result's); again, the other way.</p>
{problems}
<div class="wide"><table class="summary"><tr><th>mean</th><th>input</th><th>result</th><th>change</th><th>improved</th>
</tr>{top}</table></div>
<div class="wide"><table class="index"><thead><tr>{head}</tr></thead><tbody>{index}</tbody></table></div>
{sections}
<script type="application/json" id="scores">{data}</script>
<script>{js}</script>
</body></html>
"""
