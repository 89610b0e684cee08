"""The picture report: one self-contained HTML page with the right pictures and numbers."""

import base64
import json
import os
import re
import sys
import unicodedata
from html.parser import HTMLParser

import cv2
import numpy as np
import pytest
from conftest import invoke

from rain2avoid import brisque, niqe, psnr, ssim, write_image
from rain2avoid.detect import compute_mask
from rain2avoid.report import build_report
from rain2avoid.synth import add_rain, clean_example

SIZE = (192, 256)  # the smallest convenient size NIQE scores (two 96x96 blocks and more)
CHROMIUM = "/usr/bin/chromium"  # Debian's package, as in test_serve_browser.py
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


class Page(HTMLParser):
    """Sections, pictures, every URL-bearing attribute and the embedded scores of a report."""

    def __init__(self, text):
        super().__init__()
        self.sections, self.images, self.urls, self.scripts, self.tags = [], [], [], [], []
        self._script = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self.sections.append(attrs)
        if tag == "img" and "src" in attrs:
            self.images.append(attrs)
        self.urls += [v for k, v in attrs.items() if k in ("src", "href", "action", "srcset", "poster") and v]
        if tag == "script":
            self._script = attrs.get("id", "")

    def handle_data(self, data):
        if self._script is not None:
            self.scripts.append((self._script, data))

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None


def decode(uri):
    header, data = uri.split(",", 1)
    assert header in ("data:image/jpeg;base64", "data:image/png;base64")
    return cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_UNCHANGED)


@pytest.fixture
def folders(tmp_path):
    """rainy/ a b c broken; derained/ a b broken (no c); clean/ a b c; masks/ a_mask only."""
    rainy, clean = {}, {}
    for i, name in enumerate("abc"):
        clean[name] = clean_example(["astronaut", "coffee", "chelsea"][i], size=SIZE)
        rainy[name] = add_rain(clean[name], angle=10, density=0.04, length=16, seed=i)[0]
        write_image(tmp_path / "rainy" / f"{name}.png", rainy[name])
        write_image(tmp_path / "clean" / f"{name}.png", clean[name])
    derained = {"a": cv2.medianBlur(rainy["a"], 3), "b": clean["b"]}  # b: a perfect result
    for name, image in derained.items():
        write_image(tmp_path / "derained" / f"{name}.png", image)
    for folder in ("rainy", "derained"):
        (tmp_path / folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    mask = np.zeros(SIZE, np.uint8)
    mask[40:120, 100:104] = 255
    write_image(tmp_path / "masks" / "a_mask.png", mask)
    return {"root": tmp_path, "rainy": rainy, "clean": clean, "derained": derained, "mask_a": mask}


def test_report_sections_pictures_and_numbers(folders):
    root = folders["root"]
    out = root / "report.html"
    report = build_report(root / "rainy", root / "derained", out, target=root / "clean", masks=root / "masks")
    assert [e["name"] for e in report.images] == ["a", "b"]
    problems = "\n".join(report.problems)
    assert "c.png: no result" in problems and "broken.png" in problems
    assert "b.png: no mask named b_mask.* or b.* in" in problems and len(report.problems) == 3

    text = out.read_text(encoding="utf-8")
    page = Page(text)
    assert [s["data-name"] for s in page.sections] == ["a", "b"]
    assert "http://" not in text and "https://" not in text
    assert not {"link", "iframe", "object", "embed"} & set(page.tags)
    assert all(u.startswith("data:image/") or u.startswith("#image-") for u in page.urls), page.urls
    assert len(page.images) == 6  # input, result, mask per image; the slider borrows the first two

    scores = {e["name"]: e["scores"] for e in json.loads(dict(page.scripts)["scores"])}
    for name, result in folders["derained"].items():
        rainy, clean = folders["rainy"][name], folders["clean"][name]
        for which, image in (("input", rainy), ("result", result)):
            s = scores[name][which]
            assert s["niqe"] == pytest.approx(niqe(image)) and s["brisque"] == pytest.approx(brisque(image))
            assert s["ssim_y"] == pytest.approx(ssim(image, clean))
            assert f"{s['niqe']:.4f}" in text and f"{s['brisque']:.3f}" in text
        assert scores[name]["input"]["psnr_y"] == pytest.approx(psnr(rainy, clean))
    assert scores["b"]["result"]["psnr_y"] == 100.0  # identical to the clean image: capped as in eval
    assert scores["b"]["result"]["ssim_y"] == pytest.approx(1.0)
    assert ">2 of 2<" in text  # PSNR: both results closer to the clean image than their input

    pictures = {s["data-name"]: [] for s in page.sections}
    for img in page.images:
        pictures[img["alt"].split()[-1]].append(img["src"])
    np.testing.assert_array_equal(decode(pictures["a"][2]), folders["mask_a"])  # the given mask file
    np.testing.assert_array_equal(decode(pictures["b"][2]), compute_mask(folders["rainy"]["b"], "guarded").mask)
    assert "rain mask</figcaption>" in text and "rain mask (computed)</figcaption>" in text  # a, then b
    assert decode(pictures["a"][0]).shape == SIZE + (3,)  # small pictures keep their size
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_report_says_which_results_are_their_input_unchanged(folders, monkeypatch):
    root = folders["root"]
    write_image(root / "same" / "a.png", folders["rainy"]["a"])              # left as it was
    write_image(root / "same" / "b.png", folders["derained"]["b"])
    monkeypatch.setattr(sys, "stderr", None)   # pythonw: progress=True failed in tqdm
    text = build_report(root / "rainy", root / "same", root / "r.html", progress=True).path.read_text(encoding="utf-8")
    headings = dict(re.findall(r'data-name="(\w)">\s*<h2>\w <small>([^<]*)</small>', text))
    assert headings["a"].endswith(", the result is its input, unchanged")
    assert "unchanged" not in headings["b"]
    scores = {e["name"]: e["unchanged"] for e in json.loads(dict(Page(text).scripts)["scores"])}
    assert scores == {"a": True, "b": False}


def test_report_shrinks_pictures_and_skips_full_reference_without_target(folders):
    root = folders["root"]
    report = build_report(root / "rainy", root / "derained", root / "small.html", max_width=64)
    page = Page((root / "small.html").read_text(encoding="utf-8"))
    assert {decode(img["src"]).shape[:2] for img in page.images} == {(48, 64)}
    assert "PSNR" not in (root / "small.html").read_text(encoding="utf-8")
    assert "psnr_y" not in report.images[0]["scores"]["input"]


def test_report_never_takes_a_result_for_its_mask(folders):
    """--masks on the folder of the results (README): only <stem>_mask.* counts there; <stem>.* is the result."""
    root = folders["root"]
    mask = np.zeros(SIZE, np.uint8)
    mask[10:50, 20:24] = 255
    mask[10:50, 30:32] = 60   # graded: rain (> 10), though faint
    write_image(root / "derained" / "b_mask.png", mask)  # a has none: derain without --save-intermediates
    report = build_report(root / "rainy", root / "derained", root / "r.html", masks=root / "derained")
    assert [e["name"] for e in report.images] == ["a", "b"]
    page = Page((root / "r.html").read_text(encoding="utf-8"))
    masks = [decode(img["src"]) for img in page.images if img["alt"].startswith("rain mask")]
    np.testing.assert_array_equal(masks[0], compute_mask(folders["rainy"]["a"], "guarded").mask)
    np.testing.assert_array_equal(masks[1], mask)
    assert [e["rain"] for e in report.images][1] == pytest.approx(np.mean(mask > 10), abs=1e-4)
    lines = [p for p in report.problems if "mask" in p]
    assert lines == [f"{root / 'rainy' / 'a.png'}: no mask named a_mask.* in {root / 'derained'} (derain "
                     "--save-intermediates writes a_mask.png); the mask shown is computed"]

    # a folder of masks only, as `rain2avoid mask` writes it: <stem>.png is the mask
    write_image(root / "m" / "b.png", mask)
    report = build_report(root / "rainy", root / "derained", root / "r.html", masks=root / "m")
    assert report.images[1]["mask_file"] and not report.images[0]["mask_file"]


def test_report_leaves_out_same_stem_files(folders):
    """a.png and a.jpg: which one is the input of derained/a.png is unclear; reported once, left out."""
    root = folders["root"]
    write_image(root / "rainy" / "a.jpg", np.zeros(SIZE + (3,), np.uint8))
    write_image(root / "clean" / "b.jpg", np.zeros(SIZE + (3,), np.uint8))
    r = invoke("report", root / "rainy", root / "derained", "--target", root / "clean", "-o", root / "r.html")
    assert r.exit_code == 1
    page = Page((root / "r.html").read_text(encoding="utf-8"))
    assert [s["data-name"] for s in page.sections] == ["b"]
    assert "psnr_y" not in json.loads(dict(page.scripts)["scores"])[0]["scores"]["result"]
    a_line = [line for line in r.stderr.splitlines() if "a.jpg" in line]
    assert len(a_line) == 1 and "a.png" in a_line[0] and "rename" in a_line[0] and "left out" in a_line[0]
    assert "b.jpg and" in r.stderr and "(no PSNR/SSIM for b)" in r.stderr


def test_report_notes_what_it_shows_as_n_a_and_results_without_input(folders):
    """A score undefined for an image, and results without an input, are notes (exit code 0); a colour
    picture given as a mask is a problem (exit code 1), and the computed mask is shown."""
    root = folders["root"]
    for name in ("broken.png",):
        (root / "rainy" / name).unlink()
        (root / "derained" / name).unlink()
    (root / "rainy" / "c.png").unlink()
    small = folders["rainy"]["c"][:120, :150]   # BRISQUE is defined, NIQE is not (two 96 px blocks)
    write_image(root / "rainy" / "s.png", small)
    write_image(root / "derained" / "s.png", small)
    write_image(root / "derained" / "d.png", small)   # a result without an input
    write_image(root / "derained" / "s_mask.png", small[..., 0])   # derain --save-intermediates: no result
    write_image(root / "derained" / "s_reference.png", small)
    r = invoke("report", root / "rainy", root / "derained", "-o", root / "r.html")
    assert r.exit_code == 0, r.output
    notes = [line for line in r.stderr.splitlines() if line.startswith("note: ")]
    assert notes == ["note: s: niqe: the image must hold at least two whole 96x96 blocks (e.g. 192x96 pixels), "
                     "got 150x120 (shown as n/a)",
                     f"note: 1 result(s) without an input of the same name in {root / 'rainy'} are left out: "
                     f"{root / 'derained' / 'd.png'}"]
    text = (root / "r.html").read_text(encoding="utf-8")
    assert "2 note(s)" in text and "got 150x120 (shown as n/a)" in text
    scores = json.loads(dict(Page(text).scripts)["scores"])[2]["scores"]
    assert scores["input"]["niqe"] is None and scores["input"]["brisque"] == pytest.approx(brisque(small))

    write_image(root / "masks" / "a_mask.png", folders["clean"]["a"])   # a photo, not a mask
    report = build_report(root / "rainy", root / "derained", root / "r.html", masks=root / "masks")
    assert report.problems[0] == (f"{root / 'masks' / 'a_mask.png'}: is a colour picture, not a rain mask (a mask "
                                  "is grey: white where the rain is); the mask shown is computed")
    assert not report.images[0]["mask_file"]


def test_report_with_nothing_to_show_leaves_the_old_file(tmp_path):
    write_image(tmp_path / "in" / "a.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "out").mkdir()
    (tmp_path / "r.html").write_text("old")
    with pytest.raises(ValueError, match="nothing to report"):
        build_report(tmp_path / "in", tmp_path / "out", tmp_path / "r.html")
    assert (tmp_path / "r.html").read_text() == "old"


def test_report_cli(folders):
    root = folders["root"]
    r = invoke("report", root / "rainy", root / "derained", "--target", root / "clean", "-o", root / "r.html")
    assert r.exit_code == 1  # c has no result and broken.png cannot be read: reported, left out
    assert "c.png" in r.stderr and "broken.png" in r.stderr
    assert len(Page((root / "r.html").read_text(encoding="utf-8")).sections) == 2
    (root / "rainy" / "broken.png").unlink()
    (root / "derained" / "broken.png").unlink()
    (root / "rainy" / "c.png").unlink()
    r = invoke("report", root / "rainy", root / "derained", "-o", root / "r.html", "-q")
    assert r.exit_code == 0, r.output
    r = invoke("report", root / "rainy", root / "derained", "-o", root / "r.png")
    assert r.exit_code == 2 and ".html" in r.stderr
    r = invoke("report", "--help")
    assert r.exit_code == 0 and "Example" in r.stdout


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_slider_in_a_real_browser(folders, browser):
    root = folders["root"]
    build_report(root / "rainy", root / "derained", root / "r.html")
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((root / "r.html").as_uri())
    slider = page.locator(".slider").first
    slider.scroll_into_view_if_needed()
    before = slider.locator(".before")
    assert before.evaluate("e => e.src") == page.locator("#in-0").evaluate("e => e.src")
    assert before.evaluate("e => e.complete && e.naturalWidth") == SIZE[1]
    box = slider.locator(".after").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 0.5 * box["width"], y)
    page.mouse.down()
    page.mouse.move(box["x"] + 0.25 * box["width"], y, steps=4)
    page.mouse.up()
    assert float(slider.locator("input").input_value()) == pytest.approx(25, abs=1)
    assert before.evaluate("e => e.style.clipPath").startswith("inset(0px 75")
    slider.locator("input").fill("90")
    assert before.evaluate("e => e.style.clipPath").startswith("inset(0px 10")
    slider.locator("input").focus()  # the keyboard: an arrow key moves the split by 1%, not 0.1%
    page.keyboard.press("ArrowLeft")
    assert slider.locator("input").input_value() == "89"
    assert before.evaluate("e => e.style.clipPath") == "inset(0px 11% 0px 0px)"
    assert slider.locator("input").get_attribute("aria-valuetext") == "89% input"
    page.close()
    assert errors == []


def test_report_on_a_phone(tmp_path, browser):
    """390 px wide, touch: no sideways scroll (long names, wide tables), a vertical swipe on a slider
    scrolls the page, and names that look like HTML (escaped) or like the start of a script comment
    ("<!--<script>", which once swallowed the page's script and left the sliders dead) are harmless."""
    image = add_rain(clean_example("astronaut", size=SIZE), angle=10, density=0.04, length=16, seed=1)[0]
    names = ["<!--<script>", "<b>x", "IMG_20240506_rainy_street_downtown_camera_export_0001"]  # natural order
    for name in names:
        write_image(tmp_path / "in" / f"{name}.png", image)
        write_image(tmp_path / "out" / f"{name}.png", cv2.medianBlur(image, 3))
        write_image(tmp_path / "clean" / f"{name}.png", image)
    build_report(tmp_path / "in", tmp_path / "out", tmp_path / "r.html", target=tmp_path / "clean")
    context = browser.new_context(viewport={"width": 390, "height": 800}, has_touch=True, is_mobile=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((tmp_path / "r.html").as_uri())
    assert page.evaluate("document.scrollingElement.scrollWidth") == 390
    assert page.evaluate("[...document.querySelectorAll('.slider .before')].map(e => e.complete && "
                         "e.naturalWidth)") == [SIZE[1]] * 3
    assert page.evaluate("JSON.parse(document.getElementById('scores').textContent).map(e => e.name)") == names
    page.evaluate("scrollTo(0, document.querySelector('.slider').getBoundingClientRect().top + scrollY - 100)")
    box = page.locator(".slider .after").first.bounding_box()
    start = page.evaluate("scrollY")
    cdp = context.new_cdp_session(page)
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.7
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for k in range(1, 11):  # the finger goes up the picture: the page must follow
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y - 12 * k}]})
        page.wait_for_timeout(16)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    page.wait_for_timeout(300)
    assert page.evaluate("scrollY") - start > 50
    context.close()
    assert errors == []


def test_report_table_sorts_by_a_column(tmp_path, browser):
    """A heading sorts the table of images (click, or Enter / Space on the focused heading); again, the other
    way; scores numerically with the missing last either way, names naturally (2 before 10)."""
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (24, 32, 3), np.uint8)
    for name, noise in (("1", 2), ("2", 16), ("10", 6), ("11", 6)):  # PSNR-Y: 1 best, 2 worst, 11 none
        write_image(tmp_path / "in" / f"{name}.png", clean)
        write_image(tmp_path / "out" / f"{name}.png",
                    np.clip(clean + rng.normal(0, noise, clean.shape), 0, 255).astype(np.uint8))
        if name != "11":
            write_image(tmp_path / "clean" / f"{name}.png", clean)
    report = build_report(tmp_path / "in", tmp_path / "out", tmp_path / "r.html", target=tmp_path / "clean")
    psnr_y = {e["name"]: e["scores"]["result"].get("psnr_y") for e in report.images}
    assert psnr_y["1"] > psnr_y["10"] > psnr_y["2"] and psnr_y["11"] is None
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((tmp_path / "r.html").as_uri())

    def order():
        return page.eval_on_selector_all("table.index tbody tr", "rows => rows.map(r => r.cells[0].textContent)")

    def sorted_by():
        return page.eval_on_selector_all("table.index th[aria-sort]", "ths => ths.map(th => "
                                         "[th.querySelector('button').dataset.key, th.getAttribute('aria-sort')])")

    assert order() == ["1", "2", "10", "11"] and sorted_by() == []
    psnr_heading = page.locator("table.index button[data-key=psnr_y]")
    psnr_heading.click()
    assert order() == ["2", "10", "1", "11"] and sorted_by() == [["psnr_y", "ascending"]]
    psnr_heading.click()
    assert order() == ["1", "10", "2", "11"] and sorted_by() == [["psnr_y", "descending"]]
    page.locator("table.index button[data-key=name]").focus()
    page.keyboard.press("Enter")
    assert order() == ["1", "2", "10", "11"] and sorted_by() == [["name", "ascending"]]
    page.keyboard.press("Space")
    assert order() == ["11", "10", "2", "1"] and sorted_by() == [["name", "descending"]]
    page.close()
    assert errors == []


def test_report_scores_hold_no_markup_for_any_name(folders):
    """The scores' JSON sits in a <script>: a name with "<!--" and "<script" must not reach it as such."""
    root = folders["root"]
    for folder in ("rainy", "derained"):
        os.rename(root / folder / "a.png", root / folder / "<!--<script>a.png")
    build_report(root / "rainy", root / "derained", root / "r.html")
    text = (root / "r.html").read_text(encoding="utf-8")
    data = text.split('<script type="application/json" id="scores">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data
    assert [e["name"] for e in json.loads(data)] == ["<!--<script>a", "b"]


def test_report_cli_checks_its_output_folder_before_the_work(folders):
    root = folders["root"]
    r = invoke("report", root / "rainy", root / "derained", "-o", root / "rainy" / "a.png" / "r.html")
    assert r.exit_code == 2 and "is an existing file" in r.stderr
    assert "c.png" not in r.stderr  # refused before any image was looked at


def test_report_cli_interrupted_writes_nothing(folders, monkeypatch):
    import rain2avoid.report

    def interrupt(*args):
        raise KeyboardInterrupt

    root = folders["root"]
    (root / "r.html").write_text("old")
    monkeypatch.setattr(rain2avoid.report, "_entry", interrupt)
    r = invoke("report", root / "rainy", root / "derained", "-o", root / "r.html")
    assert r.exit_code == 130 and "interrupted: " in r.stderr
    assert (root / "r.html").read_text() == "old" and not [p for p in root.iterdir() if p.name.startswith(".")]


# --- eval: its tables and JSON -------------------------------------------------------------------------------------

def test_eval_tables_never_cut_names(tmp_path):
    """Two long names that differ only at the end stay apart in every table."""
    image = add_rain(clean_example("coffee", size=(96, 192)), angle=10, density=0.04, length=16, seed=2)[0]
    names = [f"IMG_20240506_rainy_street_export_000{i}" for i in (1, 2)]
    for name in names:
        write_image(tmp_path / "a" / f"{name}.png", image)
        write_image(tmp_path / "b" / f"{name}.png", cv2.medianBlur(image, 3))
    for args in (["--pred", tmp_path / "b", "--target", tmp_path / "a"], ["--no-reference", tmp_path / "a"],
                 ["--no-reference", tmp_path / "a", "--compare", tmp_path / "b"]):
        r = invoke("eval", *args)
        assert r.exit_code == 0, r.output
        rows = [line for line in r.stdout.splitlines() if line.startswith("IMG_")]
        assert [row.split()[0] for row in rows] == names
        header = next(line for line in r.stdout.splitlines() if line.startswith("image"))
        assert len({len(line) for line in rows + [header]}) == 1  # one column width for all


def test_eval_table_columns_line_up_with_wide_characters(tmp_path):
    """A name in CJK (two terminal columns a character) keeps its numbers under those of the other rows."""
    def columns(text):  # terminal columns, counted here independently of the code under test
        return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
                   for c in text)

    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (24, 32, 3), np.uint8)
    for name in ("雨の日", "street"):
        write_image(tmp_path / "clean" / f"{name}.png", clean)
        write_image(tmp_path / "pred" / f"{name}.png", np.clip(clean + rng.normal(0, 8, clean.shape), 0, 255)
                    .astype(np.uint8))
    r = invoke("eval", "--pred", tmp_path / "pred", "--target", tmp_path / "clean")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert sorted(line.split()[0] for line in lines) == ["image", "mean", "street", "雨の日"]
    # where each of the four right-aligned number columns ends, in terminal columns
    ends = [[columns(line[:m.end()]) for m in list(re.finditer(r"\S+", line))[-4:]] for line in lines]
    assert all(e == ends[0] for e in ends), r.stdout


def test_eval_no_reference_json_names_what_it_skipped(tmp_path):
    """--no-reference --json has the keys of the full-reference JSON: unpaired and skipped too."""
    image = add_rain(clean_example("coffee", size=(96, 192)), angle=10, density=0.04, length=16, seed=2)[0]
    write_image(tmp_path / "a" / "good.png", image)
    (tmp_path / "a" / "bad.png").write_bytes(b"not an image")
    r = invoke("eval", "--no-reference", tmp_path / "a", "--json")
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert set(out) == {"n", "niqe", "brisque", "n_niqe", "n_brisque", "per_image", "unpaired", "skipped"}
    assert out["n"] == 1 and out["unpaired"] == [] and len(out["skipped"]) == 1 and "bad.png" in out["skipped"][0]
    write_image(tmp_path / "b" / "good.png", image)
    write_image(tmp_path / "b" / "alone.png", image)
    (tmp_path / "b" / "bad.png").write_bytes(b"not an image")
    r = invoke("eval", "--no-reference", tmp_path / "a", "--compare", tmp_path / "b", "--json")
    out = json.loads(r.stdout)
    assert r.exit_code == 1 and out["unpaired"] == [str(tmp_path / "b" / "alone.png")]
    assert set(out) == {"n", "niqe", "brisque", "compare_niqe", "compare_brisque", "n_niqe", "n_brisque",
                        "compare_niqe_lower", "compare_brisque_lower", "per_image", "unpaired", "skipped"}
    assert len(out["skipped"]) == 1 and "bad.png" in out["skipped"][0]


def test_eval_interrupted_says_so_and_exits_130(folders, monkeypatch):
    """Ctrl-C in eval: one line and 130, as every command that works on a folder, not click's 'Aborted!' and 1."""
    import sys

    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(sys.modules["rain2avoid.cli.evaluate"], "_score_pair", interrupt)
    root = folders["root"]
    r = invoke("eval", "--pred", root / "derained", "--target", root / "rainy")
    assert r.exit_code == 130 and r.stderr.strip().splitlines()[-1] == "interrupted: no scores printed"


def test_nothing_to_report_or_score_is_a_usage_error(tmp_path):
    """An empty folder, or two with no names in common: exit 2, as derain says 'no images' (1 means
    some files failed)."""
    for name in ("empty", "other"):
        (tmp_path / name).mkdir()
    write_image(tmp_path / "other" / "x.png", np.zeros((32, 32, 3), np.uint8))
    write_image(tmp_path / "other2" / "y.png", np.zeros((32, 32, 3), np.uint8))
    for args, line in [(["report", tmp_path / "empty", tmp_path / "other", "-o", tmp_path / "r.html"],
                        f"no images in {tmp_path / 'empty'}"),
                       (["eval", "--no-reference", tmp_path / "empty"], f"no images to score in {tmp_path / 'empty'}"),
                       (["eval", "--pred", tmp_path / "empty", "--target", tmp_path / "other"],
                        f"no images in {tmp_path / 'empty'}"),
                       (["eval", "--pred", tmp_path / "other", "--target", tmp_path / "other2"],
                        f"no images with matching names in {tmp_path / 'other'} and {tmp_path / 'other2'}")]:
        r = invoke(*args)
        assert r.exit_code == 2 and r.stderr.strip().splitlines()[-1] == f"Error: {line}", r.stderr
    assert not (tmp_path / "r.html").exists()


def test_eval_and_report_list_images_in_the_same_natural_order(tmp_path):
    names = ["b", "aa", "c10", "c9", "IMG_0002", "img_10"]
    image = add_rain(clean_example("coffee", size=SIZE), angle=10, density=0.04, length=16, seed=2)[0]
    for name in names:
        for folder in ("x", "y"):
            write_image(tmp_path / folder / f"{name}.png", image)
    expected = ["aa", "b", "c9", "c10", "IMG_0002", "img_10"]   # numbers by value, case aside
    report = build_report(tmp_path / "x", tmp_path / "y", tmp_path / "r.html")
    assert [e["name"] for e in report.images] == expected
    for args in (["--pred", tmp_path / "x", "--target", tmp_path / "y"],
                 ["--no-reference", tmp_path / "x", "--compare", tmp_path / "y"]):
        r = invoke("eval", *args, "--json")
        assert [row["name"] for row in json.loads(r.stdout)["per_image"]] == expected, r.output
