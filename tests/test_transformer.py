"""minidl.transformer against PyTorch's built-ins: values and gradients in float64, shapes by hypothesis."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl import transformer as tf


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def values_and_grads(fn, tensors, **kwargs):
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
    out = fn(*leaves, **kwargs)
    w = torch.sin(torch.arange(out.numel(), dtype=out.dtype) * 1.7 + 0.3).reshape(out.shape)
    return out.detach(), torch.autograd.grad((out * w).sum(), leaves)


def assert_same(fn, builtin, tensors, **kwargs):
    out, grads = values_and_grads(fn, tensors, **kwargs)
    ref, ref_grads = values_and_grads(builtin, tensors, **kwargs)
    torch.testing.assert_close(out, ref)
    for g, e in zip(grads, ref_grads):
        torch.testing.assert_close(g, e)


def test_causal_mask():
    m = tf.causal_mask(4)
    assert m.dtype == torch.bool and m.shape == (4, 4)
    assert torch.equal(m, torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool))


@st.composite
def attention_problem(draw):
    batch = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    L, S, E, Ev = (draw(st.integers(1, 6)) for _ in range(4))
    mask = draw(st.sampled_from(["none", "bool", "float", "causal"]))
    return batch, L, S, E, Ev, mask, draw(st.integers(0, 2**31))


@settings(max_examples=60, deadline=None)
@given(attention_problem())
def test_attention_matches_sdpa(problem):
    batch, L, S, E, Ev, mask, seed = problem
    q, k, v = randn(*batch, L, E, seed=seed), randn(*batch, S, E, seed=seed + 1), randn(*batch, S, Ev, seed=seed + 2)
    kwargs = {}
    if mask == "bool":      # random, so some rows see no key at all: zeros, not NaN
        kwargs["attn_mask"] = torch.rand(L, S, generator=torch.Generator().manual_seed(seed)) < 0.6
    elif mask == "float":
        kwargs["attn_mask"] = randn(L, S, seed=seed + 3)
    elif mask == "causal":
        kwargs["is_causal"] = True
    assert_same(tf.scaled_dot_product_attention, F.scaled_dot_product_attention, (q, k, v), **kwargs)


def test_attention_scale_and_both_masks():
    q, k, v = randn(2, 3, 4), randn(2, 5, 4, seed=1), randn(2, 5, 2, seed=2)
    torch.testing.assert_close(tf.scaled_dot_product_attention(q, k, v, scale=0.3),
                               F.scaled_dot_product_attention(q, k, v, scale=0.3))
    with pytest.raises(ValueError):
        tf.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(3, 5, dtype=torch.bool), is_causal=True)


def test_sinusoidal_positions_formula():
    pe = tf.sinusoidal_positions(50, 16)
    t, i = 7, 3
    assert pe.shape == (50, 16)
    assert math.isclose(pe[t, 2 * i], math.sin(t / 10000 ** (2 * i / 16)), rel_tol=1e-6)
    assert math.isclose(pe[t, 2 * i + 1], math.cos(t / 10000 ** (2 * i / 16)), rel_tol=1e-6)
    assert tf.sinusoidal_positions(5, 7).shape == (5, 7)                 # an odd width ends on a sin


def test_sinusoidal_shift_is_a_rotation():
    """PE[t + k] = PE[t] R_k for every t, R_k turning each (sin, cos) pair by k times its frequency."""
    d, k = 12, 5
    pe = tf.sinusoidal_positions(64, d)
    R = torch.zeros(d, d)
    for i in range(d // 2):
        a = k / 10000 ** (2 * i / d)
        R[2 * i:2 * i + 2, 2 * i:2 * i + 2] = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    torch.testing.assert_close(pe[:-k] @ R, pe[k:], atol=1e-4, rtol=0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.integers(1, 3), st.booleans(), st.integers(0, 2**31))
def test_layer_norm_matches(shape, n_norm, affine, seed):
    n_norm = min(n_norm, len(shape))
    normalized = tuple(shape[-n_norm:])
    tensors = [randn(*shape, seed=seed)]
    if affine:
        tensors += [randn(*normalized, seed=seed + 1), randn(*normalized, seed=seed + 2)]
    fn = lambda x, *wb: tf.layer_norm(x, normalized, *wb, eps=1e-5)            # noqa: E731
    builtin = lambda x, *wb: F.layer_norm(x, normalized, *wb, eps=1e-5)       # noqa: E731
    assert_same(fn, builtin, tensors)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=0, max_size=2), st.integers(1, 7), st.integers(1, 5), st.integers(0, 2**31))
def test_rope_is_the_complex_rotation(batch, T, half, seed):
    """rope as complex numbers: pair (x[2i], x[2i+1]) is x[2i] + i x[2i+1], multiplied by e^(i p theta_i)."""
    d = 2 * half
    x = randn(*batch, T, d, seed=seed)
    positions = torch.randint(0, 100, (T,), generator=torch.Generator().manual_seed(seed))
    theta = 500.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    turn = torch.polar(torch.ones(T, half, dtype=torch.float64), positions[:, None].double() * theta)
    want = torch.view_as_real(torch.view_as_complex(x.reshape(*batch, T, half, 2).contiguous()) * turn).flatten(-2)
    torch.testing.assert_close(tf.rope(x, positions, base=500.0), want)
    torch.testing.assert_close(tf.rope(x), tf.rope(x, torch.arange(T)))
    assert tf.rope(x.float()).dtype == torch.float32


def test_rope_scores_depend_only_on_the_offset():
    q, k = randn(1, 16, seed=1), randn(1, 16, seed=2)
    score = lambda p, s: (tf.rope(q, torch.tensor([p])) @ tf.rope(k, torch.tensor([s])).T).item()   # noqa: E731
    for offset in (0, 3, -5):
        scores = [score(p, p - offset) for p in (7, 20, 41)]
        assert max(scores) - min(scores) < 1e-12
    assert abs(score(10, 7) - score(10, 6)) > 1e-3                       # and the offset does matter
    torch.testing.assert_close(tf.rope(q, torch.tensor([0])), q)         # position 0 is not turned
    with pytest.raises(ValueError, match="even"):
        tf.rope(randn(2, 5))


@pytest.mark.parametrize("shape,normalized", [((3, 5, 8), 8), ((2, 4, 6), (4, 6))])
@pytest.mark.parametrize("eps", [None, 1e-3])
def test_rms_norm_matches(shape, normalized, eps):
    n = (normalized,) if isinstance(normalized, int) else normalized
    x, w = randn(*shape), randn(*n, seed=1)
    assert_same(lambda x, w: tf.rms_norm(x, normalized, w, eps), lambda x, w: F.rms_norm(x, n, w, eps), (x, w))
    ours, theirs = tf.RMSNorm(8, eps).double(), torch.nn.RMSNorm(8, eps).double()
    with torch.no_grad():
        ours.weight.copy_(randn(8, seed=3))
        theirs.weight.copy_(ours.weight)
    torch.testing.assert_close(ours(randn(4, 8)), theirs(randn(4, 8)))


def test_swiglu_is_its_definition():
    torch.manual_seed(0)
    ffn = tf.SwiGLU(6, 10).double()
    x = randn(2, 3, 6)
    want = F.linear(F.silu(F.linear(x, ffn.w1.weight)) * F.linear(x, ffn.w3.weight), ffn.w2.weight)
    torch.testing.assert_close(ffn(x), want)
    assert [m.bias for m in (ffn.w1, ffn.w2, ffn.w3)] == [None] * 3 and ffn.w1.weight.shape == (10, 6)


def test_cached_attention_equals_the_full_causal_one():
    torch.manual_seed(0)
    attn = tf.MultiHeadSelfAttention(12, 3).double()
    x = randn(2, 7, 12)
    cache = tf.LayerCache()
    parts = [attn(x[:, :3], is_causal=True, cache=cache)] + [attn(x[:, t:t + 1], is_causal=True, cache=cache)
                                                             for t in range(3, 7)]
    torch.testing.assert_close(torch.cat(parts, dim=1), attn(x, is_causal=True))
    assert cache.k.shape == (2, 3, 7, 4)


@pytest.mark.parametrize("prompt,new", [(3, 10), (2, 20)])   # 20 new tokens slide past block_size=8
def test_generation_with_the_cache_gives_the_same_tokens(prompt, new):
    torch.manual_seed(0)
    model = tf.GPT(tf.GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, d_model=16, dropout=0.0)).double().eval()
    idx = torch.randint(0, 11, (3, prompt), generator=torch.Generator().manual_seed(0))
    for top_k, temperature in [(1, 1.0), (None, 0.8), (4, 1.5)]:
        runs = [model.generate(idx, new, temperature, top_k, torch.Generator().manual_seed(5), use_cache=c)
                for c in (False, True)]
        assert torch.equal(runs[0], runs[1])
    cache = tf.KVCache(2)
    model(idx, cache)
    torch.testing.assert_close(model(idx[:, :1], cache)[:, -1], model(torch.cat([idx, idx[:, :1]], 1))[:, -1])
    assert len(cache) == prompt + 1
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(3, 8, dtype=torch.long), cache)


def test_sample_temperature_and_top_k():
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0]]).repeat(4000, 1)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(tf.sample(logits, top_k=1, generator=g), torch.zeros(4000, 1, dtype=torch.long))
    assert set(tf.sample(logits, top_k=2, generator=g).unique().tolist()) == {0, 1}
    freq = torch.bincount(tf.sample(logits, 0.5, generator=g).flatten(), minlength=4) / 4000
    torch.testing.assert_close(freq, torch.softmax(logits[0] / 0.5, 0), atol=0.03, rtol=0)


def mha_pair(d=12, h=3, seed=0):
    torch.manual_seed(seed)
    ours = tf.MultiHeadSelfAttention(d, h).double()
    theirs = torch.nn.MultiheadAttention(d, h, batch_first=True).double()
    with torch.no_grad():
        theirs.in_proj_weight.copy_(ours.qkv.weight)
        theirs.in_proj_bias.copy_(ours.qkv.bias)
        theirs.out_proj.weight.copy_(ours.proj.weight)
        theirs.out_proj.bias.copy_(ours.proj.bias)
    return ours, theirs


@pytest.mark.parametrize("mask", ["none", "bool", "causal"])
def test_multi_head_self_attention_matches_nn(mask):
    ours, theirs = mha_pair()
    x = randn(2, 5, 12, seed=4)
    if mask == "none":
        got, (want, _) = ours(x), theirs(x, x, x)
    elif mask == "bool":
        allowed = torch.rand(5, 5, generator=torch.Generator().manual_seed(1)) < 0.7
        allowed |= torch.eye(5, dtype=torch.bool)             # every query sees a key (nn.MHA gives NaN otherwise)
        got, (want, _) = ours(x, attn_mask=allowed), theirs(x, x, x, attn_mask=~allowed)   # its True = masked out
    else:
        got = ours(x, is_causal=True)
        want, _ = theirs(x, x, x, attn_mask=~tf.causal_mask(5), is_causal=True)
    torch.testing.assert_close(got, want)
    (got * randn(*got.shape, seed=9)).sum().backward()
    (want * randn(*got.shape, seed=9)).sum().backward()
    torch.testing.assert_close(ours.qkv.weight.grad, theirs.in_proj_weight.grad)
    torch.testing.assert_close(ours.proj.weight.grad, theirs.out_proj.weight.grad)


def test_heads_must_divide_d_model():
    with pytest.raises(ValueError):
        tf.MultiHeadSelfAttention(10, 3)


def test_gpt_is_causal_and_generates():
    model = tf.GPT(tf.GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, d_model=16, dropout=0.0)).eval()
    idx = torch.randint(0, 11, (3, 8), generator=torch.Generator().manual_seed(0))
    changed = idx.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 11                         # change the future only
    torch.testing.assert_close(model(idx)[:, :5], model(changed)[:, :5])
    assert model(idx).shape == (3, 8, 11)
    out = model.generate(idx[:, :2], 10, top_k=3, generator=torch.Generator().manual_seed(1))
    assert out.shape == (3, 12) and torch.equal(out[:, :2], idx[:, :2])
    with pytest.raises(ValueError):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_gpt_learns_a_repeating_sequence():
    torch.manual_seed(0)
    model = tf.GPT(tf.GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=2, d_model=16, dropout=0.0))
    data = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3]] * 4)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = tf.cross_entropy_next_token(model(data[:, :-1]), data[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def test_seq2seq_decoder_is_causal_and_learns_to_reverse():
    torch.manual_seed(0)
    model = tf.Seq2Seq(vocab_size=7, d_model=32, num_heads=4, layers=1)
    g = torch.Generator().manual_seed(0)
    src = torch.randint(1, 6, (64, 5), generator=g)
    tgt = src.flip(1)
    start = torch.full((64, 1), 6)
    tgt_in = torch.cat([start, tgt[:, :-1]], dim=1)                    # the target shifted right
    model.eval()
    changed = tgt_in.clone()
    changed[:, 3:] = 1
    torch.testing.assert_close(model(src, tgt_in)[:, :3], model(src, changed)[:, :3])
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = tf.cross_entropy_next_token(model(src, tgt_in), tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert (model.greedy(src, start=6, length=5) == tgt).float().mean() > 0.95


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_attention_on_cuda():
    q, k, v = (randn(2, 3, 8, 16, seed=s, dtype=torch.float32).cuda() for s in range(3))
    torch.testing.assert_close(tf.scaled_dot_product_attention(q, k, v, is_causal=True),
                               F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-5, rtol=1e-4)
