"""Shared fixtures: the dev data set (skipped with a reason when absent) and small images."""

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from rain2avoid.cli import main

DEV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "rain100l-dev"


@pytest.fixture(scope="session")
def dev_dir() -> Path:
    if not (DEV / "input").is_dir():
        pytest.skip(f"dev data not found at {DEV} (it lives beside the checkout in ../shared/data)")
    return DEV


@pytest.fixture(scope="session")
def dev_pairs(dev_dir):
    """[(name, rainy RGB uint8, clean RGB uint8)] for the 20 dev images."""
    from rain2avoid.io import list_images, read_image
    return [(p.stem, read_image(p), read_image(dev_dir / "target" / p.name)) for p in list_images(dev_dir / "input")]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests use one torch thread: faster on the 2-core CI machine next to other work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def rainy_pair():
    """A small synthetic (rainy, clean) pair made by the project's own renderer."""
    from rain2avoid.synth import add_rain, clean_example
    clean = clean_example("coffee", size=(96, 128))
    rainy, _ = add_rain(clean, angle=0, density=0.04, length=14, seed=3)
    return rainy, clean


def benchmark_facade(seed: int, k: int, dense: bool = False):
    """(rainy, clean, rain layer) of image ``k`` of ``benchmarks/facade.py OUT --seed SEED
    [--dense]``: the same draws, image by image."""
    import numpy as np

    from rain2avoid.synth import add_rain, facade
    rng = np.random.default_rng(seed)
    for _ in range(k + 1):
        clean = facade(rng)
        if dense:
            rain = dict(angle=rng.uniform(-40, 40), density=rng.uniform(0.15, 0.3), length=rng.uniform(30, 40),
                        width=1, intensity=rng.uniform(0.15, 0.25), blur=rng.uniform(0.0, 0.8))
        else:
            rain = dict(angle=rng.uniform(-20, 20), density=rng.uniform(0.015, 0.04), length=rng.uniform(20, 40),
                        width=1, intensity=rng.uniform(0.5, 0.8), blur=rng.uniform(0.7, 1.0))
    rainy, layer = add_rain(clean, seed=seed * 1000 + k, **rain)
    return rainy, clean, layer


def benchmark_heavy(seed: int, k: int, blend: str = "add"):
    """(rainy, clean) of image ``k`` of ``benchmarks/heavy.py OUT --seed SEED [--blend BLEND]``
    (heavy rain and a veil on scikit-image photos): the same draws, image by image."""
    import sys

    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import heavy
    finally:
        sys.path.pop(0)
    from rain2avoid.synth import add_heavy_rain, random_heavy_rain
    rng = np.random.default_rng(seed)
    for i in range(k + 1):
        clean = heavy._crop(heavy._skimage_photo(heavy.PHOTOS[i % len(heavy.PHOTOS)]), rng)
        rain = random_heavy_rain(rng)
    rainy, _, _ = add_heavy_rain(clean, seed=seed * 1000 + k, blend=blend, **rain)
    return rainy, clean


@pytest.fixture(scope="session")
def mullion_facade():
    """Image 19 of the held-out dense facades (``benchmarks/facade.py OUT --n 24 --seed 3
    --dense``): faint dense rain 9 degrees off the mullions, which ``find_streaks`` also
    lists as a second direction of rain."""
    return benchmark_facade(3, 19, dense=True)


@pytest.fixture(scope="session")
def vertical_rain_facade():
    """Image 3 of ``benchmarks/facade.py OUT --seed 11``: Rain100L-like rain at 0.4 degrees,
    along the mullions."""
    return benchmark_facade(11, 3)


@pytest.fixture(scope="session")
def large_facade():
    """A dense facade of ``benchmarks/facade.py OUT --n 24 --dense`` (image 11) three times
    larger (1440 x 960, frames 3-18 px wide) under one layer of wide soft rain 3 degrees
    off its frames: (rainy, clean, rain layer in grey levels)."""
    import cv2

    from rain2avoid.synth import add_heavy_rain
    clean = cv2.resize(benchmark_facade(7, 11, dense=True)[1], None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    rain = dict(angle=-3, density=0.01, length=140, width=8, intensity=0.1, blur=2.6)
    rainy, layer, _ = add_heavy_rain(clean, [rain], seed=711)
    return rainy, clean, layer


def invoke(*args, catch=False):
    """Run ``rain2avoid ARGS``; stdout and stderr kept apart; crashes surface unless ``catch``."""
    try:
        runner = CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        runner = CliRunner()  # click >= 8.2 always keeps result.stderr apart
    return runner.invoke(main, [str(a) for a in args], catch_exceptions=catch)


REAL = DEV.parent / "real-rain-dev"


@pytest.fixture(scope="session")
def real_rain_dir() -> Path:
    """The 15 real rainy photos (no ground truth); skipped with a reason when absent."""
    if not (REAL / "README.md").is_file():
        pytest.skip(f"real-rain dev data not found at {REAL} (it lives beside the checkout in ../shared/data)")
    return REAL


def default_sigint():
    """For ``preexec_fn``: in the child before exec, Ctrl-C does what it does at a terminal. A shell
    without job control starts background commands with SIGINT ignored, which the program would
    inherit (and then ignore the test's Ctrl-C)."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def dry_photo(h=48, w=64):
    """A smooth colour gradient (uint8 RGB): no rain is found in it and no veil, so ``derain``
    gives it back untouched."""
    import numpy as np
    y, x = np.mgrid[:h, :w]
    return np.stack([60 + 2 * x, 40 + 3 * y, np.full_like(x, 90)], -1).astype(np.uint8)
