"""The command line on valid input: awkward images, outputs, checkpoints, eval, mask/refs, help.

Everything runs in-process through click's CliRunner on tiny images with a few
training steps, so the whole file takes seconds. Failure handling (bad files,
damaged models, unwritable outputs) is in test_robustness.py.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import dry_photo, invoke
from PIL import Image

from rain2avoid.cli import MAX_PSNR
from rain2avoid.io import read_image, write_image

H, W = 40, 56


def noise(shape, seed=0, dtype=np.uint8):
    hi = np.iinfo(dtype).max
    return np.random.default_rng(seed).integers(0, hi, shape, dtype=dtype, endpoint=True)


def rainy(h=H, w=W, seed=3):
    from rain2avoid.synth import add_rain, clean_example
    image, _ = add_rain(clean_example("coffee", size=(h, w)), angle=0, density=0.04, length=14, seed=seed)
    return image


def tmp_files(folder):
    return [p.name for p in folder.rglob(".*.tmp")]


# --- help ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [[], ["derain"], ["train"], ["apply"], ["mask"], ["refs"], ["eval"], ["demo"]])
def test_help_has_usage_and_example(command):
    r = invoke(*command, "--help")
    assert r.exit_code == 0, r.output
    assert "Usage:" in r.stdout and "Example" in r.stdout


def test_eval_help_documents_psnr_cap():
    assert "100 dB" in invoke("eval", "--help").stdout


# --- awkward but valid images through `derain` ---------------------------------------------------------------

EXIF_MAKE = "TestMake"


UPRIGHT = (96, 128)   # the photo.jpg of AWKWARD as it shows: rainy(*UPRIGHT), rain the default finds


def _exif_jpeg(path, picture=None):
    """A JPEG of ``picture`` (default: rainy(*UPRIGHT)) stored turned 90 degrees counterclockwise,
    with orientation 6 (display rotated 90 degrees clockwise): it shows as ``picture``. It has a
    camera make, a comment and XMP with keywords (and orientation 6 again)."""
    picture = rainy(*UPRIGHT) if picture is None else picture
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = EXIF_MAKE
    Image.fromarray(np.ascontiguousarray(np.rot90(picture))).save(path, quality=95, exif=exif.tobytes(),
                                                                  xmp=XMP, comment=b"rainy day")


XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"'
       b' tiff:Orientation="6"><dc:subject>rain</dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>')


AWKWARD = {
    "gray.png": lambda p: write_image(p, noise((H, W), 1)),
    "rgba.png": lambda p: write_image(p, noise((H, W, 4), 2)),
    "deep.png": lambda p: write_image(p, noise((H, W, 3), 3, np.uint16)),
    "odd.png": lambda p: write_image(p, noise((37, 53, 3), 4)),
    "photo.jpg": _exif_jpeg,
    "one.png": lambda p: write_image(p, noise((1, 1, 3), 5)),
    "thin.png": lambda p: write_image(p, noise((3, 300, 3), 6)),
    "square.png": lambda p: write_image(p, noise((20, 20, 3), 7)),
    "régen ☔ 1.png": lambda p: write_image(p, noise((H, W, 3), 8)),
}


@pytest.fixture(scope="module")
def awkward(tmp_path_factory):
    """(input folder, output folder, CliRunner result) of one `derain` over all AWKWARD images."""
    root = tmp_path_factory.mktemp("awkward")
    src, dst = root / "in", root / "out"
    src.mkdir()
    for name, make in AWKWARD.items():
        make(src / name)
    result = invoke("derain", src, "-o", dst, "--steps", "2", "-q")
    return src, dst, result


def test_awkward_folder_runs_cleanly(awkward):
    src, dst, r = awkward
    assert "Traceback" not in r.output
    written = sorted(p.name for p in dst.iterdir())
    failed = sorted(set(AWKWARD) - set(written))
    # Only the tiny images may be refused, and then with a message naming them.
    assert set(failed) <= {"one.png", "thin.png", "square.png"}, r.output
    for name in failed:
        assert name in r.stderr
    assert r.exit_code == (1 if failed else 0), r.output
    assert tmp_files(dst) == []


@pytest.mark.parametrize("name", ["one.png", "thin.png", "square.png", "odd.png"])
def test_small_and_odd_sizes_keep_their_size(awkward, name):
    src, dst, r = awkward
    if not (dst / name).exists():  # a clear refusal is allowed for tiny images
        assert name in r.stderr and "Traceback" not in r.output
        return
    a, b = read_image(src / name), read_image(dst / name)
    assert b.shape == a.shape and b.dtype == np.uint8


def test_gray_stays_gray(awkward):
    src, dst, _ = awkward
    out = read_image(dst / "gray.png")
    assert out.ndim == 2 and out.shape == (H, W) and out.dtype == np.uint8


def test_rgba_keeps_alpha_exactly(awkward):
    src, dst, _ = awkward
    a, b = read_image(src / "rgba.png"), read_image(dst / "rgba.png")
    assert b.shape == (H, W, 4)
    assert np.array_equal(a[..., 3], b[..., 3])


def test_16_bit_stays_16_bit(awkward):
    src, dst, _ = awkward
    out = read_image(dst / "deep.png")
    assert out.dtype == np.uint16 and out.shape == (H, W, 3)
    assert np.any(out % 257 != 0)  # real 16-bit values, not 8-bit ones scaled up


def test_exif_orientation_applied_and_make_xmp_and_comment_kept(awkward):
    src, dst, _ = awkward
    with Image.open(src / "photo.jpg") as im:
        assert im.size == UPRIGHT  # stored sideways: 96 wide, 128 high
    with Image.open(dst / "photo.jpg") as im:
        assert im.format == "JPEG"
        assert im.size == UPRIGHT[::-1]  # derained and written upright: 128 wide, 96 high
        exif = im.getexif()
        assert exif.get(0x0112, 1) == 1
        assert exif.get(0x010F) == EXIF_MAKE
        assert im.info["comment"] == b"rainy day"   # the XMP and the comment are kept, the XMP upright too
        assert im.info["xmp"] == XMP.replace(b'tiff:Orientation="6"', b'tiff:Orientation="1"')
        out = np.asarray(im.convert("RGB"), dtype=float)
    upright = rainy(*UPRIGHT).astype(float)
    assert np.abs(out - upright).mean() < np.abs(out - upright[::-1, ::-1]).mean() / 3   # not turned 180 degrees


def test_a_sideways_photo_without_rain_is_written_as_it_was_read(tmp_path):
    """Stored sideways with orientation 6 and no rain in it: the file itself, which shows upright as before."""
    _exif_jpeg(tmp_path / "dry.jpg", dry_photo())
    r = invoke("derain", tmp_path / "dry.jpg", "-o", tmp_path / "out.jpg", "--steps", "2", "-q")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out.jpg").read_bytes() == (tmp_path / "dry.jpg").read_bytes()
    np.testing.assert_array_equal(read_image(tmp_path / "out.jpg").shape, dry_photo().shape)


def test_jpeg_in_jpeg_out(awkward):
    _, dst, _ = awkward
    assert (dst / "photo.jpg").read_bytes()[:3] == b"\xff\xd8\xff"


def test_non_ascii_name_with_spaces(awkward):
    src, dst, r = awkward
    name = "régen ☔ 1.png"
    assert read_image(dst / name).shape == read_image(src / name).shape


# --- nothing lost ------------------------------------------------------------------------------------------

def test_output_equal_to_input_needs_overwrite(tmp_path):
    p = tmp_path / "a.png"
    write_image(p, noise((H, W, 3)))
    before, inode = p.read_bytes(), p.stat().st_ino
    for spelling in (p, tmp_path / "." / "x" / ".." / "a.png"):
        r = invoke("derain", p, "-o", spelling, "--steps", "2")
        assert r.exit_code == 2 and "--overwrite" in r.stderr
        assert p.read_bytes() == before and p.stat().st_ino == inode
    r = invoke("derain", p, "-o", p, "--steps", "2", "--overwrite")
    assert r.exit_code == 0, r.output
    assert p.stat().st_ino != inode  # a new file was renamed into place
    assert read_image(p).shape == (H, W, 3)
    assert tmp_files(tmp_path) == []


def test_a_photo_without_rain_is_written_as_it_was_read(tmp_path):
    """No second JPEG compression, every byte of metadata kept; rainy photos and other formats are encoded."""
    exif = Image.Exif()
    exif[0x010F] = EXIF_MAKE
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(dry_photo()).save(src / "dry.jpg", quality=80, exif=exif.tobytes())
    write_image(src / "wet.png", rainy(64, 96))
    r = invoke("derain", src, "-o", tmp_path / "out", "--steps", "2", "-q")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "dry.jpg").read_bytes() == (src / "dry.jpg").read_bytes()
    assert not np.array_equal(read_image(tmp_path / "out" / "wet.png"), read_image(src / "wet.png"))
    r = invoke("derain", src / "dry.jpg", "-o", tmp_path / "dry.png", "--steps", "2", "-q")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "dry.png").read_bytes()[:4] == b"\x89PNG"
    np.testing.assert_array_equal(read_image(tmp_path / "dry.png"), read_image(src / "dry.jpg"))


def test_rerun_skips_finished_outputs_unless_force(tmp_path):
    src, dst = tmp_path / "in", tmp_path / "out"
    for i in range(2):
        write_image(src / f"{i}.png", noise((H, W, 3), i))
    assert invoke("derain", src, "-o", dst, "--steps", "2").exit_code == 0
    stats = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in dst.iterdir()}
    assert sorted(stats) == ["0.png", "1.png"]

    r = invoke("derain", src, "-o", dst, "--steps", "2")
    assert r.exit_code == 0, r.output
    skipped = [line for line in r.stdout.splitlines() if line.startswith("skip ")]
    assert len(skipped) == 2 and all("--force" in line for line in skipped)
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in dst.iterdir()} == stats

    r = invoke("derain", src, "-o", dst, "--steps", "2", "--force")
    assert r.exit_code == 0 and not any(line.startswith("skip ") for line in r.stdout.splitlines())
    assert all(p.stat().st_ino != stats[p.name][0] for p in dst.iterdir())


def test_single_file_output_folder_and_intermediates(tmp_path):
    write_image(tmp_path / "a.png", noise((H, W, 3)))
    r = invoke("derain", tmp_path / "a.png", "-o", tmp_path / "res", "--steps", "2", "--save-intermediates")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == ["a.png", "a_mask.png", "a_reference.png"]


# --- checkpoints ---------------------------------------------------------------------------------------------

def test_train_then_apply_needs_no_references(tmp_path, monkeypatch):
    src = tmp_path / "train"
    write_image(src / "a.png", rainy(seed=1))
    write_image(src / "b.png", rainy(seed=2))
    model = tmp_path / "m.pt"
    r = invoke("train", src, "--model", model, "--steps", "3", "-q")
    assert r.exit_code == 0, r.output
    assert model.is_file() and tmp_files(tmp_path) == []

    def forbidden(*args, **kwargs):
        raise AssertionError("apply must not compute masks or references")
    import rain2avoid.ldgp
    import rain2avoid.pipeline
    import rain2avoid.sdr
    for module, name in [(rain2avoid.sdr, "expected_reference"), (rain2avoid.sdr, "sample_references"),
                         (rain2avoid.ldgp, "rain_mask"), (rain2avoid.pipeline, "make_targets"),
                         (rain2avoid.pipeline, "compute_mask")]:
        monkeypatch.setattr(module, name, forbidden)

    new = tmp_path / "new"
    write_image(new / "c.png", rainy(seed=4))
    write_image(new / "g.png", noise((H, W), 9))
    r = invoke("apply", new, "--model", model, "-o", tmp_path / "out", "-q")
    assert r.exit_code == 0, r.output
    assert read_image(tmp_path / "out" / "c.png").shape == (H, W, 3)
    assert read_image(tmp_path / "out" / "g.png").shape == (H, W)

    r = invoke("apply", new / "c.png", "--model", model, "-o", tmp_path / "single.jpg")
    assert r.exit_code == 0, r.output
    assert r.stdout == f"c.png -> {tmp_path / 'single.jpg'}\n"   # what it wrote, as derain says
    assert (tmp_path / "single.jpg").read_bytes()[:3] == b"\xff\xd8\xff"


def test_derain_can_start_every_network_from_a_trained_model(tmp_path):
    src = tmp_path / "train"
    write_image(src / "a.png", rainy(seed=1))
    write_image(src / "b.png", rainy(seed=2))
    model = tmp_path / "m.pt"
    assert invoke("train", src, "--model", model, "--steps", "30", "-q").exit_code == 0
    new = tmp_path / "new"
    write_image(new / "c.png", rainy(96, 128, seed=6))   # large enough for streaks to be found
    write_image(new / "d.png", rainy(96, 128, seed=5))
    outputs = {}
    for name, extra in (("fresh", []), ("tuned", ["--init", model]), ("tuned2", ["--init", model, "--workers", 2])):
        r = invoke("derain", new, "-o", tmp_path / name, "--steps", 2, *extra)
        assert r.exit_code == 0, r.output
        outputs[name] = [read_image(tmp_path / name / f) for f in ("c.png", "d.png")]
    # the same seed and steps: only the starting network differs, on every backend alike
    assert all(not np.array_equal(a, b) for a, b in zip(outputs["fresh"], outputs["tuned"]))
    assert all(np.array_equal(a, b) for a, b in zip(outputs["tuned"], outputs["tuned2"]))


# --- eval ------------------------------------------------------------------------------------------------------

KEYS = {"n", "psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "per_image", "unpaired", "skipped"}


def _no_constants(name):
    raise AssertionError(f"JSON holds {name}")


def eval_json(pred, target):
    r = invoke("eval", "--pred", pred, "--target", target, "--json")
    assert r.exit_code == 0, r.output
    assert len(r.stdout.strip().splitlines()) == 1
    return json.loads(r.stdout, parse_constant=_no_constants)


@pytest.fixture
def scored(tmp_path):
    """clean/ (RGB), noisy/ (RGB) and noisy_rgba/ (the same noisy images plus random alpha)."""
    folders = {n: tmp_path / n for n in ("clean", "noisy", "noisy_rgba")}
    rng = np.random.default_rng(0)
    for i in range(2):
        clean = rainy(seed=i)
        noisy = np.clip(clean + rng.normal(0, 8, clean.shape), 0, 255).astype(np.uint8)
        write_image(folders["clean"] / f"{i}.png", clean)
        write_image(folders["noisy"] / f"{i}.png", noisy)
        write_image(folders["noisy_rgba"] / f"{i}.png", np.dstack([noisy, noise((H, W), i)]))
    return folders


def test_eval_json_identical_folders_is_finite(scored):
    out = eval_json(scored["clean"], scored["clean"])
    assert set(out) == KEYS and out["n"] == 2
    assert out["psnr_y"] == out["psnr_rgb"] == MAX_PSNR == 100.0
    assert out["ssim_y"] == pytest.approx(1.0) and out["ssim_rgb"] == pytest.approx(1.0)
    assert [row["name"] for row in out["per_image"]] == ["0", "1"]


def test_eval_json_scores_and_rgba_scored_on_rgb(scored):
    rgb = eval_json(scored["noisy"], scored["clean"])
    assert set(rgb) == KEYS and rgb["n"] == 2
    assert 20 < rgb["psnr_rgb"] < 40 and 0 < rgb["ssim_rgb"] < 1
    assert rgb["psnr_y"] == pytest.approx(np.mean([row["psnr_y"] for row in rgb["per_image"]]))
    assert eval_json(scored["noisy_rgba"], scored["clean"]) == rgb


def test_eval_table(scored):
    r = invoke("eval", "--pred", scored["noisy"], "--target", scored["clean"])
    assert r.exit_code == 0
    assert "PSNR-Y" in r.stdout and "mean (2)" in r.stdout


def test_eval_no_matching_names(tmp_path, scored):
    write_image(tmp_path / "other" / "zzz.png", noise((H, W, 3)))
    r = invoke("eval", "--pred", tmp_path / "other", "--target", scored["clean"], "--json")
    out = json.loads(r.stdout)   # --json prints its object whatever happens
    assert r.exit_code == 2 and out["n"] == 0 and out["psnr_y"] is None and len(out["unpaired"]) == 3
    assert "no images with matching names in" in r.stderr


def test_eval_size_mismatch(tmp_path, scored):
    write_image(tmp_path / "small" / "0.png", noise((H - 2, W, 3)))
    r = invoke("eval", "--pred", tmp_path / "small", "--target", scored["clean"])
    assert r.exit_code == 1 and r.stdout == ""  # the only pair: no table to show
    assert "sizes differ" in r.stderr and "0.png" in r.stderr and "could be scored" in r.stderr
    r = invoke("eval", "--pred", tmp_path / "small", "--target", scored["clean"], "--json")
    assert r.exit_code == 1 and "sizes differ" in r.stderr   # a script still gets its object, saying why
    out = json.loads(r.stdout)
    assert out["n"] == 0 and out["psnr_y"] is None and out["per_image"] == [] and "sizes differ" in out["skipped"][0]


def test_eval_too_small_to_score(tmp_path):
    write_image(tmp_path / "t" / "a.png", noise((3, 300, 3)))
    r = invoke("eval", "--pred", tmp_path / "t", "--target", tmp_path / "t")
    assert r.exit_code == 1 and "too small" in r.stderr
    r = invoke("eval", "--pred", tmp_path / "t", "--target", tmp_path / "t", "--crop-border", "200")
    assert r.exit_code == 1 and "too small" in r.stderr


def test_eval_scores_16_bit_images_as_their_8_bit_scale(tmp_path):
    """A nearly black 16-bit pair (values up to 257) is scored on the 0-255 scale like its 8-bit twin."""
    rng = np.random.default_rng(3)
    clean = rng.integers(0, 2, (24, 32, 3)).astype(np.uint16) * 257
    noisy = clean.copy()
    noisy[::3, ::4] = 257 - noisy[::3, ::4]
    for folder, image in (("t", clean), ("p", noisy)):
        write_image(tmp_path / folder / "a.png", image)
        write_image(tmp_path / f"{folder}8" / "a.png", (image // 257).astype(np.uint8))
    wide = eval_json(tmp_path / "p", tmp_path / "t")
    assert wide["n"] == 1 and wide == eval_json(tmp_path / "p8", tmp_path / "t8")


def test_eval_reports_and_skips_bad_pairs(tmp_path, scored):
    """One line per bad pair (size, unreadable, too small, crop border); the rest scored; exit code 1."""
    pred = tmp_path / "pred"
    shutil.copytree(scored["clean"], pred)
    write_image(pred / "1.png", noise((H - 2, W, 3)))
    (pred / "2.png").write_bytes(b"not an image")
    write_image(scored["clean"] / "2.png", noise((H, W, 3)))
    write_image(pred / "3.png", noise((8, 8, 3)))
    write_image(scored["clean"] / "3.png", noise((8, 8, 3)))
    r = invoke("eval", "--pred", pred, "--target", scored["clean"], "--json")
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert out["n"] == 1 and [row["name"] for row in out["per_image"]] == ["0"] and out["psnr_y"] == MAX_PSNR
    assert len(out["skipped"]) == 3 and "sizes differ" in out["skipped"][0]
    assert "2.png" in out["skipped"][1] and "too small" in out["skipped"][2]
    assert "3 of 4" in r.stderr and all(line in r.stderr for line in out["skipped"])
    r = invoke("eval", "--pred", pred, "--target", scored["clean"], "--crop-border", "4")
    assert r.exit_code == 1 and "mean (1)" in r.stdout and "crop_border=4 leaves no pixels" in r.stderr


def test_eval_same_stem_files_are_not_paired(tmp_path, scored):
    pred = tmp_path / "pred"
    shutil.copytree(scored["clean"], pred)
    write_image(pred / "0.bmp", np.zeros((H, W, 3), np.uint8))  # 0.png or 0.bmp against clean/0.png?
    r = invoke("eval", "--pred", pred, "--target", scored["clean"], "--json")
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert [row["name"] for row in out["per_image"]] == ["1"]
    assert "0.bmp" in out["skipped"][0] and "0.png" in out["skipped"][0] and "rename" in out["skipped"][0]
    assert out["skipped"][0] in r.stderr


def test_eval_names_files_without_a_partner(tmp_path, scored):
    pred = tmp_path / "pred"
    shutil.copytree(scored["clean"], pred)
    write_image(pred / "onlyp.png", noise((H, W, 3)))
    write_image(pred / "D.png", noise((H, W, 3)))
    write_image(scored["clean"] / "d.png", noise((H, W, 3)))
    r = invoke("eval", "--pred", pred, "--target", scored["clean"], "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["n"] == 2 and out["skipped"] == []
    assert sorted(out["unpaired"]) == sorted(str(p) for p in (pred / "D.png", pred / "onlyp.png",
                                                              scored["clean"] / "d.png"))
    assert "3 image(s) without a partner" in r.stderr and "onlyp.png" in r.stderr
    r = invoke("eval", "--pred", pred, "--target", scored["clean"], "-q")
    assert r.exit_code == 0 and "mean (2)" in r.stdout and r.stderr == ""


def test_eval_no_reference_keeps_same_stem_files_apart(tmp_path):
    for name, seed in (("x.png", 1), ("x.jpg", 2), ("y.png", 3)):
        write_image(tmp_path / "a" / name, rainy(96, 192, seed))
    for name, seed in (("x.png", 1), ("y.png", 3)):
        write_image(tmp_path / "b" / name, rainy(96, 192, seed))
    r = invoke("eval", "--no-reference", tmp_path / "a", "--json")
    assert r.exit_code == 0, r.output
    assert [row["name"] for row in json.loads(r.stdout)["per_image"]] == ["x.jpg", "x.png", "y"]
    r = invoke("eval", "--no-reference", tmp_path / "a", "--compare", tmp_path / "b", "--json")
    assert r.exit_code == 1  # x: which of a/x.jpg and a/x.png goes with b/x.png?
    out = json.loads(r.stdout)
    assert [row["name"] for row in out["per_image"]] == ["y"] and out["unpaired"] == []
    assert "x.jpg and" in r.stderr and "x.png" in r.stderr and "rename" in r.stderr


# --- mask and refs -------------------------------------------------------------------------------------------

@pytest.fixture
def rainy_folder(tmp_path):
    folder = tmp_path / "rainy"
    write_image(folder / "a.png", rainy(seed=1))
    write_image(folder / "b.png", rainy(seed=2))
    return folder


def test_mask_file_and_folder(tmp_path, rainy_folder):
    r = invoke("mask", rainy_folder, "-o", tmp_path / "masks", "-q")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["a.png", "b.png"]
    m = read_image(tmp_path / "masks" / "a.png")
    assert m.shape == (H, W) and set(np.unique(m)) <= {0, 255} and 0 < (m > 0).mean() < 0.5

    r = invoke("mask", rainy_folder / "a.png", "-o", tmp_path / "one.png")
    assert r.exit_code == 0, r.output
    assert np.array_equal(read_image(tmp_path / "one.png"), m)
    assert r.stdout == f"a.png -> {tmp_path / 'one.png'} (rain on {(m > 10).mean():.1%} of the pixels)\n"


def test_refs_of_a_folder_are_done_only_when_every_reference_is_written(tmp_path, rainy_folder):
    out = tmp_path / "refs"
    assert invoke("refs", rainy_folder, "-o", out, "--mean-only", "-q").exit_code == 0
    r = invoke("refs", rainy_folder, "-o", out, "--n", "2")   # the means exist, the references not yet
    assert r.exit_code == 0 and "skip" not in r.stdout, r.output
    assert sorted(p.name for p in (out / "a").iterdir()) == ["0.png", "1.png"]
    (out / "b" / "1.png").unlink()   # as a run stopped half way through b leaves it
    r = invoke("refs", rainy_folder, "-o", out, "--n", "2")
    assert r.stdout.splitlines()[0] == f"skip a.png: {out / 'a' / '1.png'} exists (use --force to redo)"
    assert (out / "b" / "1.png").is_file()


@pytest.mark.parametrize("command", ["mask", "refs"])
def test_mask_and_refs_of_a_folder_skip_existing_outputs_unless_forced(tmp_path, rainy_folder, command):
    out = tmp_path / "out"
    shutil.copytree(rainy_folder, out)   # a folder of results with the same names: not to be written over
    before = (out / "a.png").read_bytes()
    extra = ["--mean-only"] if command == "refs" else []
    r = invoke(command, rainy_folder, "-o", out, *extra)
    assert r.exit_code == 0, r.output
    assert f"skip a.png: {out / 'a.png'} exists (use --force to redo)" in r.stdout
    assert (out / "a.png").read_bytes() == before
    r = invoke(command, rainy_folder, "-o", out, *extra, "--force", "-q")
    assert r.exit_code == 0 and (out / "a.png").read_bytes() != before


def test_refs_file_layout_and_values(tmp_path, rainy_folder):
    out = tmp_path / "refs"
    r = invoke("refs", rainy_folder / "a.png", "-o", out, "--n", "3")
    assert r.exit_code == 0, r.output
    assert r.stdout == f"a.png -> {out / 'a.png'} and 3 references in {out / 'a'}\n"
    assert sorted(p.name for p in out.iterdir()) == ["a", "a.png"]
    assert sorted(p.name for p in (out / "a").iterdir()) == ["0.png", "1.png", "2.png"]

    assert invoke("mask", rainy_folder / "a.png", "-o", tmp_path / "mask.png").exit_code == 0
    rain = read_image(tmp_path / "mask.png") > 0
    assert rain.any() and not rain.all()
    image = read_image(rainy_folder / "a.png")
    refs = [read_image(out / "a.png")] + [read_image(out / "a" / f"{k}.png") for k in range(3)]
    for ref in refs:
        assert ref.shape == image.shape
        assert np.array_equal(ref[~rain], image[~rain])  # untouched outside the mask
    assert not np.array_equal(refs[0][rain], image[rain])  # and rain pixels were replaced


def test_refs_folder_and_mean_only(tmp_path, rainy_folder):
    out = tmp_path / "refs"
    r = invoke("refs", rainy_folder, "-o", out, "--n", "2", "-q")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["a", "a.png", "b", "b.png"]
    assert sorted(p.name for p in (out / "b").iterdir()) == ["0.png", "1.png"]

    mean_only = tmp_path / "mean"
    r = invoke("refs", rainy_folder, "-o", mean_only, "--mean-only", "-q")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in mean_only.iterdir()) == ["a.png", "b.png"]
    assert np.array_equal(read_image(mean_only / "a.png"), read_image(out / "a.png"))
    assert [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")] == []


def test_version():
    r = invoke("--version")
    assert r.exit_code == 0 and "rain2avoid" in r.stdout



# --- backbones and targets of the reference --------------------------------------------------------------

@pytest.mark.parametrize("backbone", ["restormer", "drsformer"])
def test_transformer_backbones_derain_train_apply(tmp_path, backbone):
    # Full-size networks on a tiny image, one step: only that the wiring works (they are slow on a CPU).
    write_image(tmp_path / "in" / "a.png", rainy(16, 24))
    r = invoke("derain", tmp_path / "in" / "a.png", "-o", tmp_path / "a.png", "--backbone", backbone,
               "--preset", "reference", "--refs", "2", "--steps", "1", "-q")
    assert r.exit_code == 0, r.output
    assert read_image(tmp_path / "a.png").shape == (16, 24, 3)
    model = tmp_path / "m.pt"
    r = invoke("train", tmp_path / "in", "--model", model, "--backbone", backbone, "--preset", "reference",
               "--refs", "2", "--steps", "0", "-q")
    assert r.exit_code == 0, r.output
    r = invoke("apply", tmp_path / "in", "--model", model, "-o", tmp_path / "out", "-q")
    assert r.exit_code == 0, r.output
    assert read_image(tmp_path / "out" / "a.png").shape == (16, 24, 3)


def test_online_target_derain_and_train(tmp_path):
    write_image(tmp_path / "in" / "a.png", rainy(seed=1))
    r = invoke("derain", tmp_path / "in", "-o", tmp_path / "d", "--target", "online", "--steps", "3",
               "--save-intermediates", "-q")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["a.png", "a_mask.png", "a_reference.png"]
    r = invoke("train", tmp_path / "in", "--model", tmp_path / "m.pt", "--target", "online", "--steps", "3", "-q")
    assert r.exit_code == 0, r.output
    from rain2avoid.sdrl import load_model
    assert load_model(tmp_path / "m.pt").settings.target == "online"


def test_layer_option_reaches_derain_and_train(tmp_path, monkeypatch):
    import rain2avoid.pipeline as pipeline
    asked = []
    real = pipeline.missed_rain
    monkeypatch.setattr(pipeline, "missed_rain", lambda *a: asked.append(a[-1].layer) or real(*a))
    write_image(tmp_path / "in" / "a.png", rainy(96, 128, seed=1))
    for levels in ("0", "7.5"):
        r = invoke("derain", tmp_path / "in" / "a.png", "-o", tmp_path / f"{levels}.png", "--layer", levels,
                   "--steps", "1", "-q")
        assert r.exit_code == 0, r.output
    assert asked == [7.5]                        # --layer 0 never looks for missed rain
    r = invoke("train", tmp_path / "in", "--model", tmp_path / "m.pt", "--layer", "0", "--steps", "1", "-q")
    assert r.exit_code == 0, r.output
    from rain2avoid.sdrl import load_model
    assert load_model(tmp_path / "m.pt").settings.layer == 0 and asked == [7.5]
    r = invoke("derain", tmp_path / "in" / "a.png", "-o", tmp_path / "b.png", "--layer", "-1")
    assert r.exit_code == 2 and "--layer" in r.stderr


def test_help_names_every_backbone_and_target():
    from rain2avoid.networks import BACKBONES
    text = " ".join(invoke("derain", "--help").output.split())
    assert all(name in text for name in BACKBONES) and "online" in text and "--device cuda" in text


def test_derain_says_when_no_rain_streaks_were_found(tmp_path):
    flat = np.full((48, 64, 3), 120, np.uint8)
    flat[:, 30:] = 60
    write_image(tmp_path / "flat.png", flat)
    r = invoke("derain", tmp_path / "flat.png", "-o", tmp_path / "out.png", "--steps", "2")
    assert r.exit_code == 0, r.stderr
    assert "no rain streaks found" in r.stdout and "deg from vertical" not in r.stdout


# --- what a terminal shows on long runs ------------------------------------------------------------------------

@pytest.fixture
def terminal(monkeypatch):
    """Run the image commands as on a terminal (progress bars and their lines on)."""
    from rain2avoid.cli import images

    class TerminalContext(images.Context):
        def __init__(self, *args):
            super().__init__(*args)
            self.bars = not self.quiet

    monkeypatch.setattr(images, "Context", TerminalContext)


@pytest.mark.parametrize("preset, networks", [("fast", 1), ("high", 3)])
def test_derain_one_image_says_each_stage_on_a_terminal(tmp_path, terminal, preset, networks):
    """Finding the rain has no steps to count, yet takes most of a large photo's time: it is said, as
    is the cleaning after each network; -q says nothing."""
    write_image(tmp_path / "a.png", rainy(64, 96))
    r = invoke("derain", tmp_path / "a.png", "-o", tmp_path / "out.png", "--steps", "2", "--preset", preset)
    assert r.exit_code == 0, r.output
    lines = [line for line in r.stderr.splitlines() if line.endswith("...")]
    cleaning = ["cleaning the whole image..."] if networks == 1 else \
        [f"cleaning the whole image (network {k} of {networks})..." for k in range(1, networks + 1)]
    assert lines == ["finding the rain and its references..."] + cleaning
    r = invoke("derain", tmp_path / "a.png", "-o", tmp_path / "out.png", "--steps", "2", "-q")
    assert r.exit_code == 0 and r.stdout == "" and r.stderr == ""


def test_train_closes_references_bar_before_training(tmp_path, terminal, monkeypatch):
    """The 'references' bar stops when the last image is read: its time and rate leave the training out."""
    from rain2avoid import sdrl
    from rain2avoid.cli import images
    bars, seen = [], []

    class Bar(images.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    fit = sdrl._fit

    def recording_fit(*args, **kwargs):
        seen.append([(bar.desc, bar.n, bar.disable) for bar in bars])
        return fit(*args, **kwargs)

    monkeypatch.setattr(images, "tqdm", Bar)
    monkeypatch.setattr(sdrl, "_fit", recording_fit)
    for k in range(2):
        write_image(tmp_path / "in" / f"{k}.png", rainy(24, 32, seed=k))
    r = invoke("train", tmp_path / "in", "--model", tmp_path / "m.pt", "--steps", "2")
    assert r.exit_code == 0, r.output
    assert seen == [[("references", 2, True)]]  # closed (a closed bar is disabled) when training starts


def test_ctrl_c_while_a_command_starts_says_interrupted_with_exit_code_130(tmp_path, monkeypatch):
    import rain2avoid.cli.images as images

    def interrupted(device):   # Ctrl-C before the command's own handler is in place (imports, checks)
        raise KeyboardInterrupt

    monkeypatch.setattr(images, "check_device", interrupted)
    write_image(tmp_path / "in" / "a.png", dry_photo())
    result = invoke("train", tmp_path / "in", "--model", tmp_path / "m.pt")
    assert (result.exit_code, result.stderr) == (130, "interrupted\n")   # not click's "Aborted!" and exit 1
    assert not (tmp_path / "m.pt").exists()


def test_a_library_warning_is_one_line_said_once(tmp_path):
    damaged = b"Exif\x00\x00MM\x00*\xff\xff\xff\xff" + b"\x00" * 20   # its first directory lies past the end
    Image.fromarray(dry_photo()).save(tmp_path / "a.jpg", exif=damaged, quality=95)
    result = invoke("derain", tmp_path / "a.jpg", "-o", tmp_path / "out.jpg", "--steps", "1")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines == ["warning: Corrupt EXIF data. Expecting to read 2 bytes but only got 0."], lines   # not Pillow's path


def test_an_unsupported_input_and_output_are_told_together(tmp_path):
    Image.fromarray(dry_photo()).save(tmp_path / "a.gif")
    r = invoke("derain", tmp_path / "a.gif", "-o", tmp_path / "b.gif")
    assert r.exit_code == 2 and r.stderr.strip().splitlines()[-1].endswith(
        "unsupported image format '.gif' (use one of .png .jpg .jpeg .bmp .tif .tiff .webp); nor are '.gif' files "
        "read: convert a.gif to PNG first")   # not one message, then the other after the output is renamed


def test_a_read_only_single_output_is_refused_before_the_work(tmp_path, monkeypatch):
    import rain2avoid.batch.work as work
    write_image(tmp_path / "a.png", dry_photo())
    (tmp_path / "out.png").write_bytes(b"kept")
    (tmp_path / "out.png").chmod(0o444)

    def no_work(*args, **kwargs):
        raise AssertionError("the image was derained before the output was checked")
    monkeypatch.setattr(work.DerainTask, "compute", no_work)
    r = invoke("derain", tmp_path / "a.png", "-o", tmp_path / "out.png", "--steps", "1")
    assert r.exit_code == 1 and r.stderr.strip() == (f"Error: cannot write {tmp_path / 'out.png'}: the file is "
                                                     "read-only; make it writable (chmod u+w) to replace it, "
                                                     "or write elsewhere")
    assert (tmp_path / "out.png").read_bytes() == b"kept"


def test_a_read_only_model_is_refused_before_the_training(tmp_path, monkeypatch):
    import rain2avoid.batch.train as train
    write_image(tmp_path / "in" / "a.png", dry_photo())
    assert invoke("train", tmp_path / "in", "--model", tmp_path / "m.pt", "--steps", "0", "-q").exit_code == 0
    (tmp_path / "m.pt").chmod(0o444)
    before = (tmp_path / "m.pt").read_bytes()

    def no_training(*args, **kwargs):
        raise AssertionError("trained before the model file was checked")
    monkeypatch.setattr(train, "train_files", no_training)
    r = invoke("train", tmp_path / "in", "--model", tmp_path / "m.pt", "--steps", "1")
    assert r.exit_code == 1 and r.stderr.strip() == (f"Error: model not saved: cannot write {tmp_path / 'm.pt'}: "
                                                     "the file is read-only; make it writable (chmod u+w) to "
                                                     "replace it, or write elsewhere")
    assert (tmp_path / "m.pt").read_bytes() == before
