"""minidl.data: the digits load offline, with a fixed split."""

import socket

import pytest
import torch

from minidl.data import load_digits, loaders


def test_digits_shapes_and_ranges():
    s = load_digits()
    assert s.x_train.shape == (1438, 64) and s.x_test.shape == (359, 64)
    assert s.x_train.dtype == torch.float32 and s.y_train.dtype == torch.int64
    assert 0 <= s.x_train.min() and s.x_train.max() <= 1
    assert set(s.y_test.tolist()) == set(range(10))
    images = load_digits(flatten=False)
    assert images.x_train.shape == (1438, 1, 8, 8)
    torch.testing.assert_close(images.x_train.reshape(-1, 64), s.x_train)


def test_split_is_fixed_and_disjoint():
    a, b = load_digits(), load_digits()
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_train, b.y_train)
    train = {tuple(r) for r in a.x_train.tolist()}
    assert sum(tuple(r) in train for r in a.x_test.tolist()) < 10  # (a few digits are pixel-identical)


def test_needs_no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert len(load_digits().y_train) == 1438


def test_loaders():
    train, test = loaders(load_digits(), batch_size=100)
    x, y = next(iter(train))
    assert x.shape == (100, 64) and y.shape == (100,)
    assert sum(len(y) for _, y in test) == 359
    first = [y.tolist() for _, y in loaders(load_digits(), 100, seed=1)[0]]
    again = [y.tolist() for _, y in loaders(load_digits(), 100, seed=1)[0]]
    assert first == again


def test_shakespeare_plain_text_in_its_alphabet(monkeypatch):
    from minidl import data

    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: (_ for _ in ()).throw(OSError("no network")))
    plays = data.shakespeare_plays()
    assert len(plays) == 38 and "hamlet" in plays and set(data.GRADER_PLAYS + data.VALIDATION_PLAYS) <= set(plays)
    macbeth = data.shakespeare(["macbeth"])
    assert macbeth.startswith("Macbeth\n\nACT I\n") and "\nFirst Witch:\nWhen shall we three meet again\n" in macbeth
    assert set(macbeth) <= set(data.SHAKESPEARE_ALPHABET) and not {"*", "_", "#", "\\"} & set(macbeth)
    assert len(data.shakespeare(max_chars=1000)) == 1000
    with pytest.raises(KeyError, match="shakespeare_plays"):
        data.shakespeare(["hamlet-ii"])


def test_plain_text_rules():
    from minidl.data import plain_text

    md = "# Title\n\n### SCENE I. A room.\n\n**HAMLET**  \nTo be, or not\u2014to be:  \n__\\[Aside]_  \n\u00e9t\u00e91\n"
    assert plain_text(md) == "Title\n\nSCENE I. A room.\n\nHAMLET:\nTo be, or not-to be:\n[Aside]\nt\n"


def test_shakespeare_split_keeps_the_graders_plays_out():
    from minidl import data

    train, val = data.shakespeare_split()
    assert val == data.shakespeare(data.VALIDATION_PLAYS)
    for play in data.GRADER_PLAYS + data.VALIDATION_PLAYS:
        first_lines = data.shakespeare([play]).split("\n\n")[3][:200]  # a speech of that play
        assert first_lines not in train
    assert len(train) > 4_000_000
