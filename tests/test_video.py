"""Video: files in and out (PyAV), temporal references, derain_video and the video command line.

Clips are tiny (8-12 frames of 96x128 or smaller, a few dozen training steps), so
the whole file takes seconds. Quality and speed on full-size clips are measured
by ``benchmarks/video.py``.
"""

from __future__ import annotations

import os
import sys
from fractions import Fraction

import numpy as np
import pytest
from conftest import invoke

from rain2avoid import derain, derain_video, psnr, read_image, write_image
from rain2avoid.metrics import flicker
from rain2avoid.synth import clean_example, rainy_clip
from rain2avoid.video import (
    VideoReadError,
    VideoWriteError,
    VideoWriter,
    check_output,
    probe,
    read_frames,
    sniff_video,
    write_video,
)
from rain2avoid.video.temporal import (
    alignment_features,
    estimate_shift,
    refine_shift,
    shift_image,
    sliding_references,
    temporal_reference,
)

av = pytest.importorskip("av", reason='video needs PyAV: pip install "rain2avoid[video]"')

H, W = 64, 96
FPS = Fraction(30000, 1001)


@pytest.fixture(scope="module")
def clip():
    """(rainy, clean): 8 frames of 96x128, a slow pan, rain redrawn every frame."""
    return rainy_clip(clean_example("coffee", size=None), frames=8, size=(96, 128), pan=(2, 0.5), seed=4)


def frames_of(path):
    return np.stack(list(read_frames(path)))


def noise_frames(n=6, h=H, w=W, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def with_audio(path, frames, fps=25, codec="aac", rate=16000):
    """Write ``frames`` and one second of a 440 Hz tone with PyAV directly."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264" if codec == "aac" else "ffv1", rate=fps)
        video.width, video.height = frames.shape[2], frames.shape[1]
        video.pix_fmt = "yuv420p" if codec == "aac" else "bgr0"
        audio = out.add_stream(codec, rate=rate)
        audio.layout = "mono"
        for f in frames:
            out.mux(video.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(video.encode(None))
        fmt = audio.codec_context.codec.audio_formats[0].name
        tone = np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
        data = (tone * 0.3).astype(np.float32) if fmt.startswith("flt") else (tone * 9000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(data[None], format=fmt, layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        out.mux(audio.encode(frame))
        out.mux(audio.encode(None))


def varsize_avi(path, frames, fps=12):
    """An MJPEG AVI whose frames need not all have the same size (each JPEG encoded on its own)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mjpeg", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuvj420p"
        for i, f in enumerate(frames):
            jpeg = av.CodecContext.create("mjpeg", "w")
            jpeg.width, jpeg.height, jpeg.pix_fmt, jpeg.time_base = f.shape[1], f.shape[0], "yuvj420p", Fraction(1, fps)
            picture = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuvj420p")
            for packet in list(jpeg.encode(picture)) + list(jpeg.encode(None)):
                packet.stream, packet.time_base, packet.pts, packet.dts = stream, Fraction(1, fps), i, i
                out.mux(packet)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- files in and out -------------------------------------------------------------------------------------------

def test_mkv_round_trip_is_lossless_and_keeps_rate_size_and_count(tmp_path):
    frames = noise_frames(7)
    write_video(tmp_path / "a.mkv", frames, fps=FPS)
    info = probe(tmp_path / "a.mkv")
    assert (info.container, info.codec, info.width, info.height, info.frames, info.fps) == \
        ("mkv", "ffv1", W, H, 7, FPS)
    assert np.array_equal(frames_of(tmp_path / "a.mkv"), frames)
    assert leftovers(tmp_path) == []
    write_video(tmp_path / "b.mkv", frames, fps=FPS)               # the same frames: the same file, byte for byte
    assert (tmp_path / "b.mkv").read_bytes() == (tmp_path / "a.mkv").read_bytes()


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".webm", ".avi"])
def test_lossy_round_trips_keep_rate_size_and_count(tmp_path, suffix, clip):
    frames = clip[1][:6, :64, :96]
    write_video(tmp_path / f"a{suffix}", frames, fps=FPS)
    info = probe(tmp_path / f"a{suffix}")
    assert (info.width, info.height, info.frames, info.fps) == (96, 64, 6, FPS)
    back = frames_of(tmp_path / f"a{suffix}")
    assert back.shape == frames.shape
    assert psnr(back.reshape(-1, 96, 3), frames.reshape(-1, 96, 3)) > 30   # high quality, not just any frames
    assert info.container == {".mp4": "mp4", ".mov": "mov", ".webm": "webm", ".avi": "avi"}[suffix]
    if suffix == ".mp4":
        assert info.codec == "h264"


def test_container_is_told_by_content_not_name(tmp_path):
    write_video(tmp_path / "a.mkv", noise_frames(2))
    write_video(tmp_path / "b.mp4", noise_frames(2))
    (tmp_path / "a.mkv").rename(tmp_path / "clip.dat")
    assert sniff_video(tmp_path / "clip.dat") == "mkv" and sniff_video(tmp_path / "b.mp4") == "mp4"
    assert probe(tmp_path / "clip.dat").frames == 2
    write_image(tmp_path / "photo.png", noise_frames(1)[0])
    (tmp_path / "photo.png").rename(tmp_path / "photo.mp4")          # a PNG named .mp4 is not a video
    assert sniff_video(tmp_path / "photo.mp4") is None
    with pytest.raises(VideoReadError, match="not a video"):
        probe(tmp_path / "photo.mp4")


def test_a_folders_videos_come_from_one_listing(tmp_path, monkeypatch):
    """By content (clip.dat) or by name (photo.mp4, a PNG: listed so that it is reported); images,
    hidden files and other files left out; the folder listed once, named videos never opened."""
    import pathlib

    from rain2avoid.cli.common import list_inputs
    from rain2avoid.video import io as video_io
    write_video(tmp_path / "clip.mkv", noise_frames(2))
    (tmp_path / "clip.mkv").rename(tmp_path / "clip.dat")
    write_image(tmp_path / "still.png", noise_frames(1)[0])
    (tmp_path / "photo.mp4").write_bytes((tmp_path / "still.png").read_bytes())     # a PNG named .mp4
    (tmp_path / "notes.txt").write_text("no video")
    write_video(tmp_path / ".hidden.mkv", noise_frames(2))
    listed, sniffed = [], []
    iterdir, sniff = pathlib.Path.iterdir, video_io.sniff_video
    monkeypatch.setattr(pathlib.Path, "iterdir", lambda self: listed.append(self) or iterdir(self))
    monkeypatch.setattr(video_io, "sniff_video", lambda path: sniffed.append(path.name) or sniff(path))
    files, folder = list_inputs(tmp_path, videos=True)
    assert folder and [p.name for p in files] == ["still.png", "clip.dat", "photo.mp4"]
    assert listed.count(tmp_path) == 2 and sorted(sniffed) == ["clip.dat", "notes.txt"]   # images, then videos


def test_a_trees_videos_below_its_top_are_found_by_name(tmp_path):
    """With --recursive, the subfolders' files named as videos come too (after the top's, which are
    also told by content); below the top no file is opened to find a video in it."""
    from rain2avoid.cli.common import list_inputs
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    for name in ("top", "sub/unnamed"):   # videos by content, not by name
        write_video(tmp_path / f"{name}.mkv", noise_frames(2))
        (tmp_path / f"{name}.mkv").rename(tmp_path / f"{name}.dat")
    write_video(tmp_path / "sub" / "b.mkv", noise_frames(2))
    write_video(tmp_path / "sub" / "deeper" / "a.mp4", noise_frames(2))
    write_image(tmp_path / "sub" / "still.png", noise_frames(1)[0])
    files, _ = list_inputs(tmp_path, recursive=True, videos=True)
    assert [p.relative_to(tmp_path).as_posix() for p in files] == [
        "sub/still.png", "top.dat", "sub/b.mkv", "sub/deeper/a.mp4"]
    files, _ = list_inputs(tmp_path, recursive=False, videos=True)
    assert [p.name for p in files] == ["top.dat"]


def test_audio_is_copied(tmp_path):
    with_audio(tmp_path / "in.mp4", noise_frames(25))
    notes = write_video(tmp_path / "out.mkv", frames_of(tmp_path / "in.mp4"), fps=25, audio_from=tmp_path / "in.mp4")
    assert notes == [] and probe(tmp_path / "out.mkv").audio == "aac"
    with av.open(str(tmp_path / "out.mkv")) as f:
        seconds = sum(fr.samples for fr in f.decode(audio=0)) / f.streams.audio[0].rate
    assert seconds == pytest.approx(1.0, abs=0.1)
    # A container that cannot hold the codec gets it re-encoded, and says so.
    notes = write_video(tmp_path / "out.webm", noise_frames(5), fps=25, audio_from=tmp_path / "in.mp4")
    assert probe(tmp_path / "out.webm").audio == "opus" and "re-encoded" in notes[0]


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_truncated_video_is_one_clear_error_and_leaves_nothing(tmp_path, suffix):
    write_video(tmp_path / f"full{suffix}", noise_frames(12), fps=25)
    data = (tmp_path / f"full{suffix}").read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(data[:len(data) // 2])
    with pytest.raises(VideoReadError, match="truncated") as error:
        frames_of(tmp_path / f"cut{suffix}")
    assert "\n" not in str(error.value) and f"cut{suffix}" in str(error.value)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VideoReadError):
        derain_video(tmp_path / f"cut{suffix}", out / "derained.mkv", steps=5)
    assert list(out.iterdir()) == []


def test_a_variable_frame_rate_matroska_is_read_whole(tmp_path):
    """Its header gives no frame count and a rate of 24/s: duration times rate (19 frames) was taken
    for the count it announces, and its 10 frames for a truncation."""
    out = av.open(str(tmp_path / "vfr.mkv"), "w")
    stream = out.add_stream("ffv1", rate=24)
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    stream.codec_context.time_base = Fraction(1, 1000)
    for frame, pts in zip(noise_frames(10), [0, 40, 80, 200, 240, 400, 440, 480, 700, 740]):
        picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
        picture.pts, picture.time_base = pts, Fraction(1, 1000)
        out.mux(stream.encode(picture))
    out.mux(stream.encode())
    out.close()
    info = probe(tmp_path / "vfr.mkv")
    assert not info.announced and info.frames == 19
    assert frames_of(tmp_path / "vfr.mkv").shape == (10, H, W, 3)


def test_writer_error_leaves_no_partial_file(tmp_path):
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "out.mp4", 25) as writer:
            for frame in noise_frames(3):
                writer.write(frame)
            raise RuntimeError("stopped half way")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="frame 2"):
        with VideoWriter(tmp_path / "out.mkv", 25) as writer:
            writer.write(noise_frames(1)[0])
            writer.write(noise_frames(1, h=H + 2)[0])
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_video_is_not_replaced_and_a_replaced_one_keeps_its_permissions(tmp_path):
    target = tmp_path / "out.mkv"
    write_video(target, noise_frames(2), 25)
    target.chmod(0o600)
    write_video(target, noise_frames(3), 25)
    assert target.stat().st_mode & 0o777 == 0o600 and frames_of(target).shape[0] == 3
    target.chmod(0o444)
    with pytest.raises(VideoWriteError, match="the file is read-only; make it writable"):
        write_video(target, noise_frames(4), 25)
    assert frames_of(target).shape[0] == 3 and sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv"]


def test_frames_that_change_size_are_one_clear_error(tmp_path):
    frames = list(noise_frames(3)) + list(noise_frames(3, h=32, w=48))
    varsize_avi(tmp_path / "var.avi", frames)
    got = []
    with pytest.raises(VideoReadError, match="frame 4 is 48x32, the first frames 96x64: rain2avoid needs one "
                                             "frame size per clip"):
        for frame in read_frames(tmp_path / "var.avi"):
            got.append(frame)
    assert len(got) == 3                                     # raised as soon as the frame is read
    out = tmp_path / "out"
    with pytest.raises(VideoReadError, match="frame 4 is 48x32"):
        derain_video(tmp_path / "var.avi", out / "derained.mkv", steps=2)
    assert not out.exists() or list(out.iterdir()) == []
    with pytest.raises(ValueError, match="frame 4 is 48x32, the first frames 96x64"):
        list(sliding_references(iter(frames), radius=1))


def test_output_formats_are_checked_from_the_frame_size(tmp_path):
    assert check_output(tmp_path / "a.mkv", 65, 47) == "ffv1" and check_output(tmp_path / "a.avi", 64, 48) == "mpeg4"
    with pytest.raises(VideoWriteError, match="65x47: MPEG-4 needs an even width and height"):
        check_output(tmp_path / "a.avi", 65, 47)
    with pytest.raises(VideoWriteError, match="unsupported video format '.gif'"):
        check_output(tmp_path / "a.gif", 64, 48)
    # derain_video refuses an odd size for .avi before reading (let alone training on) a frame.
    write_video(tmp_path / "odd.mkv", noise_frames(3, h=47, w=65))
    write_image(tmp_path / "odd.png", noise_frames(1, h=47, w=65)[0])
    for src in (tmp_path / "odd.mkv", tmp_path / "odd.png"):
        stages = []
        with pytest.raises(VideoWriteError, match="even width and height"):
            derain_video(src, tmp_path / "out.avi", steps=2, on_frame=lambda *a: stages.append(a))
        assert stages == [] and not (tmp_path / "out.avi").exists() and leftovers(tmp_path) == []
    # An odd size in .mp4 is written, in 4:4:4 colour, with a note: many players cannot play that.
    notes = write_video(tmp_path / "odd.mp4", noise_frames(3, h=47, w=65))
    assert notes == ["an odd frame size (65x47) is written in 4:4:4 colour, which many players (browsers, phones) "
                     "cannot play: write .mkv, or crop the clip to an even size"]
    assert write_video(tmp_path / "even.mp4", noise_frames(3, h=48, w=64)) == []


# --- temporal references ----------------------------------------------------------------------------------------

def test_shift_is_found_through_rain(clip):
    rainy, _ = clip
    a, b = alignment_features(rainy[2]), alignment_features(rainy[5])
    dx, dy, response = estimate_shift(a, b)
    dx, dy = refine_shift(a, b, dx, dy)
    assert response > 0.1 and dx == pytest.approx(-6, abs=0.3) and dy == pytest.approx(-1.5, abs=0.3)
    moved, inside = shift_image(rainy[5], dx, dy)
    assert moved.shape == (96, 128, 3) and not inside[:, :5].any() and not inside[0].any() and inside[2:, 7:].all()


def test_reference_removes_rain_and_keeps_the_scene(clip):
    rainy, clean = clip
    refs = {t: ref for t, _, ref in sliding_references(iter(rainy), radius=2)}
    assert sorted(refs) == list(range(8))
    for t in (0, 4, 7):
        image = np.clip(np.rint(refs[t].image * 255), 0, 255).astype(np.uint8)
        trusted = refs[t].confidence > 0.99
        assert trusted.mean() > 0.8
        assert psnr(image, clean[t]) > psnr(rainy[t], clean[t]) + 8
        assert (image <= rainy[t]).all()                     # rain only adds light: nothing is brightened


def test_a_wide_moving_object_is_not_taken_for_rain():
    scene = np.full((5, 60, 80, 3), 60, np.uint8)
    scene[:, ::8] = 120                                       # some texture to align on
    for t in range(5):
        scene[t, 20:44, 10 + 8 * t:34 + 8 * t] = 230          # a bright car driving right
    aligned = [scene[n].astype(np.float32) for n in (0, 1, 3, 4)]
    ref = temporal_reference(scene[2], aligned, [np.ones((60, 80), bool)] * 4)
    car = np.s_[20:44, 26:50]
    assert np.array_equal(np.rint(ref.image[car] * 255), scene[2][car])   # the car stays
    assert ref.confidence[car].max() == 0                                # and the network decides there


def test_sliding_window_holds_a_bounded_number_of_frames(clip):
    rainy, _ = clip
    read = []

    def frames():
        for i, f in enumerate(rainy):
            read.append(i)
            yield f

    for t, frame, ref in sliding_references(frames(), radius=2, wanted=lambda i: i % 3 == 0):
        assert len(read) - t <= 5                            # never more than 2 * radius + 1 frames ahead
        assert (ref is not None) == (t % 3 == 0)
        assert np.array_equal(frame, rainy[t])
    one = list(sliding_references(iter(rainy[:1]), radius=3))
    assert len(one) == 1 and one[0][2].neighbours == 0 and one[0][2].confidence.max() == 0


# --- derain_video -----------------------------------------------------------------------------------------------

def test_derain_video_gets_closer_to_the_clean_clip(tmp_path, clip, monkeypatch):
    rainy, clean = clip
    write_video(tmp_path / "rainy.mkv", rainy, fps=FPS)
    r = derain_video(tmp_path / "rainy.mkv", tmp_path / "out.mkv", steps=40, sample=3, radius=2, seed=1)
    out = frames_of(tmp_path / "out.mkv")
    assert out.shape == rainy.shape and r.frames == 8 and probe(tmp_path / "out.mkv").fps == FPS
    before = np.mean([psnr(a, b) for a, b in zip(rainy, clean)])
    after = np.mean([psnr(a, b) for a, b in zip(out, clean)])
    assert after > before + 5
    assert flicker(out, clean) < 0.4 * flicker(rainy, clean)
    assert r.sample == [0, 4, 7] and 0.8 < r.trusted <= 1
    # The same seed gives the same clip, bit for bit.
    derain_video(tmp_path / "rainy.mkv", tmp_path / "again.mkv", steps=40, sample=3, radius=2, seed=1)
    assert np.array_equal(frames_of(tmp_path / "again.mkv"), out)
    # The network alone (no temporal reference in the output) also removes rain; with progress on
    # and no stderr (pythonw), silently: tqdm failed on sys.stderr None.
    monkeypatch.setattr(sys, "stderr", None)
    derain_video(tmp_path / "rainy.mkv", tmp_path / "net.mkv", model=r.model, radius=2, fuse=False, progress=True)
    assert np.mean([psnr(a, b) for a, b in zip(frames_of(tmp_path / "net.mkv"), clean)]) > before + 2


def test_a_model_can_be_applied_to_a_video(tmp_path, clip):
    rainy, clean = clip
    write_video(tmp_path / "rainy.mp4", rainy, fps=24)
    trained = derain_video(tmp_path / "rainy.mp4", tmp_path / "a.mp4", steps=30, sample=2, radius=2).model
    r = derain_video(tmp_path / "rainy.mp4", tmp_path / "b.mp4", model=trained, radius=2)
    assert r.model is trained and r.sample == []
    out = frames_of(tmp_path / "b.mp4")
    assert np.mean([psnr(a, b) for a, b in zip(out, clean)]) > np.mean([psnr(a, b) for a, b in zip(rainy, clean)])


def test_the_clip_network_can_start_from_a_trained_model(tmp_path, clip):
    rainy, clean = clip
    write_video(tmp_path / "rainy.mkv", rainy, fps=FPS)
    trained = derain_video(tmp_path / "rainy.mkv", tmp_path / "a.mkv", steps=30, sample=2, radius=2).model
    kw = dict(steps=3, sample=2, radius=2, fuse=False, seed=1)   # the network's output everywhere
    fresh = derain_video(tmp_path / "rainy.mkv", tmp_path / "fresh.mkv", **kw)
    tuned = derain_video(tmp_path / "rainy.mkv", tmp_path / "tuned.mkv", init=trained, **kw)
    assert tuned.model is not trained and tuned.sample == fresh.sample
    score = {name: np.mean([psnr(a, b) for a, b in zip(frames_of(tmp_path / f"{name}.mkv"), clean)])
             for name in ("fresh", "tuned")}
    assert score["tuned"] > score["fresh"] + 1   # 3 steps from the trained network, 3 from the identity
    with pytest.raises(ValueError, match="not both"):
        derain_video(tmp_path / "rainy.mkv", tmp_path / "c.mkv", model=trained, init=trained)
    with pytest.raises(ValueError, match="is a 'fast' network, not 'unet'"):   # as derain says it
        derain_video(tmp_path / "rainy.mkv", tmp_path / "d.mkv", init=trained, backbone="unet", **kw)
    assert not (tmp_path / "d.mkv").exists()


def test_a_still_image_through_the_video_path(tmp_path, rainy_pair):
    rainy, clean = rainy_pair
    write_image(tmp_path / "photo.png", rainy)
    # Image to image: exactly today's derain.
    derain_video(tmp_path / "photo.png", tmp_path / "out.png", steps=30, seed=2)
    assert np.array_equal(read_image(tmp_path / "out.png"), derain(rainy, steps=30, seed=2))
    # Image to video, and a one-frame video: one derained frame.
    for src, dst in ((tmp_path / "photo.png", tmp_path / "one.mkv"), (tmp_path / "one.mkv", tmp_path / "two.mkv")):
        if src.suffix == ".mkv":
            write_video(src, rainy[None])
        r = derain_video(src, dst, steps=40, seed=2)
        out = frames_of(dst)
        assert out.shape == (1,) + rainy.shape and r.frames == 1 and r.trusted == 0
        assert psnr(out[0], clean) > psnr(rainy, clean)


def test_derain_video_refuses_bad_outputs(tmp_path, clip):
    write_video(tmp_path / "rainy.mkv", clip[0][:3])
    with pytest.raises(ValueError, match="unsupported video format"):
        derain_video(tmp_path / "rainy.mkv", tmp_path / "out.gif")
    with pytest.raises(ValueError, match="is the input file; choose another output or pass overwrite=True"):
        derain_video(tmp_path / "rainy.mkv", tmp_path / "rainy.mkv")
    with pytest.raises(VideoReadError, match="no such file"):
        derain_video(tmp_path / "missing.mp4", tmp_path / "out.mp4")


def test_a_video_can_be_replaced_in_place(tmp_path, clip):
    with_audio(tmp_path / "clip.mp4", clip[0][:4])
    original = (tmp_path / "clip.mp4").read_bytes()
    (tmp_path / "copy.mp4").write_bytes(original)

    def stop(stage, done, total):
        if stage == "derain" and done == 2:
            raise RuntimeError("stopped half way")

    with pytest.raises(RuntimeError):                          # a failure leaves the input as it was
        derain_video(tmp_path / "clip.mp4", tmp_path / "clip.mp4", steps=2, radius=1, overwrite=True, on_frame=stop)
    assert (tmp_path / "clip.mp4").read_bytes() == original and leftovers(tmp_path) == []
    r = derain_video(tmp_path / "clip.mp4", tmp_path / "clip.mp4", steps=2, radius=1, overwrite=True)
    derain_video(tmp_path / "copy.mp4", tmp_path / "other.mp4", steps=2, radius=1)
    assert r.frames == 4 and (tmp_path / "clip.mp4").read_bytes() == (tmp_path / "other.mp4").read_bytes()
    assert probe(tmp_path / "clip.mp4").audio == "aac"


# --- command line -----------------------------------------------------------------------------------------------

def test_cli_derain_and_apply_videos(tmp_path, clip):
    rainy, clean = clip
    folder = tmp_path / "in"
    folder.mkdir()
    write_video(folder / "clip.mp4", rainy[:6], fps=24)
    (folder / "clip.mp4").rename(folder / "clip.bin")                  # content decides, not the name
    write_image(folder / "photo.png", rainy[0])
    r = invoke("derain", folder / "clip.bin", "-o", tmp_path / "one.mkv", "--steps", "20")
    assert r.exit_code == 0, r.output + r.stderr
    assert "6 frames" in r.output and frames_of(tmp_path / "one.mkv").shape == (6, 96, 128, 3)
    r = invoke("derain", folder, "-o", tmp_path / "out", "--steps", "20")
    assert r.exit_code == 0, r.output + r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.mp4", "photo.png"]
    assert "done: 1 image(s) and 1 video(s) written, 0 skipped (already done), 0 failed in " in r.stdout
    r = invoke("derain", folder, "-o", tmp_path / "out", "--steps", "20")   # the summary counts the video too
    assert r.exit_code == 0 and "done: 0 image(s) and 0 video(s) written, 2 skipped (already done)" in r.stdout
    r = invoke("train", folder, "--model", tmp_path / "m.pt", "--steps", "10")
    assert r.exit_code == 0 and "1 image(s)" in r.output                # videos are not training images
    r = invoke("apply", folder / "clip.bin", "--model", tmp_path / "m.pt", "-o", tmp_path / "applied.mp4")
    assert r.exit_code == 0, r.output + r.stderr
    assert probe(tmp_path / "applied.mp4").frames == 6
    (folder / "sub").mkdir()   # a tree: its subfolder's video comes out in the same subfolder
    (folder / "clip.bin").rename(folder / "sub" / "clip.mp4")
    r = invoke("apply", folder, "--model", tmp_path / "m.pt", "-o", tmp_path / "tree", "--recursive")
    assert r.exit_code == 0, r.output + r.stderr
    assert probe(tmp_path / "tree" / "sub" / "clip.mp4").frames == 6 and (tmp_path / "tree" / "photo.png").exists()


def test_cli_video_in_place_needs_overwrite(tmp_path, clip):
    write_video(tmp_path / "clip.mkv", clip[0][:3])
    original = frames_of(tmp_path / "clip.mkv")
    r = invoke("derain", tmp_path / "clip.mkv", "-o", tmp_path / "clip.mkv", "--steps", "2")
    assert r.exit_code == 2 and "pass --overwrite" in r.stderr
    r = invoke("derain", tmp_path / "clip.mkv", "-o", tmp_path / "clip.mkv", "--steps", "2", "--overwrite")
    assert r.exit_code == 0, r.output + r.stderr
    out = frames_of(tmp_path / "clip.mkv")
    assert out.shape == original.shape and not np.array_equal(out, original) and leftovers(tmp_path) == []


def test_cli_video_errors_are_one_line(tmp_path, clip, monkeypatch):
    write_video(tmp_path / "clip.mkv", clip[0][:4])
    data = (tmp_path / "clip.mkv").read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[:len(data) // 2])
    r = invoke("derain", tmp_path / "cut.mkv", "-o", tmp_path / "out.mkv", "--steps", "5")
    assert r.exit_code == 1 and "truncated" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out.mkv").exists() and leftovers(tmp_path) == []
    for wrong in ("out.png", "out.txt"):
        r = invoke("derain", tmp_path / "clip.mkv", "-o", tmp_path / wrong)
        assert r.exit_code == 2 and f"unsupported video format '{wrong[3:]}' (use one of .mp4" in r.stderr
    r = invoke("derain", tmp_path / "clip.mkv", "-o", tmp_path / "out.mkv", "--max-pixels", "1000")
    assert r.exit_code == 1 and "larger than --max-pixels 1000" in r.stderr and not (tmp_path / "out.mkv").exists()
    monkeypatch.setitem(__import__("sys").modules, "av", None)          # PyAV not installed
    r = invoke("derain", tmp_path / "clip.mkv", "-o", tmp_path / "out.mkv")
    assert r.exit_code == 2 and f'{tmp_path / "clip.mkv"} is a video; video needs PyAV: pip install "rain2avoid[video]"' in r.stderr
    write_image(tmp_path / "still.png", np.zeros((8, 8, 3), np.uint8))   # a photo written as a clip
    r = invoke("derain", tmp_path / "still.png", "-o", tmp_path / "still.mp4")
    assert r.exit_code == 2 and f'{tmp_path / "still.mp4"} is a video; video needs PyAV' in r.stderr



def test_a_killed_runs_temporary_video_is_removed_and_a_video_another_run_makes_is_skipped(tmp_path, clip):
    from rain2avoid.files import claim, locked_temporary
    rainy, _ = clip
    write_video(tmp_path / "in" / "clip.mkv", rainy[:3])
    out = tmp_path / "out"
    out.mkdir()
    (out / ".clip.mkv.0123456789ab.tmp").write_bytes(b"half a video")   # its writer was killed
    live, lock = locked_temporary(out / "clip.mkv")                       # a writer still at work
    other = claim(out / "clip.mkv")                                       # another run is making it
    r = invoke("derain", tmp_path / "in", "-o", out, "--steps", "5")
    assert r.exit_code == 0, r.output + r.stderr
    assert f"skip clip.mkv: {out / 'clip.mkv'} is being written by another run" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted([live.name, ".clip.mkv.claim"])   # the stale one gone
    other.release()
    os.close(lock)
    live.unlink()
    r = invoke("derain", tmp_path / "in", "-o", out, "--steps", "5")
    assert r.exit_code == 0 and sorted(p.name for p in out.iterdir()) == ["clip.mkv"], r.output + r.stderr


def test_sigterm_during_a_video_stops_it_like_ctrl_c(tmp_path, clip):
    import signal
    import subprocess
    import sys
    import time
    rainy, _ = clip
    write_video(tmp_path / "clip.mkv", rainy[:3])
    out = tmp_path / "out" / "clip.mkv"
    p = subprocess.Popen([sys.executable, "-m", "rain2avoid.cli", "derain", str(tmp_path / "clip.mkv"), "-o", str(out),
                          "--steps", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(8)   # importing, then training
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 143 and stderr.strip().splitlines()[-1] == f"interrupted: {out} not written", stderr
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
