"""Lesson 07, Transformer: the exercises and how they are checked.

Most groups are diagnostic: their inputs make one classic mistake show on its own, and the
groups are declared in the order in which the report looks for the first failure, so the hint
shown names the mistake. For example attention with a key size of 1 cannot tell a missing
1/sqrt(d_k) from a correct one, so a softmax over the wrong axis is reported there first.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from ..exercise import Case, Exercise, Group, Lesson, Threshold
from ..i18n import N_, _
from ..probes import model_output, with_grad
from ..sandbox import learner_code

# -- scaled_dot_product_attention ------------------------------------------------------------------


def qkv(draw, batch, L, S, E, Ev=None, dtype=None):
    dtype = dtype or draw.dtype()
    return draw.randn(*batch, L, E, dtype=dtype), draw.randn(*batch, S, E, dtype=dtype), draw.randn(*batch, S, Ev or E, dtype=dtype)


def attention_axis(draw):
    """E = 1: 1/sqrt(E) = 1, so scaling cannot matter; L, S > 1, so the softmax's axis does."""
    for L, S in [(3, 4), (4, 2), (5, 5)]:
        yield Case("", qkv(draw, (2,), L, S, 1, 3), size=L * S, note="key size 1 (so 1/sqrt(d_k) = 1)")


def attention_scaling(draw):
    for L, S, E in [(3, 4, 16), (2, 5, 64), (4, 4, 9)]:
        yield Case("", qkv(draw, (2,), L, S, E), size=L * S * E, note=f"key size d_k = {E}: scores scaled by 1/{E ** 0.5:g}")


def attention_bool_mask(draw):
    for L, S in [(3, 4), (4, 6)]:
        q, k, v = qkv(draw, (2,), L, S, 4)
        allowed = torch.rand(L, S, generator=draw.gen) < 0.6
        allowed[:, 0] = True                                              # every query sees a key
        yield Case("", (q, k, v), {"attn_mask": allowed}, size=L * S, note="a bool mask: True where a query may look")


def attention_float_mask(draw):
    q, k, v = qkv(draw, (2,), 3, 5, 4)
    bias = draw.randn(3, 5, dtype=q.dtype)
    bias[0, 2:] = float("-inf")
    yield Case("", (q, k, v), {"attn_mask": bias}, size=15, note="a float mask, added to the scores (-inf removes)")


def attention_causal(draw):
    for L, S in [(4, 4), (3, 5), (5, 3)]:
        yield Case("", qkv(draw, (2,), L, S, 4), {"is_causal": True}, size=L * S,
                   note=f"is_causal=True with L={L}, S={S}: key s allowed for query l when s <= l")


def attention_no_key(draw):
    q, k, v = qkv(draw, (1,), 3, 4, 2, dtype=torch.float64)
    allowed = torch.ones(3, 4, dtype=torch.bool)
    allowed[1] = False
    yield Case("", (q, k, v), {"attn_mask": allowed}, size=12, note="query 1 may look at no key: its output is 0")


def attention_batch(draw):
    yield Case("", qkv(draw, (), 3, 4, 5), size=60, note="no batch dimension")
    yield Case("", qkv(draw, (2, 3), 4, 2, 4, 6), size=192, note="batch and heads dimensions [2, 3, ...], Ev != E")


def attention_grads(draw):
    q, k, v = qkv(draw, (2,), 3, 4, 5, dtype=torch.float64)
    yield Case("", (q, k, v), size=60)
    yield Case("", (q, k, v), {"is_causal": True}, size=60, note="is_causal=True")


ATTENTION_FORBIDDEN = ("torch.nn.functional.scaled_dot_product_attention", "torch.nn.MultiheadAttention",
                       "torch.nn.functional.multi_head_attention_forward", "aten::scaled_dot_product_attention",
                       "aten::_scaled_dot_product_attention_math", "aten::_scaled_dot_product_flash_attention_for_cpu")

# -- causal_mask -----------------------------------------------------------------------------------


def mask_diagonal(draw):
    yield Case("", (1,), size=1, note="one position: it attends to itself")


def mask_sizes(draw):
    for n in (2, 3, 5, 8):
        yield Case("", (n,), size=n * n)


def mask_meta(draw):
    yield Case("", (4,), {"device": "meta"}, size=16, note="device='meta': the mask is created on the device asked for")

# -- sinusoidal_positions --------------------------------------------------------------------------


def positions_pairs(draw):
    """d_model = 2: one pair, frequency 1 whatever the exponent, so only sin/cos order shows."""
    yield Case("", (6, 2), size=12, note="d_model = 2: PE[t] = (sin t, cos t)")


def positions_frequencies(draw):
    for length, d in [(5, 8), (20, 16), (3, 64)]:
        yield Case("", (length, d), size=length * d)


def positions_odd(draw):
    yield Case("", (7, 5), size=35, note="an odd d_model: the last feature is a sin")

# -- layer_norm ------------------------------------------------------------------------------------


def ln_variance(draw):
    """float32, features of unit size: eps's place is below the tolerance, n vs n - 1 is not."""
    for shape, n in [((3, 4), 4), ((2, 3, 2), 2), ((5, 6), 6)]:
        yield Case("", (draw.randn(*shape, dtype=torch.float32), n), size=n, note=f"{n} features, float32")


def ln_eps(draw):
    x = draw.randn(3, 8, dtype=torch.float64, scale=1e-3)
    yield Case("", (x, 8), size=24, note="features of size 1e-3: variance 1e-6, eps = 1e-5 is not negligible")
    yield Case("", (torch.full((2, 5), 3.0, dtype=torch.float64), 5), size=10,
               note="constant rows: variance 0, the output is 0 (not NaN)")
    yield Case("", (draw.randn(2, 6, dtype=torch.float64, scale=0.01), 6), {"eps": 0.1}, size=12, note="eps=0.1")


def ln_affine(draw):
    for shape in [(2, 3, 4), (5, 6)]:
        d = shape[-1]
        dtype = draw.dtype()
        yield Case("", (draw.randn(*shape, dtype=dtype), d, draw.randn(d, dtype=dtype), draw.randn(d, dtype=dtype)),
                   size=d, note="weight and bias")
    yield Case("", (draw.randn(3, 4, dtype=torch.float64), 4, draw.randn(4, dtype=torch.float64)), size=4,
               note="weight, no bias")


def ln_axes(draw):
    dtype = draw.dtype()
    yield Case("", (draw.randn(2, 3, 4, dtype=dtype), (3, 4)), size=12, note="normalized_shape=(3, 4): two axes")
    yield Case("", (draw.randn(2, 3, 4, dtype=dtype), [2, 3, 4], draw.randn(2, 3, 4, dtype=dtype)), size=24,
               note="normalized_shape=[2, 3, 4]: every axis, with a weight")


def ln_grads(draw):
    d = 5
    x, w, b = (draw.randn(*s, dtype=torch.float64) for s in [(3, d), (d,), (d,)])
    yield Case("", (x, d, w, b), size=15)


LN_FORBIDDEN = ("torch.nn.functional.layer_norm", "torch.nn.LayerNorm", "torch.layer_norm", "torch.native_layer_norm",
                "aten::layer_norm", "aten::native_layer_norm", "torch.nn.functional.group_norm")

# -- MultiHeadSelfAttention ------------------------------------------------------------------------


def attention_module(cls, d: int, num_heads: int, weights: tuple, dtype: torch.dtype) -> torch.nn.Module:
    """cls(d, h) given these weights (as nn.MultiheadAttention's in_proj and out_proj); call in learner_code()."""
    module = cls(d, num_heads).to(dtype)
    with torch.no_grad():
        for name, value in zip(("qkv.weight", "qkv.bias", "proj.weight", "proj.bias"), weights):
            module.get_parameter(name).copy_(value)
    return module


def mhsa_probe(cls, x, weights, num_heads, attn_mask=None, is_causal=False) -> dict:
    """Build cls(d, h) with these weights, run it on x; the output and the gradients of x and of the four weights."""
    x = x.detach().clone().requires_grad_(True)
    with learner_code():
        module = attention_module(cls, x.shape[-1], num_heads, weights, x.dtype)
        out = module(x, attn_mask=attn_mask, is_causal=is_causal)
    if type(out) is not torch.Tensor or not out.requires_grad:
        return {"output": out}
    params = [module.get_parameter(n) for n in ("qkv.weight", "qkv.bias", "proj.weight", "proj.bias")]
    w = torch.sin(torch.arange(out.numel(), dtype=out.dtype) * 1.7 + 0.3).reshape(out.shape)
    grads = torch.autograd.grad((out * w).sum(), [x, *params], allow_unused=True)
    names = ("x", "qkv.weight", "qkv.bias", "proj.weight", "proj.bias")
    return {"output": out.detach(), **{f"gradient w.r.t. {n}": torch.zeros_like(t) if g is None else g
                                       for n, t, g in zip(names, [x, *params], grads)}}


def mhsa_cache_probe(cls, x, weights, num_heads, prefix: int) -> dict:
    """Generation's use of the module: x's first ``prefix`` positions, then one position at a time,
    each call with is_causal=True and the same minidl LayerCache. Equal to the uncached causal
    output when the new queries see the cached keys (query t is position S + t)."""
    from minidl.transformer import LayerCache

    chunks = [x[:, :prefix], *x[:, prefix:].split(1, dim=1)]
    with learner_code(), torch.no_grad():
        module, cache = attention_module(cls, x.shape[-1], num_heads, weights, x.dtype), LayerCache()
        outs = [module(chunk, is_causal=True, cache=cache) for chunk in chunks]
    return {N_("outputs through a key/value cache, call by call (must equal the uncached causal output)"): outs}


def mhsa_case(draw, B, T, d, h, dtype=None, **kwargs) -> Case:
    dtype = dtype or draw.dtype()
    s = d ** -0.5
    weights = (draw.randn(3 * d, d, dtype=dtype, scale=s), draw.randn(3 * d, dtype=dtype, scale=0.1),
               draw.randn(d, d, dtype=dtype, scale=s), draw.randn(d, dtype=dtype, scale=0.1))
    return Case("", (draw.randn(B, T, d, dtype=dtype), weights, h), kwargs, size=B * T * d * h,
                note=f"B={B}, T={T}, d_model={d}, {h} head{'s' if h > 1 else ''}")


def mhsa_one_head(draw):
    for B, T, d in [(2, 3, 4), (1, 5, 6)]:
        yield mhsa_case(draw, B, T, d, 1)


def mhsa_heads(draw):
    for B, T, d, h in [(2, 4, 8, 2), (1, 5, 12, 4), (3, 3, 6, 3)]:
        yield mhsa_case(draw, B, T, d, h)


def mhsa_masks(draw):
    yield mhsa_case(draw, 2, 5, 8, 2, is_causal=True)
    allowed = torch.rand(4, 4, generator=draw.gen) < 0.6
    allowed |= torch.eye(4, dtype=torch.bool)
    yield mhsa_case(draw, 2, 4, 8, 4, attn_mask=allowed)


def mhsa_cached(draw):
    for B, T, d, h, prefix in [(2, 6, 8, 2, 3), (1, 5, 12, 4, 1)]:
        case = mhsa_case(draw, B, T, d, h, prefix=prefix)
        yield dataclasses.replace(case, note=f"{case.note}; {prefix} position{'s' if prefix > 1 else ''}, "
                                             f"then {T - prefix} more one at a time, through a cache")

# -- rope ------------------------------------------------------------------------------------------


def rope_first_pair(draw):
    """d = 2: a single pair, theta_0 = 1 whatever the exponent: only the rotation itself shows."""
    yield Case("", (draw.randn(5, 2, dtype=torch.float64),), size=10, note="d = 2: pair (x0, x1) turned by the angle p")


def rope_pairs(draw):
    for shape in [(4, 8), (2, 3, 6, 16)]:
        yield Case("", (draw.randn(*shape, dtype=draw.dtype()),), size=shape[-1] * shape[-2])


def rope_positions(draw):
    x = draw.randn(2, 4, 8, dtype=torch.float64)
    yield Case("", (x, torch.tensor([3, 7, 10, 42])), size=32, note="positions [3, 7, 10, 42]")
    yield Case("", (x, torch.tensor([0, 1, 2, 3]), 100.0), size=32, note="base=100")


def rope_grads(draw):
    yield Case("", (draw.randn(2, 3, 6, dtype=torch.float64),), size=36)

# -- tiny_gpt --------------------------------------------------------------------------------------


PASSAGES = 64        # passages per draw
PASSAGE_CHARS = 64   # characters a passage feeds the model (the model needs block_size >= 64)
SCORED_EVERY = 4     # the loss is measured at positions 3, 7, ..., 63 of each passage
GPT_LOSS_FULL = 2.2  # nats per character: the threshold the notebook states
GPT_LOSS_ZERO = 2.8


def held_out_passages(draw):
    """PASSAGES passages of the plays the grader keeps (data.GRADER_PLAYS: neither in the learner's
    training nor in the validation text), starting where this draw's seed says: with the instructor's
    secret, where the hidden passages start is unknown. Next characters stay with the grader."""
    from minidl import data
    from minidl.text import CharVocab

    tokens = CharVocab([data.SHAKESPEARE_ALPHABET]).encode(data.shakespeare(data.GRADER_PLAYS))
    starts = torch.randint(0, len(tokens) - PASSAGE_CHARS - 1, (PASSAGES,), generator=draw.gen)
    windows = torch.stack([tokens[s:s + PASSAGE_CHARS + 1] for s in starts.tolist()])
    scored = torch.arange(SCORED_EVERY - 1, PASSAGE_CHARS, SCORED_EVERY)
    yield Case("", (windows[:, :-1], scored), size=PASSAGES, answer=windows[:, 1:][:, scored],
               note=f"{PASSAGES} passages of {PASSAGE_CHARS} characters from plays you never trained on")


def prefix_logits(model, tokens, scored):
    """The model's logits for the character after each scored position t, computed from the prefix
    tokens[:, :t+1] alone: a model that looks ahead (attention without its causal mask) learns
    nothing from the character it is asked to predict. tokens [N, T], scored [K] -> [N, K, V].
    One thread: T small forward passes would oversubscribe a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = model_output(model, tokens)
        if type(out) is not torch.Tensor or out.shape != (*tokens.shape, 65):
            return out  # the metric says what is wrong with it
        return torch.stack([model_output(model, tokens[:, :t + 1])[:, t] for t in scored.tolist()], dim=1)
    finally:
        torch.set_num_threads(threads)


def gpt_loss(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean cross-entropy in nats per character of the next characters. logits [N, K, 65], targets [N, K]."""
    N, K = targets.shape
    if logits.shape != (N, K, 65) or not logits.is_floating_point():
        raise ValueError(_("your model should return float logits [{n}, {k}, 65] for tokens [{n}, {k}], but it "
                           "returned {dtype}{shape}").format(n=N, k=PASSAGE_CHARS,
                                                             dtype=str(logits.dtype).replace("torch.", ""),
                                                             shape=list(logits.shape)))
    return F.cross_entropy(logits.double().flatten(0, 1), targets.flatten()).item()


LESSON = Lesson(
    key="07_transformer",
    title="Transformers",
    builds="attention and its masks, positions (sinusoidal and rotary), layer norm, multi-head attention, "
           "a trained character GPT",
    exercises=(
        Exercise(
            id="transformer.scaled_dot_product_attention",
            title="Scaled dot-product attention",
            signature="(q, k, v, attn_mask=None, is_causal=False) -> Tensor",
            builds="softmax(q k^T / sqrt(d_k) + mask) v, as F.scaled_dot_product_attention",
            points=4,
            forbidden=ATTENTION_FORBIDDEN,
            groups=(
                Group("softmax axis", 2, attention_axis,
                      hint="Each query's weights over the KEYS sum to 1: softmax over the last axis (dim=-1) of the "
                           "[..., L, S] scores. A softmax over dim=-2 normalises over the queries instead."),
                Group("scaling", 2, attention_scaling,
                      hint="Divide the scores by sqrt(d_k), d_k = q.shape[-1]: scores = q @ k.transpose(-2, -1) / "
                           "sqrt(d_k). Without it, large keys saturate the softmax."),
                Group("bool mask", 2, attention_bool_mask,
                      hint="The bool mask's True means 'takes part' (as F.scaled_dot_product_attention): fill the "
                           "scores with -inf where the mask is False. nn.MultiheadAttention's bool mask has the "
                           "opposite polarity (True = masked out); you have the polarity reversed."),
                Group("float mask", 1, attention_float_mask,
                      hint="A float mask is ADDED to the scaled scores (0 keeps, -inf removes)."),
                Group("causal", 1, attention_causal,
                      hint="is_causal=True allows key s for query l when s <= l: the top-left L x S corner of a "
                           "lower-triangular mask, diagonal included."),
                Group("no key", 1, attention_no_key,
                      hint="A query whose mask is all False has no key to look at: its row of scores is all -inf "
                           "and softmax gives NaN; return 0 for that query, as F.scaled_dot_product_attention does."),
                Group("batch dims", 1, attention_batch,
                      hint="Work on the last two axes only (k.transpose(-2, -1), softmax over dim=-1), whatever "
                           "the leading batch and head dimensions."),
                Group("gradients", 1, attention_grads, probe=with_grad,
                      hint="Build the result from differentiable torch operations (no in-place writes into "
                           "tensors that need a gradient, no .item())."),
            ),
            hints={"shape": "q is [..., L, E], k [..., S, E], v [..., S, Ev]: scores are [..., L, S], the output "
                            "[..., L, Ev]."},
        ),
        Exercise(
            id="transformer.causal_mask",
            title="The causal mask",
            signature="(size, device=None) -> bool[size, size]",
            builds="True on and below the diagonal: position t sees positions <= t",
            points=1,
            groups=(
                Group("diagonal", 1, mask_diagonal,
                      hint="Position t attends to itself: the diagonal is True (torch.ones(n, n).tril(), not "
                           "tril(-1) or triu(1)); a mask that hides the diagonal leaves the first position "
                           "nothing to look at."),
                Group("below the diagonal", 2, mask_sizes,
                      hint="Row t (the query) is True in columns 0..t (the keys it may see): lower triangle, "
                           "bool dtype. The upper triangle would let every position see the future."),
                Group("device", 1, mask_meta, devices=False,
                      hint="Create the mask on the device you are given: torch.ones(..., device=device)."),
            ),
            hints={"dtype": "The mask is bool (True takes part), not float or int."},
        ),
        Exercise(
            id="transformer.sinusoidal_positions",
            title="Sinusoidal positional encoding",
            signature="(length, d_model) -> Tensor[length, d_model]",
            builds="PE[t, 2i] = sin(t / 10000^(2i/d)), PE[t, 2i+1] = cos(t / 10000^(2i/d))",
            points=2,
            groups=(
                Group("sin and cos", 1, positions_pairs,
                      hint="Even features are sines, odd features cosines: PE[:, 0::2] = sin, PE[:, 1::2] = cos. "
                           "You have sin and cos swapped."),
                Group("frequencies", 2, positions_frequencies,
                      hint="Pair i (features 2i and 2i+1) turns at 1 / 10000^(2i / d_model): the exponent is the "
                           "EVEN feature index 2i over d_model, the same for both features of a pair. The "
                           "10000^(i / d_model) of some tutorials (or a different exponent per feature) is wrong."),
                Group("odd d_model", 1, positions_odd,
                      hint="With an odd d_model there is one more sine than cosine: the last feature is a sin."),
            ),
            hints={"dtype": "Return float32 (the default dtype)."},
        ),
        Exercise(
            id="transformer.layer_norm",
            title="Layer normalisation",
            signature="(x, normalized_shape, weight=None, bias=None, eps=1e-5) -> Tensor",
            builds="(x - mean) / sqrt(var + eps) * weight + bias over the last axes, as F.layer_norm",
            points=3,
            forbidden=LN_FORBIDDEN,
            groups=(
                Group("biased variance", 2, ln_variance,
                      hint="Layer norm uses the biased variance, divided by n (x.var(unbiased=False) or "
                           "((x - mu) ** 2).mean()), not the unbiased one divided by n - 1 (torch.var's default)."),
                Group("eps", 2, ln_eps,
                      hint="eps goes inside the square root: (x - mu) / sqrt(var + eps). With sqrt(var) + eps, "
                           "features of small variance come out wrong."),
                Group("weight and bias", 1, ln_affine,
                      hint="Multiply by weight and add bias after normalising, each only when given."),
                Group("several axes", 1, ln_axes,
                      hint="Normalise over the last len(normalized_shape) axes together "
                           "(dim=tuple(range(-len(shape), 0)), keepdim=True); an int means the last axis."),
                Group("gradients", 1, ln_grads, probe=with_grad,
                      hint="Build the result from differentiable torch operations."),
            ),
        ),
        Exercise(
            id="transformer.MultiHeadSelfAttention",
            title="Multi-head self-attention",
            signature="nn.Module(d_model, num_heads, bias=True) with qkv: Linear(d, 3d), proj: Linear(d, d); "
                      "forward(x[B, T, d], attn_mask=None, is_causal=False, cache=None)",
            builds="h heads by reshapes, equal to nn.MultiheadAttention given the same weights",
            points=4,
            forbidden=ATTENTION_FORBIDDEN,
            probe=mhsa_probe,
            groups=(
                Group("one head", 2, mhsa_one_head,
                      hint="With one head: q, k, v = self.qkv(x).chunk(3, dim=-1), attention, then the OUTPUT "
                           "PROJECTION self.proj on the result. Without the output projection the heads are "
                           "never mixed and the values are wrong."),
                Group("heads", 3, mhsa_heads,
                      hint="Split the FEATURES into heads: [B, T, d] -> view(B, T, h, d_h).transpose(1, 2) -> "
                           "[B, h, T, d_h]; merge back with transpose(1, 2).reshape(B, T, d). Viewing [B, T, d] "
                           "straight as [B, h, T, d_h] splits along the sequence and mixes positions."),
                Group("masks", 1, mhsa_masks,
                      hint="Pass attn_mask and is_causal on to the attention of every head (True takes part)."),
                Group("key/value cache", 1, mhsa_cached, probe=mhsa_cache_probe,
                      hint="With a cache, k, v = cache.extend(k, v) gives the S cached and T new keys and values. "
                           "The T new queries are positions S..S+T-1: with is_causal, query t sees keys up to "
                           "S + t, the last T rows of causal_mask(S + T). Passing is_causal=True on to attention "
                           "of T queries and S + T keys aligns the mask top-left: the new token sees only the "
                           "first keys, and a cached generation drifts from the uncached one."),
            ),
            hints={"raised": "The grader builds MultiHeadSelfAttention(d_model, num_heads), copies weights into "
                             "self.qkv (nn.Linear(d, 3d), rows q, k, v) and self.proj (nn.Linear(d, d)), then calls "
                             "forward(x, attn_mask=..., is_causal=...), and forward(x, is_causal=True, cache=...) "
                             "with a minidl.transformer.LayerCache.",
                   "type": "forward returns one tensor [B, T, d] connected to the autograd graph."},
        ),
        Exercise(
            id="transformer.rope",
            title="Rotary position embedding",
            signature="(x[..., T, d], positions=None, base=10000.0) -> Tensor",
            builds="pair (2i, 2i+1) at position p rotated by p * base^(-2i/d): scores depend on offsets only",
            points=2,
            groups=(
                Group("rotation", 1, rope_first_pair,
                      hint="Turn each pair by +angle: y[2i] = x[2i] cos - x[2i+1] sin, y[2i+1] = x[2i] sin + "
                           "x[2i+1] cos (a counter-clockwise rotation)."),
                Group("pairs", 2, rope_pairs,
                      hint="Pairs are neighbours (2i, 2i+1), x[..., 0::2] and x[..., 1::2] (not the two halves of "
                           "the features, i with i + d/2, as Hugging Face and GPT-NeoX pair them), and pair i "
                           "turns at theta_i = base^(-2i/d)."),
                Group("positions and base", 1, rope_positions,
                      hint="The angle is positions[t] * theta_i; positions default to 0..T-1; base replaces 10000."),
                Group("gradients", 1, rope_grads, probe=with_grad,
                      hint="Build the result from differentiable torch operations (torch.stack, not in-place writes)."),
            ),
            hints={"no_raise": "rope rotates pairs: raise ValueError when d is odd."},
        ),
        Exercise(
            id="transformer.tiny_gpt",
            title="A character GPT of Shakespeare",
            signature="a trained model: tokens [N, T] -> logits [N, T, 65]",
            builds=f"a decoder-only transformer trained on Shakespeare: full points below {GPT_LOSS_FULL:g} nats per "
                   "character on plays it never saw",
            points=4,
            cpu_only=True,
            probe=prefix_logits,
            threshold=Threshold("validation loss", gpt_loss, full=GPT_LOSS_FULL, zero=GPT_LOSS_ZERO,
                                unit="nats per character"),
            groups=(
                Group("held-out plays", 1, held_out_passages,
                      hint="Train longer (AdamW, a warm-up then a cosine learning rate), on the training text "
                           "only; the grader feeds passages of 64 characters (so block_size >= 64), encoded "
                           "with the 65-character vocabulary of data.SHAKESPEARE_ALPHABET, and reads the "
                           "next-character logits at every 4th position, each from the characters up to it."),
            ),
            hints={"raised": "The grader calls tiny_gpt(tokens) with int64 tokens [N, 64] (ids of "
                             "CharVocab([data.SHAKESPEARE_ALPHABET]), on the CPU) and expects logits [N, 64, 65].",
                   "type": "tiny_gpt must be the trained network itself (an nn.Module), returning logits."},
        ),
    ),
)
