"""No-reference metrics: NIQE and BRISQUE against their reference values, conventions, errors, and eval."""

import json
import re

import cv2
import numpy as np
import pytest
from conftest import invoke

from rain2avoid import brisque, niqe, read_image, write_image
from rain2avoid.noref import BRISQUE_MIN_SIZE, brisque_features, imresize
from rain2avoid.synth import clean_example


@pytest.fixture(scope="module")
def photo():
    return clean_example("astronaut", size=(224, 288))


def known_scores(folder):
    """{file: (NIQE, BRISQUE)} from the table in the data set's README."""
    rows = re.findall(r"^\| (\S+\.jpg) \| \S+ \| ([\d.]+) \| ([\d.]+) \|$", (folder / "README.md").read_text(), re.M)
    return {name: (float(n), float(b)) for name, n, b in rows}


def test_known_values_of_the_real_rain_photos(real_rain_dir):
    known = known_scores(real_rain_dir)
    assert len(known) == 15
    errors = {}
    for name, (n, b) in known.items():
        image = read_image(real_rain_dir / name)
        errors[name] = (niqe(image) - n, brisque(image) - b)
    assert max(abs(e[0]) for e in errors.values()) < 0.02, errors  # measured: 0.0007
    assert max(abs(e[1]) for e in errors.values()) < 0.5, errors  # measured: 0.01


def test_imresize_is_matlab_bicubic_with_antialiasing():
    # Halving: output i is centred on input 2i + 0.5 and weighs input j by cubic(d / 2) / 2, d = |j - 2i - 0.5|,
    # with Keys' cubic (a = -0.5): d = 0.5, 1.5, 2.5, 3.5 give 0.8671875, 0.2265625, -0.0703125, -0.0234375.
    impulse = np.zeros((32, 32))
    impulse[15, 15] = 1.0
    seen = np.zeros(16)
    seen[6:10] = np.array([-0.0703125, 0.8671875, 0.2265625, -0.0234375]) / 2  # outputs 6..9: d = 2.5 .. 3.5
    np.testing.assert_allclose(imresize(impulse, 0.5), np.outer(seen, seen), atol=1e-15)
    ramp = np.tile(np.arange(40.0), (10, 1))  # cubic interpolation keeps a ramp, away from the mirrored edges
    np.testing.assert_allclose(imresize(ramp, 0.5)[:, 2:-2], np.tile(np.arange(4.5, 36, 2), (5, 1)), atol=1e-12)
    np.testing.assert_allclose(imresize(np.full((7, 5), 3.0), 0.5), np.full((4, 3), 3.0))  # ceil(size / 2)


def test_one_convention_for_every_kind_of_image(photo):
    n, b = niqe(photo), brisque(photo)
    assert 2 < n < 8 and 0 < b < 60
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    alpha = np.random.default_rng(0).integers(0, 256, photo.shape[:2], dtype=np.uint8)
    assert niqe(np.dstack([photo, alpha])) == n and brisque(np.dstack([photo, alpha])) == b
    assert niqe(photo.astype(np.uint16) * 257) == pytest.approx(n, abs=1e-9)
    assert brisque(photo.astype(np.uint16) * 257) == pytest.approx(b, abs=1e-9)
    assert niqe(photo.astype(np.float32)) == pytest.approx(n, abs=1e-9)
    assert brisque(photo.astype(np.float64)) == pytest.approx(b, abs=1e-9)
    rgb_gray = np.repeat(gray[..., None], 3, axis=2)
    assert niqe(gray) == pytest.approx(niqe(rgb_gray), abs=1e-9) == niqe(gray[..., None])
    assert brisque(gray) == pytest.approx(brisque(rgb_gray), abs=1e-9)
    assert brisque_features(photo).shape == (36,)


def test_noise_and_blur_score_worse(photo):
    rng = np.random.default_rng(1)
    noisy = np.clip(photo + rng.normal(0, 25, photo.shape), 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(photo, (0, 0), 3)
    for distorted in (noisy, blurred):
        assert niqe(distorted) > niqe(photo) + 2
        assert brisque(distorted) > brisque(photo) + 10


@pytest.mark.parametrize("bad, message", [
    (np.zeros((4, 300, 300)), "shape"),
    (np.zeros((300, 300, 2), np.uint8), "shape"),
    (np.zeros((300, 300), np.int32), "int32"),
    (np.zeros((300, 300), bool), "bool"),
    (np.full((300, 300), np.nan), "NaN"),
    (np.random.default_rng(0).random((300, 300)), r"\[0, 1\].*multiply by 255"),   # a 0-1 float image
])
def test_bad_arrays_are_refused(bad, message):
    for metric in (niqe, brisque):
        with pytest.raises(ValueError, match=message):
            metric(bad)


def test_sizes_and_flat_images():
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match=r"two whole 96x96 blocks .* got 96x96"):
        niqe(rng.integers(0, 256, (96, 96), dtype=np.uint8))
    with pytest.raises(ValueError, match="96x191"):
        niqe(rng.integers(0, 256, (191, 96), dtype=np.uint8))
    assert np.isfinite(niqe(rng.integers(0, 256, (96, 192), dtype=np.uint8)))
    with pytest.raises(ValueError, match=f"at least {BRISQUE_MIN_SIZE}x{BRISQUE_MIN_SIZE}"):
        brisque(rng.integers(0, 256, (BRISQUE_MIN_SIZE - 1, 50), dtype=np.uint8))
    assert np.isfinite(brisque(rng.integers(0, 256, (BRISQUE_MIN_SIZE, BRISQUE_MIN_SIZE), dtype=np.uint8)))
    flat = np.full((200, 200, 3), 128, np.uint8)
    with pytest.raises(ValueError, match="texture"):
        niqe(flat)
    with pytest.raises(ValueError, match="contrast"):
        brisque(flat)


# --- eval --no-reference -----------------------------------------------------------------------------------------

@pytest.fixture
def two_folders(tmp_path, photo):
    """a/ holds x (clean), y (noisy) and bad (not an image); b/ holds x and y blurred, and z."""
    rng = np.random.default_rng(3)
    noisy = np.clip(photo + rng.normal(0, 20, photo.shape), 0, 255).astype(np.uint8)
    write_image(tmp_path / "a" / "x.png", photo)
    write_image(tmp_path / "a" / "y.png", noisy)
    write_image(tmp_path / "b" / "x.png", cv2.GaussianBlur(photo, (0, 0), 2))
    write_image(tmp_path / "b" / "y.jpg", cv2.GaussianBlur(noisy, (0, 0), 1))
    write_image(tmp_path / "b" / "z.png", photo)
    return tmp_path


def test_eval_no_reference_json_and_table(two_folders):
    r = invoke("eval", "--no-reference", two_folders / "a", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert set(out) == {"n", "niqe", "brisque", "n_niqe", "n_brisque", "per_image", "unpaired", "skipped"}
    assert out["n"] == out["n_niqe"] == out["n_brisque"] == 2
    assert out["unpaired"] == [] and out["skipped"] == []
    photo = read_image(two_folders / "a" / "x.png")
    assert out["per_image"][0] == {"name": "x", "niqe": niqe(photo), "brisque": brisque(photo)}
    assert out["niqe"] == pytest.approx(np.mean([row["niqe"] for row in out["per_image"]]))
    r = invoke("eval", "--no-reference", two_folders / "a")
    assert r.exit_code == 0 and "BRISQUE" in r.stdout and "mean (2)" in r.stdout
    assert f"{niqe(photo):.4f}" in r.stdout


def test_eval_compare_pairs_by_stem_and_counts_lower(two_folders):
    r = invoke("eval", "--no-reference", two_folders / "a", "--compare", two_folders / "b", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [row["name"] for row in out["per_image"]] == ["x", "y"] and out["n"] == 2
    assert "z" in r.stderr  # left out, said so
    for key in ("niqe", "brisque"):
        rows = out["per_image"]
        assert out[f"compare_{key}"] == pytest.approx(np.mean([row[f"compare_{key}"] for row in rows]))
        assert out[f"compare_{key}_lower"] == sum(row[f"compare_{key}"] < row[key] for row in rows)
    blurred = read_image(two_folders / "b" / "x.png")
    assert out["per_image"][0]["compare_niqe"] == niqe(blurred)
    r = invoke("eval", "--no-reference", two_folders / "a", "--compare", two_folders / "b")
    assert r.exit_code == 0 and "lower in B" in r.stdout and f"{out['compare_niqe_lower']} of 2" in r.stdout


def test_eval_no_reference_gives_an_image_too_small_for_niqe_its_brisque(two_folders, photo):
    small = photo[:120, :150]   # BRISQUE is defined, NIQE (two 96 px blocks) is not
    write_image(two_folders / "a" / "s.png", small)
    write_image(two_folders / "b" / "s.png", cv2.GaussianBlur(small, (0, 0), 1))
    r = invoke("eval", "--no-reference", two_folders / "a", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["n"], out["n_niqe"], out["n_brisque"]) == (3, 2, 3)
    assert out["per_image"][0] == {"name": "s", "niqe": None, "brisque": brisque(small)}
    assert out["niqe"] == pytest.approx(np.mean([row["niqe"] for row in out["per_image"][1:]]))
    assert out["brisque"] == pytest.approx(np.mean([row["brisque"] for row in out["per_image"]]))
    assert "s.png: niqe: the image must hold at least two whole 96x96 blocks" in r.stderr
    r = invoke("eval", "--no-reference", two_folders / "a", "--compare", two_folders / "b", "--json")
    out = json.loads(r.stdout)
    assert r.exit_code == 0 and (out["n"], out["n_niqe"], out["n_brisque"]) == (3, 2, 3)
    rows = [row for row in out["per_image"] if row["niqe"] is not None]
    assert out["compare_niqe"] == pytest.approx(np.mean([row["compare_niqe"] for row in rows]))
    r = invoke("eval", "--no-reference", two_folders / "a", "--compare", two_folders / "b")
    assert r.exit_code == 0 and "s                        n/a     n/a     n/a" in r.stdout
    assert "of 2" in r.stdout and "NIQE means over 2 of 3 image(s)" in r.stdout


def test_eval_json_of_an_empty_folder_is_printed_and_says_which_folder(two_folders, tmp_path):
    (tmp_path / "empty").mkdir()
    for args, message in ((["--no-reference", tmp_path / "empty"], "no images to score in"),
                          (["--no-reference", two_folders / "a", "--compare", tmp_path / "empty"], "no images in"),
                          (["--pred", tmp_path / "empty", "--target", two_folders / "a"], "no images in")):
        r = invoke("eval", *args, "--json")
        out = json.loads(r.stdout)
        assert r.exit_code == 2 and out["n"] == 0 and out["per_image"] == [], r.output
        assert f"{message} {tmp_path / 'empty'}" in r.stderr


def test_eval_no_reference_reports_and_skips_bad_files(two_folders):
    (two_folders / "a" / "bad.png").write_bytes(b"not an image")
    write_image(two_folders / "a" / "small.png", np.zeros((50, 50, 3), np.uint8))
    r = invoke("eval", "--no-reference", two_folders / "a", "--json")
    assert r.exit_code == 1
    assert json.loads(r.stdout)["n"] == 2
    assert "bad.png" in r.stderr and "small.png" in r.stderr and "2 of 4" in r.stderr
    (two_folders / "b" / "x.png").write_bytes(b"not an image either")
    (two_folders / "b" / "y.jpg").unlink()
    r = invoke("eval", "--no-reference", two_folders / "a", "--compare", two_folders / "b", "--json")
    out = json.loads(r.stdout)   # nothing scored: the object still comes, and says why
    assert r.exit_code == 1 and out["n"] == 0 and out["niqe"] is None and len(out["skipped"]) == 1


@pytest.mark.parametrize("args, message", [
    (["--no-reference", "A", "--pred", "A"], "leave out"),
    (["--pred", "A", "--target", "A", "--compare", "A"], "--compare goes with --no-reference"),
    (["--pred", "A"], "--no-reference DIR"),
])
def test_eval_flag_combinations(two_folders, args, message):
    r = invoke("eval", *[two_folders / "a" if a == "A" else a for a in args])
    assert r.exit_code == 2 and message in r.stderr
