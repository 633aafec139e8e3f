"""Lesson 02's checks: the issue's scenarios, correct alternatives, and common mistakes."""

import torch

from autograder import check


def shapes_loop(*shapes):
    shapes = [(s,) if isinstance(s, int) else tuple(s) for s in shapes]
    ndim = max((len(s) for s in shapes), default=0)
    padded = [(1,) * (ndim - len(s)) + s for s in shapes]
    out = []
    for d in range(ndim):
        size = 1
        for s in padded:
            if s[d] != 1:
                if size not in (1, s[d]):
                    raise ValueError(f"dimension {d - ndim} does not match")
                size = s[d]
        out.append(size)
    return tuple(out)


def shapes_left_aligned(*shapes):
    ndim = max(len(s) for s in shapes)
    padded = [tuple(s) + (1,) * (ndim - len(s)) for s in shapes]
    return tuple(max(sizes) for sizes in zip(*padded))


def sum_to_shape_loop(x, shape):
    shape = tuple(shape)
    while x.dim() > len(shape):
        x = x.sum(0)
    for d, n in enumerate(shape):
        if n == 1 and x.shape[d] != 1:
            x = x.sum(d, keepdim=True)
    return x


def sum_to_shape_no_keepdim(x, shape):
    while x.dim() > len(shape):
        x = x.sum(0)
    for d in reversed(range(len(shape))):
        if shape[d] == 1 and x.shape[d] != 1:
            x = x.sum(d)
    return x


def dists_row_loop(x, y):
    return torch.stack([((row - y) ** 2).sum(1) for row in x])


def dists_broadcast(x, y):
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


def dists_double_loop(x, y):
    out = torch.empty(x.shape[0], y.shape[0], dtype=x.dtype, device=x.device)
    for i in range(x.shape[0]):
        for j in range(y.shape[0]):
            out[i, j] = ((x[i] - y[j]) ** 2).sum()
    return out


def dists_cdist(x, y):
    return torch.cdist(x, y) ** 2


def softmax_naive(x, dim=-1):
    e = x.exp()
    return e / e.sum(dim, keepdim=True)


def softmax_loop(x, dim=-1):
    moved = x.movedim(dim, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    out = []
    for row in rows:
        e = (row - row.max()).exp()
        out.append(e / e.sum())
    stacked = torch.stack(out) if out else torch.empty_like(rows)
    return stacked.reshape(moved.shape).movedim(-1, dim)


def softmax_builtin(x, dim=-1):
    return torch.nn.functional.softmax(x, dim)


class AlwaysEqual:
    def __eq__(self, other):
        return True


def always_equal(*args, **kwargs):
    return AlwaysEqual()


def test_broadcast_shapes():
    assert check("broadcasting.broadcast_shapes", shapes_loop).passed
    wrong = check("broadcasting.broadcast_shapes", shapes_left_aligned)
    assert not wrong.passed and "right" in wrong.failures[0].hint
    assert check("broadcasting.broadcast_shapes", lambda *s: tuple(torch.broadcast_shapes(*s))).status == "forbidden"


def test_sum_to_shape():
    assert check("broadcasting.sum_to_shape", sum_to_shape_loop).passed
    wrong = check("broadcasting.sum_to_shape", sum_to_shape_no_keepdim)
    assert wrong.failures[0].symptom == "shape" and "keepdim" in wrong.failures[0].hint


def test_pairwise_sq_dists_vectorised_alternatives_pass():
    assert check("broadcasting.pairwise_sq_dists", dists_row_loop).passed
    assert check("broadcasting.pairwise_sq_dists", dists_broadcast).passed


def test_pairwise_sq_dists_double_loop_is_too_slow():
    slow = check("broadcasting.pairwise_sq_dists", dists_double_loop)
    assert slow.failures[0].symptom == "slow" and "slower than the reference" in slow.message
    assert slow.score == 3 * 4 / 5  # everything but the speed group


def test_pairwise_sq_dists_with_cdist_gets_the_forbidden_message():
    result = check("broadcasting.pairwise_sq_dists", dists_cdist)
    assert result.score == 0
    assert "asks you to build pairwise_sq_dists yourself; torch.cdist is off-limits here" in result.message


def test_pairwise_sq_dists_without_the_clamp_fails_on_identical_points():
    """||x||^2 + ||y||^2 - 2 x.y without clamping: rounding leaves distances of -1e-16 between identical
    points. An absolute tolerance takes them for 0; the check counts the negative distances."""
    def unclamped(x, y):
        return (x * x).sum(1)[:, None] + (y * y).sum(1)[None] - 2 * x @ y.T

    result = check("broadcasting.pairwise_sq_dists", unclamped)
    assert result.score < result.max_score and result.failures[0].group == "edge cases", str(result)
    assert "negative distances" in result.message and "clamp at 0" in result.failures[0].hint, str(result)


def test_softmax_without_the_max_fails_on_large_inputs():
    result = check("broadcasting.softmax", softmax_naive)
    failure = result.failures[0]
    assert not result.passed and failure.group == "large inputs" and failure.symptom == "nonfinite"
    assert "NaN" in failure.message and "overflow" in failure.hint


def test_softmax_loop_passes_and_builtin_is_forbidden():
    assert check("broadcasting.softmax", softmax_loop).passed
    assert check("broadcasting.softmax", softmax_builtin).status == "forbidden"


def test_an_object_equal_to_everything_scores_zero():
    for exercise in ("broadcasting.softmax", "broadcasting.pairwise_sq_dists", "tensors.one_hot"):
        result = check(exercise, always_equal)
        assert result.score == 0 and result.failures[0].symptom == "type"


def test_the_reference_itself_is_refused():
    from minidl.broadcasting import softmax

    assert check("broadcasting.softmax", softmax).status == "forbidden"


def test_hidden_cases_count_but_are_never_shown(monkeypatch):
    monkeypatch.setenv("AUTOGRADER_SECRET", "test-secret")
    result = check("broadcasting.softmax", softmax_naive, hidden=True)
    assert result.hidden_cases > 0 and result.cases > result.hidden_cases
    assert all("hidden" not in f.group for f in result.failures)
