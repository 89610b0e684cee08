"""The picture report: one self-contained HTML page with the right pictures and numbers."""

import base64
import json
import shutil
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


def test_slider_in_a_real_browser(folders):
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    root = folders["root"]
    build_report(root / "rainy", root / "derained", root / "r.html")
    with sync_api.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=chromium)
        except Exception as e:  # no browser installed here
            pytest.skip(f"no Chromium to run: {' '.join(str(e).split())[:120]}")
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
        browser.close()
    assert errors == []
