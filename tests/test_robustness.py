"""The command line on bad input: one clear line per problem, no traceback, nothing half-written.

Bad image files, folders with some bad files, --max-pixels, usage errors,
unwritable outputs and damaged or malicious model files. Most run in-process
with CliRunner (stderr kept apart from stdout); a few run the real
``rain2avoid`` program to check exit codes and stderr as a user sees them.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import default_sigint, invoke

from rain2avoid.io import ImageReadError, read_image, write_image

H, W = 40, 56


def image(h=H, w=W, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def rainy(h=64, w=96, seed=3):
    """A picture with rain the default finds (an image without rain is written back as it was read)."""
    from rain2avoid.synth import add_rain, clean_example
    return add_rain(clean_example("coffee", size=(h, w)), angle=0, density=0.04, length=14, seed=seed)[0]


def tmp_files(folder):
    return [str(p) for p in folder.rglob(".*.tmp")]


def no_traceback(result_or_text):
    text = result_or_text if isinstance(result_or_text, str) else result_or_text.output
    return "Traceback" not in text


# --- bad image files --------------------------------------------------------------------------------------------

def _png_bytes(tmp_path):
    write_image(tmp_path / "_good.png", image())
    return (tmp_path / "_good.png").read_bytes()


BAD = {  # file name -> (content maker, word the reason must contain)
    "empty.png": (lambda good: b"", "empty"),
    "notes.png": (lambda good: b"this is a text file, not a picture\n", "not an image"),
    "noise.jpg": (lambda good: bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8)),
                  "not an image"),
    "cut.png": (lambda good: good[:len(good) // 2], "truncated"),
}


def make_bad(folder, good_png, names=BAD):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(BAD[name][0](good_png))


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_file_one_line_no_traceback_no_output(tmp_path, name):
    make_bad(tmp_path / "in", _png_bytes(tmp_path), [name])
    out = tmp_path / "out" / name
    r = invoke("derain", tmp_path / "in" / name, "-o", out, "--steps", "2")
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert name in lines[0] and BAD[name][1] in lines[0]
    assert no_traceback(r)
    assert not out.exists() and tmp_files(tmp_path) == []


def test_debug_shows_the_exception(tmp_path):
    make_bad(tmp_path, b"", ["empty.png"])
    r = invoke("derain", tmp_path / "empty.png", "-o", tmp_path / "o.png", "--debug", catch=True)
    assert isinstance(r.exception, ImageReadError)


def test_png_named_jpg_works(tmp_path):
    (tmp_path / "really_png.jpg").write_bytes(_png_bytes(tmp_path))
    r = invoke("derain", tmp_path / "really_png.jpg", "-o", tmp_path / "out", "--steps", "2")
    assert r.exit_code == 0, r.output
    assert read_image(tmp_path / "out" / "really_png.jpg").shape == (H, W, 3)


def test_jpeg_output_of_transparent_image_fails_cleanly(tmp_path):
    rgba = np.dstack([image(), np.full((H, W), 100, np.uint8)])
    write_image(tmp_path / "a.png", rgba)
    r = invoke("derain", tmp_path / "a.png", "-o", tmp_path / "a.jpg", "--steps", "2")
    assert r.exit_code == 1 and no_traceback(r)
    assert "transparency" in r.stderr and "a.png" in r.stderr
    assert not (tmp_path / "a.jpg").exists() and tmp_files(tmp_path) == []


@pytest.fixture
def trainings(monkeypatch):
    """The images a run trained a network for (in this process: one worker)."""
    import rain2avoid.pipeline as pipeline
    calls, real = [], pipeline.derain_detailed

    def counted(image, *args, **kwargs):
        calls.append(image.shape)
        return real(image, *args, **kwargs)

    monkeypatch.setattr(pipeline, "derain_detailed", counted)
    return calls


def test_transparency_in_jpeg_is_refused_before_training(tmp_path, trainings):
    write_image(tmp_path / "a.png", np.dstack([image(), np.full((H, W), 100, np.uint8)]))
    r = invoke("derain", tmp_path / "a.png", "-o", tmp_path / "a.jpg", "--steps", "2")
    assert r.exit_code == 1 and "transparency" in r.stderr and trainings == []


def test_content_that_its_extension_cannot_hold_is_refused_before_training(tmp_path, trainings):
    """A PNG named .jpg keeps its name, so the output is a JPEG: refused (not trained, then refused
    or silently cut to 8 bits) when that loses its transparency or its 16 bits; the others go on."""
    folder = tmp_path / "in"
    write_image(folder / "y.png", np.dstack([image(), np.full((H, W), 100, np.uint8)]))
    write_image(folder / "x.png", image().astype(np.uint16) * 257)
    write_image(folder / "ok.png", image(seed=1))
    (folder / "y.png").rename(folder / "y.jpg")
    (folder / "x.png").rename(folder / "x.jpg")
    r = invoke("derain", folder, "-o", tmp_path / "out", "--steps", "2", "--workers", "1")
    assert r.exit_code == 1 and no_traceback(r)
    assert "y.jpg holds PNG data with transparency, which a .jpg file cannot store: rename it to y.png" in r.stderr
    assert "x.jpg holds PNG data with 16 bits per sample" in r.stderr and "rename it to x.png" in r.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["ok.png"] and trainings == [(H, W, 3)]


# --- folders keep going ----------------------------------------------------------------------------------------

@pytest.fixture
def mixed(tmp_path):
    """A folder with two good images (one a PNG named .jpg) and every BAD file."""
    folder = tmp_path / "mixed"
    make_bad(folder, _png_bytes(tmp_path))
    write_image(folder / "good.png", image(seed=1))
    (folder / "png_named.jpg").write_bytes(_png_bytes(tmp_path))
    return folder


def test_folder_with_bad_files_does_the_good_ones(tmp_path, mixed):
    out = tmp_path / "out"
    r = invoke("derain", mixed, "-o", out, "--steps", "2")
    assert r.exit_code == 1 and no_traceback(r)
    assert sorted(p.name for p in out.iterdir()) == ["good.png", "png_named.jpg"]
    assert tmp_files(out) == []
    # The failures are listed together at the end, one line each.
    lines = r.stderr.strip().splitlines()
    assert lines[-len(BAD) - 1] == f"{len(BAD)} of {len(BAD) + 2} file(s) failed:"
    summary = lines[-len(BAD):]
    for name, (_, reason) in BAD.items():
        assert sum(name in line and reason in line for line in summary) == 1


def test_a_file_named_as_a_video_that_is_not_one_is_reported(tmp_path):
    pytest.importorskip("av")
    write_image(tmp_path / "in" / "a.png", image())
    (tmp_path / "in" / "bad.mp4").write_text("garbage\n")
    r = invoke("derain", tmp_path / "in", "-o", tmp_path / "out", "--steps", "1")
    assert r.exit_code == 1 and no_traceback(r)
    assert "1 of 2 file(s) failed:" in r.stderr and "bad.mp4" in r.stderr.splitlines()[-1]
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png"]


LOST_IN_TIFF16 = ("the metadata (EXIF and ICC; a TIFF's XMP, artist and copyright too) cannot be written into a "
                  "16-bit colour TIFF by this program; writing without it (a 16-bit PNG keeps it)")


def test_metadata_loss_is_one_warning_line_and_only_when_real(tmp_path):
    """A 16-bit colour TIFF cannot keep EXIF: said once, as a warning of the run, when there is
    some; tags about the file alone (resolution, software, description) are no EXIF."""
    tifffile = pytest.importorskip("tifffile")
    pixels = rainy().astype(np.uint16) * 257
    tifffile.imwrite(tmp_path / "plain.tif", pixels, photometric="rgb")
    tifffile.imwrite(tmp_path / "camera.tif", pixels, photometric="rgb", extratags=[(271, "s", 0, "Camera", True)])
    r = invoke("derain", tmp_path / "plain.tif", "-o", tmp_path / "o1.tif", "--steps", "1")
    assert r.exit_code == 0 and r.stderr == "", r.stderr
    p = run_program("derain", tmp_path / "camera.tif", "-o", tmp_path / "o2.tif", "--steps", "1")
    assert p.returncode == 0 and "Warning" not in p.stderr
    assert p.stderr.strip().splitlines() == [f"warning: {tmp_path / 'camera.tif'}: {LOST_IN_TIFF16}"]
    assert read_image(tmp_path / "o2.tif").dtype == np.uint16
    p = run_program("derain", tmp_path / "camera.tif", "-o", tmp_path / "o2.png", "--steps", "1")
    assert p.returncode == 0 and p.stderr == "", p.stderr   # as the warning says: PNG keeps it
    assert read_image(tmp_path / "o2.png", with_meta=True)[1].exif is not None


def test_metadata_losses_are_collected_per_call_not_through_warnings(tmp_path):
    """Folder runs collect what an output loses with ``encode_image(..., losses=)``, not with
    ``warnings.catch_warnings`` (process-wide, so threads would lose or swap each other's lines)."""
    import threading
    import warnings

    from rain2avoid.io import encode_image
    tifffile = pytest.importorskip("tifffile")
    pixels = image().astype(np.uint16) * 257
    tifffile.imwrite(tmp_path / "camera.tif", pixels, photometric="rgb", extratags=[(271, "s", 0, "Camera", True)])
    camera, meta = read_image(tmp_path / "camera.tif", with_meta=True)
    found = {}

    def encode(name: str, keep: bool) -> None:
        found[name] = []
        for _ in range(50):
            encode_image(tmp_path / f"{name}.tif", camera, meta if keep else None, losses=found[name])

    with warnings.catch_warnings():
        warnings.simplefilter("error")   # none may be issued
        threads = [threading.Thread(target=encode, args=(name, name == "lossy")) for name in ("lossy", "plain")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert found["plain"] == []
    assert found["lossy"] == [LOST_IN_TIFF16] * 50


def test_folder_all_good_exits_0(tmp_path):
    for i in range(2):
        write_image(tmp_path / "in" / f"{i}.png", image(seed=i))
    r = invoke("derain", tmp_path / "in", "-o", tmp_path / "out", "--steps", "2")
    assert r.exit_code == 0 and r.stderr == ""


def test_train_leaves_out_bad_files(tmp_path, mixed):
    model = tmp_path / "m.pt"
    r = invoke("train", mixed, "--model", model, "--steps", "3", "-q")
    assert r.exit_code == 1 and no_traceback(r)
    assert model.is_file()  # trained on the good ones
    assert "left out" in r.stderr and all(name in r.stderr for name in BAD)


def test_train_with_no_readable_image(tmp_path):
    make_bad(tmp_path / "bad", b"", ["empty.png", "notes.png"])
    r = invoke("train", tmp_path / "bad", "--model", tmp_path / "m.pt", "--steps", "1", "-q")
    assert r.exit_code == 1 and "no readable images" in r.stderr
    assert not (tmp_path / "m.pt").exists()


# --- usage errors: exit 2 --------------------------------------------------------------------------------------

def test_usage_errors_exit_2(tmp_path):
    write_image(tmp_path / "a.png", image())
    (tmp_path / "afile").write_text("x")
    (tmp_path / "empty_dir").mkdir()
    cases = [
        ["derain", tmp_path / "missing.png", "-o", tmp_path / "o.png"],
        ["derain", tmp_path / "a.png", "-o", tmp_path / "o.png", "--no-such-flag"],
        ["derain", tmp_path / "a.png"],  # no -o
        ["derain", tmp_path / "a.png", "-o", tmp_path / "a.png"],
        ["derain", tmp_path / "a.png", "-o", tmp_path / "o.gif"],
        ["derain", tmp_path, "-o", tmp_path / "afile"],  # a folder into a file
        ["derain", tmp_path / "empty_dir", "-o", tmp_path / "out"],
        ["derain", tmp_path / "a.png", "-o", tmp_path / "o.png", "--steps", "-1"],
        ["mask", tmp_path, "-o", tmp_path],  # masks would overwrite the inputs
        ["refs", tmp_path / "a.png", "-o", tmp_path / "afile"],
        ["train", tmp_path, "--model", tmp_path],
        ["eval", "--pred", tmp_path / "nope", "--target", tmp_path],
    ]
    before = sorted(os.listdir(tmp_path))
    for args in cases:
        r = invoke(*args)
        assert r.exit_code == 2, (args, r.output)
        assert "Error" in r.stderr and no_traceback(r)
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("args", [
    ["demo", "--seed", "-1"],
    ["train", "{in}", "--model", "{tmp}/m.pt", "--seed", "-3"],
    ["train", "{in}", "--model", "{tmp}/m.pt", "--steps", "99999999999999999999"],
    ["derain", "{in}/a.png", "-o", "{tmp}/o.png", "--seed", "-5"],
    ["derain", "{in}/a.png", "-o", "{tmp}/o.png", "--seed", "99999999999999999999"],
    ["derain", "{in}", "-o", "{tmp}/out", "--steps", "99999999999999999999"],
    ["refs", "{in}/a.png", "-o", "{tmp}/refs", "--seed", "4294967296"],
])
def test_seed_and_steps_out_of_range_are_usage_errors(tmp_path, args):
    write_image(tmp_path / "in" / "a.png", image())
    args = [a.format(tmp=tmp_path, **{"in": tmp_path / "in"}) for a in args]
    before = sorted(os.listdir(tmp_path))
    r = invoke(*args)
    assert r.exit_code == 2 and no_traceback(r), r.output
    assert "is not in the range 0<=x<=" in r.stderr
    assert sorted(os.listdir(tmp_path)) == before


def test_output_is_input_names_only_options_the_command_has(tmp_path):
    write_image(tmp_path / "a.png", image())
    for command in ("mask", "refs"):  # refs writes <stem>.png into the folder -o
        r = invoke(command, tmp_path / "a.png", "-o", tmp_path / ("a.png" if command == "mask" else ""))
        assert r.exit_code == 2 and "is the input file" in r.stderr and "--overwrite" not in r.stderr
    r = invoke("derain", tmp_path / "a.png", "-o", tmp_path / "a.png")
    assert r.exit_code == 2 and "--overwrite" in r.stderr


def test_a_folder_into_an_output_named_like_an_image_is_refused(tmp_path):
    write_image(tmp_path / "in" / "a.png", image())
    for args in (["derain", tmp_path / "in", "-o", tmp_path / "out.png", "--steps", "1"],
                 ["apply", tmp_path / "in", "--model", tmp_path / "m.pt", "-o", tmp_path / "out.png"],
                 ["mask", tmp_path / "in", "-o", tmp_path / "out.png"]):
        if args[0] == "apply" and not (tmp_path / "m.pt").exists():
            assert invoke("train", tmp_path / "in", "--model", tmp_path / "m.pt", "--steps", "1").exit_code == 0
        r = invoke(*args)
        assert r.exit_code == 2 and "out.png" in r.stderr and "folder" in r.stderr, r.output
        assert not (tmp_path / "out.png").exists()


def test_intermediates_of_two_inputs_with_one_name_are_refused(tmp_path, trainings):
    """a.png and a.jpg would both write a_mask.png, and so would the input a_mask.png."""
    write_image(tmp_path / "in" / "a.png", image())
    write_image(tmp_path / "in" / "a.jpg", image())
    write_image(tmp_path / "in" / "a_mask.png", image(seed=1))
    r = invoke("derain", tmp_path / "in", "-o", tmp_path / "out", "--steps", "1", "--save-intermediates")
    assert r.exit_code == 2 and "would both write" in r.stderr and "a_mask.png" in r.stderr, r.output
    assert not (tmp_path / "out").exists() and trainings == []
    (tmp_path / "in" / "a.jpg").unlink()
    r = invoke("derain", tmp_path / "in", "-o", tmp_path / "out", "--steps", "1", "--save-intermediates")
    assert r.exit_code == 2 and "a.png and" in r.stderr and "a_mask.png would both write" in r.stderr


def test_same_input_output_in_a_folder_needs_overwrite(tmp_path):
    write_image(tmp_path / "a.png", image())
    before = (tmp_path / "a.png").read_bytes()
    r = invoke("derain", tmp_path, "-o", tmp_path, "--steps", "2")
    assert r.exit_code == 2 and "--overwrite" in r.stderr
    assert (tmp_path / "a.png").read_bytes() == before


def test_two_inputs_one_output_is_refused(tmp_path):
    write_image(tmp_path / "in" / "a.png", image())
    write_image(tmp_path / "in" / "a.jpg", image())
    r = invoke("mask", tmp_path / "in", "-o", tmp_path / "masks")
    assert r.exit_code == 2 and "a.png" in r.stderr and "a.jpg" in r.stderr
    assert not (tmp_path / "masks").exists()


# --- --max-pixels ----------------------------------------------------------------------------------------------

def test_max_pixels_refuses_large_images(tmp_path):
    write_image(tmp_path / "in" / "big.png", image())  # 56 x 40 = 2240 pixels
    write_image(tmp_path / "in" / "small.png", image(8, 8))  # 64 pixels
    r = invoke("derain", tmp_path / "in" / "big.png", "-o", tmp_path / "big.png", "--max-pixels", "100")
    assert r.exit_code == 1 and no_traceback(r)
    assert "big.png" in r.stderr and "limit" in r.stderr and "--max-pixels" in r.stderr
    assert not (tmp_path / "big.png").exists()

    r = invoke("derain", tmp_path / "in", "-o", tmp_path / "out", "--max-pixels", "100", "--steps", "2")
    assert r.exit_code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["small.png"]
    assert "big.png" in r.stderr and "small.png" not in r.stderr


# --- unwritable outputs ----------------------------------------------------------------------------------------

def test_output_inside_a_file(tmp_path):
    write_image(tmp_path / "in" / "a.png", image())
    (tmp_path / "afile").write_text("I am a file")
    cases = [
        ["derain", tmp_path / "in" / "a.png", "-o", tmp_path / "afile" / "x.png", "--steps", "2"],
        ["derain", tmp_path / "in", "-o", tmp_path / "afile" / "sub", "--steps", "2"],
        ["mask", tmp_path / "in", "-o", tmp_path / "afile" / "masks"],
        ["refs", tmp_path / "in", "-o", tmp_path / "afile" / "refs", "--n", "1"],
        ["train", tmp_path / "in", "--model", tmp_path / "afile" / "m.pt", "--steps", "1"],
    ]
    for args in cases:
        r = invoke(*args)
        assert r.exit_code in (1, 2), (args, r.output)
        assert "afile" in r.stderr and no_traceback(r), (args, r.output)
        assert len([line for line in r.stderr.splitlines() if line.strip()]) <= 3  # usage header + 1 line
    assert (tmp_path / "afile").read_text() == "I am a file"


def _writable(folder):
    try:
        (folder / "probe").touch()
    except OSError:
        return False
    (folder / "probe").unlink()
    return True


@pytest.fixture
def unwritable(tmp_path):
    """A folder nobody can write in (for root too: immutable), or a skip where none can be made."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if _writable(folder):  # root: only the immutable attribute stops it
        try:
            subprocess.run(["chattr", "+i", str(folder)], capture_output=True, timeout=10)
        except OSError:
            pass
    if _writable(folder):
        pytest.skip("cannot make an unwritable folder here")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], capture_output=True, timeout=10)
    folder.chmod(0o755)


def test_unwritable_output_folder_fails_before_any_work(tmp_path, unwritable, trainings):
    for i in range(2):
        write_image(tmp_path / "in" / f"{i}.png", image(seed=i))
    for args in (["derain", tmp_path / "in", "-o", unwritable, "--steps", "2"],
                 ["derain", tmp_path / "in" / "0.png", "-o", unwritable / "0.png", "--steps", "2"],
                 ["train", tmp_path / "in", "--model", unwritable / "m.pt", "--steps", "2"]):
        r = invoke(*args)
        assert r.exit_code == 2 and no_traceback(r), r.output
        assert f"cannot write in output folder {unwritable}" in r.stderr
    assert trainings == [] and os.listdir(unwritable) == []


def test_train_never_replaces_an_input_or_a_file_that_is_not_a_model(tmp_path):
    for i in range(2):
        write_image(tmp_path / "in" / f"{i}.png", image(seed=i))
    write_image(tmp_path / "photo.png", image(seed=2))
    before = {p: p.read_bytes() for p in [tmp_path / "in" / "0.png", tmp_path / "photo.png"]}
    r = invoke("train", tmp_path / "in", "--model", tmp_path / "in" / "0.png", "--steps", "2")
    assert r.exit_code == 2 and "is one of the training images" in r.stderr
    r = invoke("train", tmp_path / "in", "--model", tmp_path / "photo.png", "--steps", "2")
    assert r.exit_code == 2 and "is not a model" in r.stderr
    assert all(p.read_bytes() == data for p, data in before.items())
    r = invoke("train", tmp_path / "in", "--model", tmp_path / "models" / "rain.png", "--steps", "2")
    assert r.exit_code == 2 and "is named like an image or a video" in r.stderr and "rain.pt" in r.stderr
    assert not (tmp_path / "models").exists()
    for _ in range(2):  # a model is replaced by the new one
        assert invoke("train", tmp_path / "in", "--model", tmp_path / "m.pt", "--steps", "1", "-q").exit_code == 0


def test_model_file_gets_the_usual_permissions(tmp_path):
    write_image(tmp_path / "in" / "a.png", image())
    previous = os.umask(0o022)
    try:
        assert invoke("train", tmp_path / "in", "--model", tmp_path / "m.pt", "--steps", "1", "-q").exit_code == 0
        assert invoke("derain", tmp_path / "in" / "a.png", "-o", tmp_path / "a.png", "--steps", "1").exit_code == 0
    finally:
        os.umask(previous)
    assert (tmp_path / "m.pt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o644
    assert tmp_files(tmp_path) == []


def test_program_train_ctrl_c_is_one_clean_line(tmp_path):
    write_image(tmp_path / "in" / "a.png", image())
    model = tmp_path / "models" / "m.pt"
    exe = Path(sys.executable).with_name("rain2avoid")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "rain2avoid.cli"]
    p = subprocess.Popen(cmd + ["train", str(tmp_path / "in"), "--model", str(model), "--steps", "1000000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    deadline = time.monotonic() + 60
    while not model.parent.is_dir() and time.monotonic() < deadline:
        time.sleep(0.05)  # made just before training starts
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    _, stderr = p.communicate(timeout=60)
    assert p.returncode == 130 and stderr.startswith("interrupted: no model was saved"), stderr
    assert len(stderr.strip().splitlines()) == 1 and not model.exists()


# --- damaged, foreign and malicious model files ----------------------------------------------------------------

class _Shell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


class _Open:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    write_image(root / "in" / "a.png", image())
    assert invoke("train", root / "in", "--model", root / "m.pt", "--steps", "1", "-q").exit_code == 0
    return root / "m.pt"


def _write_model(kind, path, trained, marker):
    if kind == "truncated":
        data = trained.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    elif kind == "random":
        path.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    elif kind == "text":
        path.write_text("not a model\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "foreign":
        torch.save({"a": 1}, path)
    elif kind == "pickle-shell":
        path.write_bytes(pickle.dumps(_Shell(marker)))
    elif kind == "pickle-open":
        path.write_bytes(pickle.dumps(_Open(marker)))
    elif kind == "torch-shell":
        torch.save(_Shell(marker), path)


MODEL_KINDS = ["truncated", "random", "text", "empty", "foreign", "pickle-shell", "pickle-open", "torch-shell"]


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_bad_model_file(tmp_path, trained_model, kind):
    write_image(tmp_path / "in" / "a.png", image())
    model, marker = tmp_path / f"{kind}.pt", tmp_path / "PWNED"
    _write_model(kind, model, trained_model, marker)
    r = invoke("apply", tmp_path / "in", "--model", model, "-o", tmp_path / "out")
    assert r.exit_code == 1 and no_traceback(r)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(model) in lines[0], r.stderr
    assert not marker.exists(), "loading the model ran code from it"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("make", [_Shell, _Open])
def test_malicious_payloads_are_real(tmp_path, make):
    """The payloads above do create the marker when unpickled unsafely, so the test above means something."""
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(make(marker)))
    assert marker.exists()


def test_missing_model(tmp_path):
    r = invoke("apply", tmp_path, "--model", tmp_path / "none.pt", "-o", tmp_path / "out")
    assert r.exit_code == 1 and "none.pt" in r.stderr and no_traceback(r)


@pytest.mark.parametrize("kind", ["missing", "truncated", "pickle-shell"])
def test_derain_init_with_a_bad_model_file(tmp_path, trained_model, kind):
    write_image(tmp_path / "in" / "a.png", image())
    model, marker = tmp_path / f"{kind}.pt", tmp_path / "PWNED"
    if kind != "missing":
        _write_model(kind, model, trained_model, marker)
    r = invoke("derain", tmp_path / "in", "--init", model, "-o", tmp_path / "out")
    assert r.exit_code == 1 and no_traceback(r)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --init:") and str(model) in lines[0], r.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_folder_given_as_a_model(tmp_path):
    write_image(tmp_path / "in" / "a.png", image())
    for args in (["derain", tmp_path / "in", "--init", tmp_path, "-o", tmp_path / "out"],
                 ["apply", tmp_path / "in", "--model", tmp_path, "-o", tmp_path / "out"]):
        r = invoke(*args)
        assert r.exit_code == 1 and f"{tmp_path}: is a folder, not a model file" in r.stderr, r.output
        assert not (tmp_path / "out").exists()


def test_derain_init_with_the_reference_preset_or_another_backbone_is_a_usage_error(tmp_path, trained_model):
    write_image(tmp_path / "a.png", image())
    r = invoke("derain", tmp_path / "a.png", "--init", trained_model, "--preset", "reference", "-o", tmp_path / "o.png")
    assert r.exit_code == 2 and "fast or high" in r.stderr and not (tmp_path / "o.png").exists()
    r = invoke("derain", tmp_path / "a.png", "--init", trained_model, "--backbone", "unet", "-o", tmp_path / "o.png")
    assert r.exit_code == 2 and "'fast' network, not 'unet'" in r.stderr and not (tmp_path / "o.png").exists()


# --- the real program --------------------------------------------------------------------------------------------

def run_program(*args):
    # The console script of this interpreter's environment (another one on PATH may belong elsewhere).
    exe = Path(sys.executable).with_name("rain2avoid")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "rain2avoid.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, env=env, timeout=120)


def png_cut_short_with_whole_chunks(good_png: bytes) -> bytes:
    """``good_png`` (IHDR, IDAT..., IEND) with half of its image data, in one IDAT chunk with the right
    length and CRC, still followed by IEND: every chunk is whole, so the damage shows only while decoding."""
    chunks, position = {}, 8
    while position < len(good_png):
        (length,) = struct.unpack(">I", good_png[position:position + 4])
        kind, payload = good_png[position + 4:position + 8], good_png[position + 8:position + 8 + length]
        chunks[kind] = chunks.get(kind, b"") + payload
        position += 12 + length

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    half = chunks[b"IDAT"][: len(chunks[b"IDAT"]) // 2]
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", chunks[b"IHDR"]) + chunk(b"IDAT", half) + chunk(b"IEND", b"")


def test_program_refuses_a_png_cut_short_with_whole_chunks_in_one_line(tmp_path):
    """libpng (inside OpenCV) printed "libpng error: Not enough image data" to the process's stderr
    beside the reader's error line; only the real program shows it."""
    folder = tmp_path / "in"
    folder.mkdir()
    cut = folder / "cut.png"
    cut.write_bytes(png_cut_short_with_whole_chunks(_png_bytes(tmp_path)))
    write_image(folder / "good.png", image(seed=1))
    error = f"error: cannot read {cut}: truncated or corrupt PNG file (the image data stops short)"
    p = run_program("derain", cut, "-o", tmp_path / "out.png", "--steps", "2")
    assert (p.returncode, p.stderr.splitlines()) == (1, [error])
    assert not (tmp_path / "out.png").exists()
    p = run_program("derain", folder, "-o", tmp_path / "out", "--steps", "2")
    assert p.returncode == 1
    assert p.stderr.splitlines() == [error, "1 of 2 file(s) failed:", "  " + error.removeprefix("error: ")]
    assert os.listdir(tmp_path / "out") == ["good.png"]


def test_program_folder_with_bad_files(tmp_path, mixed):
    p = run_program("derain", mixed, "-o", tmp_path / "out", "--steps", "2")
    assert p.returncode == 1
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    assert "[ WARN" not in p.stderr  # no OpenCV chatter about the truncated PNG
    errors = [line for line in p.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(BAD) and all(any(name in line for line in errors) for name in BAD)
    assert sorted(os.listdir(tmp_path / "out")) == ["good.png", "png_named.jpg"]

    p = run_program("derain", mixed, "-o", tmp_path / "out2", "--steps", "2", "--debug")
    assert p.returncode != 0 and "Traceback" in p.stderr and "ImageReadError" in p.stderr


def test_program_usage_error_and_bad_model(tmp_path):
    p = run_program("derain", tmp_path / "missing.png", "-o", tmp_path / "o.png")
    assert p.returncode == 2 and "missing.png does not exist" in p.stderr and "Traceback" not in p.stderr
    (tmp_path / "link.png").symlink_to(tmp_path / "moved.png")
    r = invoke("derain", tmp_path / "link.png", "-o", tmp_path / "o.png")
    assert r.exit_code == 2 and f"link.png is a symbolic link to {tmp_path / 'moved.png'}, which does not exist" in r.stderr

    marker = tmp_path / "PWNED"
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(_Shell(marker)))  # torch warns about its protocol
    write_image(tmp_path / "in" / "a.png", image())
    p = run_program("apply", tmp_path / "in", "--model", tmp_path / "evil.pt", "-o", tmp_path / "out")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "evil.pt" in p.stderr
    assert not marker.exists()


def test_temporary_files_match_the_whole_output_name(tmp_path, monkeypatch):
    from rain2avoid import files
    from rain2avoid.io import temporary_files, write_bytes
    left = []
    monkeypatch.setattr(files.os, "replace", lambda a, b: left.append(Path(a)))  # a write cut short
    write_bytes(tmp_path / "photo.png", b"png")
    write_bytes(tmp_path / "photo.jpg", b"jpg")
    png, jpg = left
    assert png.name.startswith(".photo.png.") and png.name.endswith(".tmp")
    assert temporary_files(tmp_path / "photo.png") == [png]
    assert temporary_files(tmp_path / "photo.jpg") == [jpg]
    assert temporary_files(tmp_path / "photo.webp") == []
