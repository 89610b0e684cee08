"""The `rain2avoid serve` page in a real headless Chromium, driven by Playwright, against a real server.

It uploads two photos, follows the training progress, moves the before/after
slider, toggles the mask, downloads the result and decodes it, checks that the
page fetched nothing from another host, and that it fits a 390 px wide phone.

Chromium: Debian's ``chromium`` package (``apt-get install -y chromium``), or the
path in ``RAIN2AVOID_CHROMIUM``; the test skips, saying so, when none is found.
``RAIN2AVOID_SCREENSHOT=docs/serve.png`` also saves screenshots of the page (that
file and ``docs/serve-phone.png``), made with the default training settings so
that they show a real result.
"""

from __future__ import annotations

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

        # The before/after slider moves the split; so does a tap on the picture.
        clip = "getComputedStyle(document.getElementById('after')).clipPath"
        page.fill("#slider", "20")
        assert page.evaluate(clip) == "inset(0px 0px 0px 20%)"
        box = page.locator("#compare").bounding_box()
        page.mouse.click(box["x"] + 0.75 * box["width"], box["y"] + box["height"] / 2)
        assert page.evaluate(clip) == "inset(0px 0px 0px 75%)" and page.input_value("#slider") == "75"

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
