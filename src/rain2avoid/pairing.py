"""Pairing the images of two folders by file stem: ``rainy/3.png`` goes with ``derained/3.jpg``.

Two files of one stem in a folder (``3.png`` and ``3.jpg``) cannot be paired
by name: which one goes with the partner is a guess. They are never paired;
:func:`pair_by_stem` lists them apart, one line each, for the caller to
report, like the files that have no partner at all.

>>> from rain2avoid.pairing import pair_by_stem
>>> found = pair_by_stem("derained/", "clean/")
>>> found.pairs, found.ambiguous, found.unpaired
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .io import list_images

__all__ = ["Pairs", "by_stem", "pair_by_stem", "ambiguous_pair"]


@dataclass
class Pairs:
    """What :func:`pair_by_stem` found.

    ``pairs``: (stem, file of the first folder, file of the second), in the
    first folder's order; ``ambiguous``: one line per stem held by more than one
    file of a folder (left out of ``pairs``); ``unpaired``: the files whose stem
    is not in the other folder.
    """

    pairs: list = field(default_factory=list)
    ambiguous: list = field(default_factory=list)
    unpaired: list = field(default_factory=list)


def by_stem(files: Iterable[Path]) -> dict[str, list[Path]]:
    """The files grouped by stem, in their order; a stem with more than one file is ambiguous."""
    groups: dict[str, list[Path]] = {}
    for path in files:
        groups.setdefault(Path(path).stem, []).append(Path(path))
    return groups


def ambiguous_pair(stem: str, first: list[Path], second: list[Path]) -> str:
    """One line saying why the files ``first`` and ``second`` of ``stem`` are not paired."""
    def names(files: list[Path]) -> str:
        return " and ".join(str(f) for f in files)

    return (f"{stem}: cannot pair {names(first)} with {names(second)} (files whose names differ only "
            f"in the extension); rename one of them")


def pair_by_stem(first, second) -> Pairs:
    """Pair the images of the folders ``first`` and ``second`` that have the same stem.

    A stem that names more than one file of either folder is not paired but
    reported in ``ambiguous``; files without a partner are in ``unpaired``.
    """
    a, b = by_stem(list_images(first)), by_stem(list_images(second))
    found = Pairs()
    for stem, files in a.items():
        if stem not in b:
            found.unpaired += files
        elif len(files) > 1 or len(b[stem]) > 1:
            found.ambiguous.append(ambiguous_pair(stem, files, b[stem]))
        else:
            found.pairs.append((stem, files[0], b[stem][0]))
    found.unpaired += [f for stem, files in b.items() if stem not in a for f in files]
    return found
