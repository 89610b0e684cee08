"""The `rain2avoid serve` page in a real headless Chromium, driven by Playwright, against a real server.

It uploads two photos, follows the training progress, moves the before/after
slider, toggles the mask, downloads the result and decodes it, checks that the
page fetched nothing from another host, and that it fits a 390 px wide phone.
Short tests check the slider's direction, errors for non-images (chosen or
dropped), the keyboard on the drop zone, the limits hint, TIFF placeholders,
the prompt before leaving unfinished jobs, cancelling a job, removing finished
cards, a 360 px wide phone,
a reload that brings the visit's jobs back (or drops those the server forgot), and
a server that stops and restarts under the page.

Chromium: Debian's ``chromium`` package (``apt-get install -y chromium``), or the
path in ``RAIN2AVOID_CHROMIUM``; the test skips, saying so, when none is found.
``RAIN2AVOID_SCREENSHOT=docs/serve.png`` also saves screenshots of the page (that
file and ``docs/serve-phone.png``), made with the default training settings so
that they show a real result.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason='the web extra is not installed (pip install "rain2avoid[web]")')
pytest.importorskip("uvicorn", reason='the web extra is not installed (pip install "rain2avoid[web]")')
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")

from serving import rainy, running_server  # noqa: E402

from rain2avoid.io import read_image, write_image  # noqa: E402
from rain2avoid.serve import ServeSettings, create_app  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
SCREENSHOT = os.environ.get("RAIN2AVOID_SCREENSHOT")
STEPS = 300   # enough for the page to show a few progress polls; the screenshot run uses the default 700


def find_chromium() -> str | None:
    candidates = [os.environ.get("RAIN2AVOID_CHROMIUM"), "/usr/bin/chromium"]
    candidates += [shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@pytest.fixture(scope="module")
def browser():
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium found (apt-get install -y chromium, or set RAIN2AVOID_CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def wait_until(page, expression: str, timeout: float = 180.0) -> None:
    """Poll a JavaScript expression until it is true. (Playwright's wait_for_function
    evaluates strings in a way the page's Content-Security-Policy forbids, which is right.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.05)


def photos(folder: Path) -> list:
    """Two rainy photos: a JPEG (with a space in its name) and a PNG."""
    from rain2avoid.synth import add_rain, clean_example
    size = (360, 540) if SCREENSHOT else (96, 144)
    astronaut, _ = add_rain(clean_example("astronaut", size=size), angle=10, intensity=0.5, seed=1)
    first, second = folder / "astronaut in the rain.jpg", folder / "window.png"
    write_image(first, astronaut)
    write_image(second, rainy(64, 96, seed=2))
    return [first, second]


def test_the_page_end_to_end(browser, tmp_path):
    files = photos(tmp_path)
    options = {} if SCREENSHOT else {"steps": STEPS}
    app = create_app(ServeSettings(options=options, temp_root=tmp_path))
    with running_server(app) as url:
        context = browser.new_context(viewport={"width": 1100, "height": 900}, accept_downloads=True)
        page = context.new_page()
        requests, problems = [], []
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.goto(url + "/")
        wait_until(page, "document.getElementById('limits').textContent.includes('MB')")
        # Record every progress text the page shows.
        page.evaluate("""() => {
            window.seen = [];
            new MutationObserver(() => window.seen.push(document.getElementById('state').textContent))
                .observe(document.getElementById('state'), {childList: true, characterData: true, subtree: true});
        }""")

        page.set_input_files("#files", [str(f) for f in files])
        page.wait_for_selector("#download:not([aria-disabled])", timeout=180_000)
        wait_until(page, "() => { const a = document.getElementById('after');"
                               " return !a.hidden && a.complete && a.naturalWidth > 0; }")
        steps = STEPS if not SCREENSHOT else 700
        shown = page.evaluate("window.seen")
        assert any(f"of {steps} (" in text for text in shown), shown   # real steps, not a spinner
        assert page.text_content("#title") == files[0].name

        # The before/after slider moves the split (derained on its left); so does a tap on the picture.
        clip = "getComputedStyle(document.getElementById('after')).clipPath"
        page.fill("#slider", "20")
        assert page.evaluate(clip) == "inset(0px 80% 0px 0px)"
        box = page.locator("#compare").bounding_box()
        page.mouse.click(box["x"] + 0.75 * box["width"], box["y"] + box["height"] / 2)
        assert page.evaluate(clip) == "inset(0px 25% 0px 0px)" and page.input_value("#slider") == "75"

        # The mask toggle shows the mask (the photo's size), and back.
        height, width = read_image(files[0]).shape[:2]
        page.check("#mask")
        wait_until(page, "() => { const a = document.getElementById('after');"
                               " return a.src.endsWith('/mask') && a.complete && a.naturalWidth > 0; }")
        assert page.evaluate("document.getElementById('after').naturalWidth") == width
        page.uncheck("#mask")
        wait_until(page, "document.getElementById('after').src.endsWith('/result')")

        # Download: the uploaded format, a sensible name, the right size.
        with page.expect_download() as info:
            page.click("#download")
        download = info.value
        assert download.suggested_filename == "astronaut_in_the_rain-derained.jpg"
        target = tmp_path / "downloaded.jpg"
        download.save_as(target)
        pixels, meta = read_image(target, with_meta=True)
        assert meta.format == "jpeg" and pixels.shape == (height, width, 3)

        # The gallery holds both jobs of this visit; the second one finishes too.
        wait_until(page, "[...document.querySelectorAll('#gallery .state')]"
                               ".every(s => s.textContent.startsWith('done'))")
        assert page.locator("#gallery .card").count() == 2

        # Everything came from this server: no CDN, no fonts or scripts from elsewhere.
        assert all(u.startswith((url, "blob:", "data:")) for u in requests), requests
        assert problems == []

        page.fill("#slider", "50")
        if SCREENSHOT:
            page.screenshot(path=SCREENSHOT, full_page=True)

        # Phone width: nothing sticks out sideways.
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        if SCREENSHOT:
            phone = Path(SCREENSHOT)
            page.screenshot(path=str(phone.with_name(phone.stem + "-phone" + phone.suffix)), full_page=True)
        context.close()


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    """A server with few training steps and small limits (0.4 MiB, 0.5 MP) for the short page tests."""
    settings = ServeSettings(options={"steps": 2}, temp_root=tmp_path_factory.mktemp("serve"),
                             max_upload_bytes=int(0.4 * 1048576), max_pixels=500_000)
    with running_server(create_app(settings)) as url:
        yield url


@pytest.fixture
def page(browser, small_server):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.goto(small_server + "/")
    wait_until(page, "document.getElementById('limits').textContent.includes('MB')")
    yield page
    context.close()


def test_the_slider_derained_end_shows_the_derained_photo(page, tmp_path):
    write_image(tmp_path / "small.png", rainy(24, 32))
    page.set_input_files("#files", str(tmp_path / "small.png"))
    page.wait_for_selector("#download:not([aria-disabled])", timeout=60_000)
    right = "getComputedStyle(document.getElementById('after')).clipPath"
    page.fill("#slider", "100")   # the "derained" end: the derained photo is not clipped at all
    assert page.evaluate(right) == "inset(0px 0% 0px 0px)"
    assert page.get_attribute("#slider", "aria-valuetext") == "100% derained"
    page.fill("#slider", "0")     # the "rainy" end: the derained photo is clipped away
    assert page.evaluate(right) == "inset(0px 100% 0px 0px)"


def test_a_non_image_shows_only_its_error(page, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("not a picture")
    page.set_input_files("#files", str(fake))
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)
    assert "not an image" in page.text_content("#error")
    assert not page.is_visible("#compare")   # no broken image, no overlay over the controls
    assert not page.is_visible("#slider")
    assert "cannot show" not in page.inner_text("body")
    box = page.locator("#preset").bounding_box()
    hit = f"document.elementFromPoint({box['x'] + box['width'] / 2}, {box['y'] + box['height'] / 2}).id"
    assert page.evaluate(hit) == "preset"


def test_a_dropped_non_image_gets_a_card_saying_so(page):
    page.evaluate("""() => {
        const data = new DataTransfer();
        data.items.add(new File(['hello'], 'notes.txt', {type: 'text/plain'}));
        document.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
    }""")
    wait_until(page, "document.querySelectorAll('#gallery .card').length === 1", timeout=10)
    assert page.text_content("#gallery .name") == "notes.txt"
    assert "not an image" in page.text_content("#gallery .state")


def test_finished_cards_can_be_removed_and_stay_removed_after_a_reload(page, tmp_path):
    write_image(tmp_path / "small.png", rainy(24, 32))
    fake = tmp_path / "fake.png"
    fake.write_text("not a picture")
    page.set_input_files("#files", [str(tmp_path / "small.png"), str(fake)])
    wait_until(page, f"{STATES}.length === 2 && {STATES}[0].startsWith('done') && {STATES}[1].startsWith('failed')",
               timeout=60)
    labels = "[...document.querySelectorAll('#gallery .cancel')].map(b => b.getAttribute('aria-label'))"
    assert page.evaluate(labels) == ["Remove small.png", "Remove fake.png"]
    job_id = page.evaluate(SAVED)[0]["id"]
    page.click("#gallery li:last-child .cancel")   # the failed one, shown in the viewer
    assert page.evaluate(STATES) == [page.text_content("#gallery .state")] and page.text_content("#title") == "small.png"
    focused = "document.activeElement.classList.contains('card') && document.activeElement.textContent"
    assert "small.png" in page.evaluate(focused)   # the next card, not its button: Enter again cancels nothing
    page.keyboard.press("Tab")   # its Remove button, then: the done one's files are deleted from the server too
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Remove small.png"
    page.keyboard.press("Enter")
    wait_until(page, "document.getElementById('visit').hidden && document.getElementById('viewer').hidden", timeout=10)
    assert page.evaluate(SAVED) == [] and page.evaluate("document.activeElement.id") == "drop"
    deadline = time.monotonic() + 10
    while page.evaluate(f"fetch('/api/jobs/{job_id}').then(r => r.status)") != 404:
        assert time.monotonic() < deadline, "the server still has the removed job"
        time.sleep(0.05)
    page.reload()
    wait_until(page, "document.getElementById('limits').textContent.includes('MB')")
    assert page.evaluate(STATES) == [] and not page.is_visible("#expired")


def test_the_drop_zone_opens_the_file_chooser_from_the_keyboard(page):
    choosers = []
    page.on("filechooser", lambda chooser: choosers.append(chooser))   # expect_file_chooser can be late
    page.wait_for_timeout(100)
    for count, key in enumerate(("Enter", " "), start=1):
        page.focus("#drop")
        page.keyboard.press(key)
        deadline = time.monotonic() + 5
        while len(choosers) < count and time.monotonic() < deadline:
            page.wait_for_timeout(50)
        assert len(choosers) == count, f"{key!r} on the drop zone opened no file chooser"
    assert choosers[0].is_multiple()
    page.keyboard.press("Tab")   # one tab stop chooses files: the hidden input is not a second one
    assert page.evaluate("document.activeElement.id") == "preset"


def test_the_limits_keep_their_decimals(page):
    assert page.text_content("#limits") == "up to 0.4 MB and 0.5 MP per photo"


def test_a_phone_width_keeps_the_quality_menu_inside_the_drop_zone(page):
    page.set_viewport_size({"width": 360, "height": 740})
    drop, menu = page.locator("#drop").bounding_box(), page.locator("#preset").bounding_box()
    assert drop["x"] <= menu["x"] and menu["x"] + menu["width"] <= drop["x"] + drop["width"]


def test_a_tiff_shows_a_lasting_note_instead_of_broken_images(page, tmp_path):
    write_image(tmp_path / "photo.tif", rainy(24, 32))
    page.set_input_files("#files", str(tmp_path / "photo.tif"))
    page.wait_for_selector("#download:not([aria-disabled])", timeout=60_000)   # done, and downloadable
    assert page.is_visible("#nopreview") and page.is_visible("#gallery .nopreview")
    assert not page.is_visible("#before") and not page.is_visible("#after")
    assert not page.is_visible("#gallery .card img")


def test_leaving_with_an_unfinished_job_asks_first(page, tmp_path):
    write_image(tmp_path / "small.png", rainy(24, 32))
    page.route("**/api/derain", lambda route: None)   # the upload never finishes
    page.mouse.click(5, 5)   # browsers only ask once the page was used
    page.set_input_files("#files", str(tmp_path / "small.png"))
    with page.expect_event("dialog", timeout=5_000) as info:
        page.close(run_before_unload=True)
    assert info.value.type == "beforeunload"
    info.value.accept()


def test_cancel_stops_the_job_and_its_polling(browser, tmp_path):
    write_image(tmp_path / "long.png", rainy(96, 128))
    app = create_app(ServeSettings(options={"steps": 100_000}, temp_root=tmp_path))   # trains until cancelled
    with running_server(app) as url:
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        page = context.new_page()
        requests, problems = [], []
        page.on("request", lambda r: requests.append((r.method, r.url)))
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(url + "/")
        page.mouse.click(5, 5)   # browsers only ask before leaving once the page was used
        page.set_input_files("#files", str(tmp_path / "long.png"))
        wait_until(page, "document.querySelector('#gallery .state').textContent.startsWith('training')")

        page.focus("#gallery .card")
        page.keyboard.press("Tab")   # the card's Cancel button is the next tab stop, named after the photo
        assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Cancel long.png"
        page.keyboard.press("Enter")
        wait_until(page, "document.querySelector('#gallery .state').textContent === 'cancelled'", timeout=10)
        assert page.text_content("#state") == "cancelled"
        assert page.get_attribute("#gallery .cancel", "aria-label") == "Remove long.png"

        deletes = [u for m, u in requests if m == "DELETE"]
        assert len(deletes) == 1, requests
        job_id = deletes[0].rsplit("/", 1)[-1]
        deadline = time.monotonic() + 10
        while app.state.store.get(job_id) is not None or any(app.state.store.root.iterdir()):
            assert time.monotonic() < deadline, "the server still has the cancelled job"
            time.sleep(0.05)
        page.wait_for_timeout(1500)   # several poll intervals (400 ms)
        later = requests[requests.index(("DELETE", deletes[0])) + 1:]
        assert not [u for m, u in later if job_id in u], later   # no more polling of that job
        assert problems == []

        dialogs = []   # leaving no longer asks: the only job is cancelled
        page.on("dialog", lambda d: (dialogs.append(d.type), d.accept()))
        with page.expect_event("close", timeout=10_000):
            page.close(run_before_unload=True)
        assert dialogs == []
        context.close()


SAVED = "JSON.parse(sessionStorage.getItem('rain2avoid.jobs'))"   # the page's list of this tab's jobs
STATES = "[...document.querySelectorAll('#gallery .state')].map(s => s.textContent)"
BROKEN = ("[...document.querySelectorAll('img')].filter(i => i.checkVisibility() && i.hasAttribute('src')"
          " && i.complete && i.naturalWidth === 0).map(i => i.id || i.src)")


def test_a_reload_brings_back_the_done_and_the_running_job(browser, tmp_path):
    write_image(tmp_path / "small.png", rainy(24, 32))   # no rain found: done at once
    write_image(tmp_path / "photo.tif", rainy(24, 32))   # Chromium shows no TIFF
    write_image(tmp_path / "long.png", rainy(96, 128))
    app = create_app(ServeSettings(options={"steps": 100_000}, temp_root=tmp_path))   # trains until cancelled
    with running_server(app) as url:
        context = browser.new_context(viewport={"width": 1100, "height": 900}, accept_downloads=True)
        page = context.new_page()
        problems = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.goto(url + "/")
        for count, name in enumerate(("small.png", "photo.tif"), start=1):
            page.set_input_files("#files", str(tmp_path / name))
            wait_until(page, f"{STATES}.length === {count} && {STATES}[{count - 1}].startsWith('done')", timeout=60)
        page.set_input_files("#files", str(tmp_path / "long.png"))
        wait_until(page, f"{STATES}[2].startsWith('training')")

        page.reload()
        wait_until(page, f"{STATES}.length === 3 && {STATES}[2].startsWith('training')", timeout=30)
        assert page.evaluate(STATES)[0].startswith("done") and page.evaluate(STATES)[1].startswith("done")
        assert page.evaluate(STATES)[0].endswith(": no rain streaks found")   # the server's note, as the CLI says
        assert page.evaluate("[...document.querySelectorAll('#gallery .name')].map(n => n.textContent)") == [
            "small.png", "photo.tif", "long.png"]
        wait_until(page, "(t => t.src.endsWith('/result') && t.complete && t.naturalWidth > 0)"
                         "(document.querySelector('#gallery img'))", timeout=30)
        # The running job is in the viewer and its progress goes on; the original is gone, and says so.
        assert page.text_content("#title") == "long.png"
        shown = page.evaluate(f"{STATES}[2]")
        wait_until(page, f"{STATES}[2] !== {json.dumps(shown)} && {STATES}[2].startsWith('training')", timeout=60)
        assert page.text_content("#state").startswith("training") and page.is_visible("#progress")
        assert page.is_visible("#alone") and not page.is_visible("#before") and not page.is_visible("#slider")
        assert page.evaluate(BROKEN) == []

        # The done job shows its result alone, and its download works.
        page.locator("#gallery .card").first.click()
        wait_until(page, "(a => a.checkVisibility() && a.src.endsWith('/result') && a.complete && a.naturalWidth > 0)"
                         "(document.getElementById('after'))", timeout=30)
        assert "not available after a reload" in page.text_content("#alone") and page.is_visible("#alone")
        assert not page.is_visible("#before") and not page.is_visible("#slider") and page.evaluate(BROKEN) == []
        with page.expect_download() as info:
            page.click("#download")
        assert info.value.suggested_filename == "small-derained.png"
        info.value.save_as(tmp_path / "downloaded.png")
        assert read_image(tmp_path / "downloaded.png").shape == (24, 32, 3)
        page.locator("#gallery .card").nth(1).click()   # the TIFF: its lasting note, no broken image
        wait_until(page, "document.getElementById('nopreview').checkVisibility()", timeout=30)
        assert page.is_visible("#gallery li:nth-child(2) .nopreview") and not page.is_visible("#after")
        assert page.evaluate(BROKEN) == []

        # The running job can still be cancelled; a second reload keeps it cancelled.
        page.click("[aria-label='Cancel long.png']")
        wait_until(page, f"{STATES}[2] === 'cancelled'", timeout=10)
        saved = page.evaluate(SAVED)
        assert [(s["name"], s["preset"], s["cancelled"]) for s in saved] == [
            ("small.png", "fast", False), ("photo.tif", "fast", False), ("long.png", "fast", True)]
        deadline = time.monotonic() + 10
        while app.state.store.get(saved[2]["id"]) is not None:
            assert time.monotonic() < deadline, "the server still has the cancelled job"
            time.sleep(0.05)
        page.reload()
        wait_until(page, f"{STATES}.length === 3", timeout=30)
        assert page.evaluate(STATES)[2] == "cancelled"
        assert problems == []

        other = context.new_page()   # another tab starts with an empty gallery
        other.goto(url + "/")
        wait_until(other, "document.getElementById('limits').textContent.includes('MB')")
        assert other.locator("#gallery .card").count() == 0 and not other.evaluate(SAVED)
        context.close()


def test_a_reload_drops_the_jobs_the_server_forgot(browser, tmp_path):
    write_image(tmp_path / "first.png", rainy(24, 32))
    write_image(tmp_path / "second.png", rainy(24, 32, seed=4))
    app = create_app(ServeSettings(options={"steps": 2}, keep=1, temp_root=tmp_path))   # keeps the newest only
    with running_server(app) as url:
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        page = context.new_page()
        problems = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(url + "/")
        for count, name in enumerate(("first.png", "second.png"), start=1):   # one by one: the page sees both done
            page.set_input_files("#files", str(tmp_path / name))
            wait_until(page, f"{STATES}.length === {count} && {STATES}[{count - 1}].startsWith('done')", timeout=60)
        first, second = (s["id"] for s in page.evaluate(SAVED))

        page.reload()
        wait_until(page, "!document.getElementById('expired').hidden", timeout=30)
        assert page.evaluate("[...document.querySelectorAll('#gallery .name')].map(n => n.textContent)") == [
            "second.png"]
        assert page.evaluate(STATES)[0].startswith("done") and page.locator("#gallery .failed").count() == 0
        assert page.text_content("#expired") == ("1 photo from before the reload is no longer on the server"
                                                 " (its result expired, or the server was restarted).")
        assert not page.is_visible("#error") and page.evaluate(BROKEN) == []
        assert [s["id"] for s in page.evaluate(SAVED)] == [second] and app.state.store.get(first) is None
        assert problems == []
        context.close()


def test_a_server_that_stops_is_said_and_waited_for_and_a_restart_is_explained(browser, tmp_path):
    write_image(tmp_path / "long.png", rainy(96, 128))
    write_image(tmp_path / "later.png", rainy(24, 32))   # no rain found: done at once
    long_jobs = ServeSettings(options={"steps": 100_000}, temp_root=tmp_path)   # trains until stopped
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    problems = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    with running_server(create_app(long_jobs)) as url:
        page.goto(url + "/")
        page.set_input_files("#files", str(tmp_path / "long.png"))
        wait_until(page, f"{STATES}[0].startsWith('training')")
    # The server is gone: the running job's card says so instead of its last progress, and a new
    # upload waits for the server instead of failing.
    wait_until(page, f"{STATES}[0] === 'cannot reach the server; retrying…'", timeout=20)
    assert page.text_content("#state") == "cannot reach the server; retrying…"
    page.set_input_files("#files", str(tmp_path / "later.png"))
    wait_until(page, f"{STATES}[1] === 'cannot reach the server; trying again in 5 s'", timeout=10)
    port = int(url.rsplit(":", 1)[1])
    with running_server(create_app(long_jobs), port=port):   # restarted: it knows no job of before
        wait_until(page, f"{STATES}[1].startsWith('done')", timeout=60)
        message = "failed: the server no longer has this photo's job (was it restarted?): upload the photo again"
        wait_until(page, f"{STATES}[0] === {json.dumps(message)}", timeout=20)
        box, card = (page.locator("#gallery li").first.bounding_box(), page.locator("#gallery .state").first.bounding_box())
        assert card["x"] + card["width"] <= box["x"] + box["width"]   # the message wraps inside its card
        ends = [f"later.png: {page.evaluate(STATES)[1]}", f"long.png: {message}"]
        assert page.text_content("#announce") in ends   # screen readers hear the last photo that ended
        assert problems == []
    context.close()
