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


def test_split_names_is_a_fixed_partition():
    names = [f"n{i}" for i in range(50)]
    train, val = text.split_names(names, val_fraction=0.2, seed=0)
    assert len(val) == 10 and sorted(train + val) == sorted(names)
    assert text.split_names(names, val_fraction=0.2, seed=0) == (train, val)
    assert text.split_names(names, val_fraction=0.2, seed=1)[1] != val


def test_encode_names_pads_on_the_right():
    vocab = text.CharVocab([".abn"])
    x, y = text.encode_names(["ab", "nab"], vocab)
    assert x.shape == y.shape == (2, 4)
    assert vocab.decode(x[0]) == ".ab." and vocab.decode(x[1]) == ".nab"      # input padded with '.'
    assert vocab.decode(y[0][:3]) == "ab." and y[0, 3] == text.PAD
    assert vocab.decode(y[1]) == "nab."


def test_names_vocab():
    pytest.importorskip("names")
    vocab = text.names_vocab()
    assert vocab.chars[0] == text.BOUNDARY and "".join(vocab.chars[1:]) == "abcdefghijklmnopqrstuvwxyz"
