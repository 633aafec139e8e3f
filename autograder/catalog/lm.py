"""Lesson 09, a modern language model: the exercises and how they are checked.

As in lesson 07, most groups are diagnostic: each one's inputs make one classic mistake show on
its own, and the groups come in the order in which the report looks for the first failure. A
BPE whose ties go the wrong way fails "ties" and passes "most frequent pair" (that corpus has
no ties); merging across pre-tokens shows on "a a a a", where only the boundary pair (a, ' ')
could win; RoPE's halves and neighbours agree when a head has one pair (d_h = 2), so "causal"
cannot fail for the pairing and "rotary pairs" can; GQA's order shows only with h_kv < h.

Tokens are bytes; bytes are not plain values (see plain.py), so the probes show them as their
Python spelling, b'th', which is also how the report prints them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..exercise import Case, Exercise, Group, Lesson, Threshold
from ..i18n import N_, _
from ..probes import model_output, named_gradients
from ..sandbox import learner_code

LLAMA_FORBIDDEN = ("torch.nn.functional.scaled_dot_product_attention", "torch.nn.MultiheadAttention",
                   "torch.nn.functional.multi_head_attention_forward", "aten::scaled_dot_product_attention",
                   "aten::_scaled_dot_product_attention_math", "aten::_scaled_dot_product_flash_attention_for_cpu",
                   "torch.nn.RMSNorm", "torch.nn.functional.rms_norm", "aten::rms_norm")
TOKENIZER_FORBIDDEN = ("tokenizers.Tokenizer", "tokenizers.models.BPE", "tokenizers.trainers.BpeTrainer",
                       "tokenizers.pre_tokenizers.ByteLevel", "tiktoken.get_encoding", "tiktoken.Encoding",
                       "sentencepiece.SentencePieceProcessor", "sentencepiece.SentencePieceTrainer")

# -- bpe_train -------------------------------------------------------------------------------------


def spelled(tokens) -> object:
    """bytes -> their Python spelling b'th' (a plain str); anything else is left for the comparison to report."""
    return bytes.__repr__(tokens) if type(tokens) is bytes else tokens


def bpe_probe(fn, text: str, vocab_size: int, special_tokens=()) -> object:
    """(vocab, merges) as plain values: merges first (where a mistake shows), each "b'a' + b'b'"; then the vocab."""
    with learner_code():
        out = fn(text, vocab_size, special_tokens)
    if type(out) is not tuple or len(out) != 2 or type(out[0]) is not dict or type(out[1]) is not list:
        return out
    vocab, merges = out
    merges = [f"{spelled(p[0])} + {spelled(p[1])}" if type(p) is tuple and len(p) == 2 else p for p in merges]
    return {"merges": merges, "vocab": {k: spelled(v) for k, v in dict.items(vocab)}}


def bpe_case(text: str, vocab_size: int, special_tokens=(), note: str = "") -> Case:
    shown = text if len(text) <= 40 else text[:37] + "..."
    return Case("", (text, vocab_size, tuple(special_tokens)), size=len(text) + vocab_size,
                note=note or f"text {shown!r}")


def bpe_bytes(draw):
    yield bpe_case("hello", 256, note="vocab_size 256: the 256 bytes, no merge")
    yield bpe_case("hello<|endoftext|>", 258, ("<|endoftext|>", "<|pad|>"),
                   note="vocab_size 258: the 256 bytes, then the two special tokens, no merge")


def bpe_one_word(draw):
    yield bpe_case("aaaa", 270, note="one pre-token: (a, a) 3 times, then (aa, aa); no pair is left after 2 merges")


def bpe_frequent(draw):
    text = " ".join(["low"] * 7 + ["lower"] * 5 + ["newest"] * 9 + ["widest"] * 3 + ["slow", "new"])
    yield bpe_case(text, 260, note="7 x 'low', 5 x ' lower', 9 x ' newest', ...: counts without ties")



def bpe_ties(draw):
    yield bpe_case("ab cd ab cd ab cd", 258, note="(a, b), ( , c) and (c, d) tie: the greatest pair, (c, d), first")
    yield bpe_case("xy yx zw wz", 260, note="every pair occurs once")


def bpe_boundaries(draw):
    yield bpe_case("a a a a b b", 257, note="pre-tokens 'a', ' a', ' a', ...: the pair (a, ' ') spans two of them")


def bpe_specials(draw):
    text = "one<|endoftext|>two<|endoftext|>three<|endoftext|>"
    yield bpe_case(text, 264, ("<|endoftext|>",), note="<|endoftext|> is special: never split, never merged")


def bpe_unicode(draw):
    yield bpe_case("你好，世界。你好，朋友。", 264, note="Chinese: 3 bytes per character, merged byte by byte")
    yield bpe_case("🙂🙂 naïve café 🙂", 262, note="emoji and accents")


def bpe_corpus(draw):
    from minidl import data

    text = data.shakespeare(["the-tempest"])
    start = draw.rng.randrange(0, len(text) - 3000)
    yield bpe_case(text[start:start + 3000], 320, ("<|endoftext|>",), note="3,000 characters of Shakespeare")


# -- Tokenizer ---------------------------------------------------------------------------------------


def tokenizer_probe(cls, vocab: dict, merges: list, special_tokens: tuple, calls: tuple) -> dict:
    """Tokenizer(vocab, merges, special_tokens), then each call: ("encode", s), ("decode", ids),
    ("roundtrip", s): decode(encode(s)), ("iterable", lines): list(encode_iterable(lines)),
    ("lazy", lines): how many lines encode_iterable reads before its first 5 ids (at most 100)."""
    out = {}
    with learner_code():
        tokenizer = cls(dict(vocab), list(merges), list(special_tokens))
        for op, arg in calls:
            if op == "encode":
                out[f"encode({arg!r})"] = tokenizer.encode(arg)
            elif op == "decode":
                out[f"decode({arg!r})"] = tokenizer.decode(list(arg))
            elif op == "roundtrip":
                out[f"decode(encode({arg!r}))"] = tokenizer.decode(tokenizer.encode(arg))
            elif op == "iterable":
                out[f"list(encode_iterable({arg!r}))"] = list(tokenizer.encode_iterable(iter(arg)))
            elif op == "lazy":
                read = [0]

                def lines():
                    for line in arg:
                        read[0] += 1
                        yield line

                stream, first = tokenizer.encode_iterable(lines()), []
                for token in stream:
                    first.append(token)
                    if len(first) == 5:
                        break
                out[f"reads at most 100 of {len(arg)} lines before its first 5 ids"] = read[0] <= 100
    return out


def small_bpe(text: str, vocab_size: int, special_tokens=()) -> tuple[dict, list]:
    from minidl.lm import bpe_train

    return bpe_train(text, vocab_size, special_tokens)


def tokenizer_case(vocab, merges, specials, calls, note) -> Case:
    return Case("", (vocab, merges, tuple(specials), tuple(calls)), size=len(merges) + len(calls), note=note)


def byte_vocab(*tokens: bytes) -> dict[int, bytes]:
    vocab = {i: bytes([i]) for i in range(256)}
    for token in tokens:
        vocab[len(vocab)] = token
    return vocab


def tokenizer_order(draw):
    merges = [(b"b", b"c"), (b"a", b"b"), (b"a", b"bc")]
    yield tokenizer_case(byte_vocab(b"bc", b"ab", b"abc"), merges, (), [("encode", "abc"), ("encode", "abcab")],
                         "merges (b, c) then (a, b) then (a, bc): 'abc' is (a, bc) -> abc, never (ab, c)")


def tokenizer_roundtrip(draw):
    vocab, merges = small_bpe("the cat sat on the mat, the end", 280)
    yield tokenizer_case(vocab, merges, (), [("encode", "the cat"), ("roundtrip", "the cat sat"),
                                              ("roundtrip", "你好 🙂 naïve"), ("roundtrip", "  two\n\nlines\t ")],
                         "a BPE of 'the cat sat on the mat, ...': English, Chinese, emoji, whitespace")


def tokenizer_split_characters(draw):
    vocab, merges = small_bpe("the cat sat", 262)
    yield tokenizer_case(vocab, merges, (), [("decode", [0xC3]), ("decode", [104, 0xC3, 0xA9]),
                                              ("roundtrip", "héllo")],
                         "decode([0xC3]): half of 'é' (b'\\xc3\\xa9'); 'é' as two byte tokens")


def tokenizer_specials(draw):
    specials = ("<|endoftext|>", "<|endoftext|><|endoftext|>")
    vocab, merges = small_bpe("a<|endoftext|>b a b", 263, specials)
    yield tokenizer_case(vocab, merges, specials, [("encode", "a<|endoftext|>b"),
                                                   ("encode", "x<|endoftext|><|endoftext|>y<|endoftext|>"),
                                                   ("roundtrip", "a<|endoftext|>b")],
                         "special tokens '<|endoftext|>' and '<|endoftext|><|endoftext|>': the longest wins")


def tokenizer_streaming(draw):
    vocab, merges = small_bpe("hello world, hello there\n\n  indented <|endoftext|>", 280, ("<|endoftext|>",))
    lines = ["hello world,\n", "\n", "  hello  there\n", "x<|endoftext|>y\n", "no newline"]
    yield tokenizer_case(vocab, merges, ("<|endoftext|>",),
                         [("iterable", lines), ("lazy", ["hello world\n"] * 10_000)],
                         "encode_iterable over 5 lines equals encode of their text; 10,000 lines stream")


# -- embedding ---------------------------------------------------------------------------------------


def embedding_rows(draw):
    for n, V, d in [(5, 7, 3), (1, 4, 6)]:
        ids = torch.randperm(V, generator=draw.gen)[:n]                       # distinct: repeats come later
        yield Case("", (ids, draw.randn(V, d, dtype=draw.dtype())), size=n * d, note=f"{n} distinct ids of a vocabulary of {V}")


def embedding_shapes(draw):
    ids = torch.randperm(30, generator=draw.gen)[:24].reshape(2, 3, 4)
    yield Case("", (ids, draw.randn(30, 5, dtype=draw.dtype())), size=120, note="distinct ids [2, 3, 4] -> [2, 3, 4, d]")
    yield Case("", (torch.tensor(3), draw.randn(9, 5, dtype=draw.dtype())), size=5, note="a single id (0-d) -> [d]")


def embedding_repeats(draw):
    ids = torch.tensor([[1, 3, 1], [1, 0, 3]])
    yield Case("", (ids, draw.randn(5, 4, dtype=torch.float64)), size=24,
               note="id 1 three times, id 3 twice: their rows' gradients add up")


EMBEDDING_FORBIDDEN = ("torch.nn.functional.embedding", "torch.nn.Embedding", "torch.embedding", "aten::embedding")

# -- LlamaBlock --------------------------------------------------------------------------------------

BLOCK_NAMES = ("attn_norm.weight", "wq.weight", "wk.weight", "wv.weight", "wo.weight", "ffn_norm.weight",
               "ffn.w1.weight", "ffn.w3.weight", "ffn.w2.weight")


def block_weights(draw, d, h, h_kv, d_ff, dtype) -> dict[str, torch.Tensor]:
    d_kv = h_kv * (d // h)
    shapes = {"attn_norm.weight": (d,), "wq.weight": (d, d), "wk.weight": (d_kv, d), "wv.weight": (d_kv, d),
              "wo.weight": (d, d), "ffn_norm.weight": (d,), "ffn.w1.weight": (d_ff, d), "ffn.w3.weight": (d_ff, d),
              "ffn.w2.weight": (d, d_ff)}
    weights = {}
    for name, shape in shapes.items():
        if len(shape) == 1:
            weights[name] = 1 + draw.randn(*shape, dtype=dtype, scale=0.2)        # gains near 1
        else:
            weights[name] = draw.randn(*shape, dtype=dtype, scale=shape[1] ** -0.5)
    return weights


def load_weights(module: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Load the grader's plain dict into the learner's module, on the weights' device and dtype (call in
    learner_code()); a name the module lacks raises."""
    first = next(iter(weights.values()))
    module.to(device=first.device, dtype=first.dtype)
    missing, unexpected = module.load_state_dict(weights, strict=False)
    if unexpected:
        raise KeyError(_("your module has no parameter named {names}; name them as the lesson says").format(
            names=", ".join(unexpected)))


def weighted_grads(out: torch.Tensor, inputs: dict[str, torch.Tensor]) -> dict:
    w = torch.sin(torch.arange(out.numel(), dtype=out.dtype, device=out.device) * 1.7 + 0.3).reshape(out.shape)
    grads = torch.autograd.grad((out * w).sum(), list(inputs.values()), allow_unused=True)
    return {f"gradient w.r.t. {n}": torch.zeros_like(t) if g is None else g for (n, t), g in zip(inputs.items(), grads)}


def block_probe(cls, x, config: tuple, weights: dict, positions=None, kwargs: dict | None = None) -> dict:
    """cls(d, h, h_kv, d_ff, **kwargs) with these weights, on x (and positions): output, gradients of x and weights."""
    x = x.detach().clone().requires_grad_(True)
    with learner_code():
        module = cls(*config, **(kwargs or {}))
        load_weights(module, weights)
        out = module(x) if positions is None else module(x, positions=positions)
    if type(out) is not torch.Tensor or not out.requires_grad:
        return {"output": out}
    params = dict(module.named_parameters())
    return {"output": out.detach(), **weighted_grads(out, {"x": x, **{n: params[n] for n in BLOCK_NAMES if n in params}})}


def block_case(draw, B, T, d, h, h_kv, d_ff, dtype=None, positions=None, note="", **kwargs) -> Case:
    dtype = dtype or draw.dtype()
    x = draw.randn(B, T, d, dtype=dtype)
    weights = block_weights(draw, d, h, h_kv, d_ff, dtype)
    return Case("", (x, (d, h, h_kv, d_ff), weights, positions, kwargs), size=B * T * d * h,
                note=note or f"B={B}, T={T}, d_model={d}, n_heads={h}, n_kv_heads={h_kv}, d_ff={d_ff}")


def block_one_position(draw):
    yield block_case(draw, 2, 1, 8, 2, 2, 12, note="T = 1: RoPE turns position 0 by 0 and the token sees itself only")


def block_causal(draw):
    yield block_case(draw, 2, 5, 4, 2, 2, 6, note="d_h = 2 (one rotary pair per head), T = 5")


def block_rope(draw):
    yield block_case(draw, 2, 6, 16, 2, 2, 24, note="d_h = 8: four rotary pairs per head")


def block_gqa(draw):
    yield block_case(draw, 2, 5, 16, 4, 2, 24)
    yield block_case(draw, 1, 4, 24, 6, 2, 16)


def block_positions(draw):
    yield block_case(draw, 1, 4, 16, 2, 1, 20, positions=torch.tensor([5, 9, 10, 40]), note="positions [5, 9, 10, 40]")
    yield block_case(draw, 1, 4, 16, 4, 2, 20, note="rope_base=100, eps=0.1", rope_base=100.0, eps=0.1)


# -- transformer_lm ----------------------------------------------------------------------------------

LM_SHAPE = (50, 16, 16, 2, 4, 2, 24)     # vocab_size, context_length, d_model, n_layers, n_heads, n_kv_heads, d_ff


def lm_weights(draw, shape: tuple, dtype) -> dict[str, torch.Tensor]:
    V, _, d, L, h, h_kv, d_ff = shape
    weights = {"embed.weight": draw.randn(V, d, dtype=dtype)}
    for i in range(L):
        weights |= {f"blocks.{i}.{n}": w for n, w in block_weights(draw, d, h, h_kv, d_ff, dtype).items()}
    return weights | {"norm.weight": 1 + draw.randn(d, dtype=dtype, scale=0.2)}


def lm_probe(cls, ids, shape: tuple, weights: dict) -> dict:
    """cls(*shape) with these weights, on ids: the logits and the gradient of the embedding (input and head)."""
    with learner_code():
        model = cls(*shape)
        load_weights(model, weights)
        out = model(ids)
    if type(out) is not torch.Tensor or not out.requires_grad:
        return {"logits": out}
    params = dict(model.named_parameters())
    return {"logits": out.detach(), **weighted_grads(out, {n: params[n] for n in ("embed.weight", "norm.weight")
                                                           if n in params})}


def lm_parameters_probe(cls, shape: tuple) -> dict:
    """How many parameters cls(*shape) has (a parameter shared by two modules counts once)."""
    with learner_code():
        model = cls(*shape)
    return {N_("number of parameters"): sum(p.numel() for p in model.parameters())}


def residual(name: str) -> bool:
    return name.endswith(("wo.weight", "w2.weight"))


def lm_init_probe(cls, shape: tuple, seed: int) -> dict:
    """Each matrix's std over the std GPT-2 gives it, to one decimal (1.0 when right), and the norms' mean gain."""
    torch.manual_seed(seed)
    with learner_code():
        model = cls(*shape)
    L, stats = shape[3], {}
    for name, p in sorted(model.named_parameters()):
        if p.dim() == 2:
            target = 0.02 / math.sqrt(2 * L) if residual(name) else 0.02
            stats[f"std of {name} / {target:.4g}"] = round(p.detach().double().std().item() / target, 1)
        elif p.dim() == 1:
            stats[f"mean of {name}"] = round(p.detach().double().mean().item(), 3)
    return stats


def lm_tied(draw):
    yield Case("", (LM_SHAPE,), size=1, note="vocab_size=50, d_model=16: a tied head adds no parameter")


def lm_init(draw):
    shape = (512, 64, 128, 4, 4, 2, 256)
    yield Case("", (shape, draw.rng.randrange(1000)), size=2, note="vocab_size=512, d_model=128, n_layers=4: "
                                                                   "0.02, and 0.02 / sqrt(8) for wo and ffn.w2")


def lm_logits(draw):
    dtype = draw.dtype()
    yield Case("", (draw.randint(0, 50, 2, 10), LM_SHAPE, lm_weights(draw, LM_SHAPE, dtype)), size=20,
               note="ids [2, 10], shorter than context_length=16")
    yield Case("", (draw.randint(0, 50, 1, 16), LM_SHAPE, lm_weights(draw, LM_SHAPE, dtype)), size=16,
               note="ids [1, 16]: the whole context")


def lm_too_long(draw):
    yield Case("", (draw.randint(0, 50, 1, 17), LM_SHAPE, lm_weights(draw, LM_SHAPE, torch.float64)), size=17,
               note="17 tokens, context_length=16: raise ValueError")


# -- sample --------------------------------------------------------------------------------------------

DRAWS = 20_000     # draws per frequency case: two correct samplers' frequencies differ by 5 sigma < 0.025


def frequencies(fn, logits, sort=False, **kwargs) -> torch.Tensor:
    """How often each token is drawn from ``logits`` [V] in DRAWS draws (one batched call), float64 [V] on
    the logits' device. Two correct samplers draw differently on CPU and CUDA; their frequencies agree."""
    generator = torch.Generator(device=logits.device).manual_seed(1234)
    with learner_code():
        ids = fn(logits.expand(DRAWS, -1), generator=generator, **kwargs)
    if type(ids) is not torch.Tensor or ids.shape != (DRAWS,) or ids.is_floating_point():
        return ids
    freq = torch.bincount(ids, minlength=logits.shape[-1]).double() / DRAWS      # on the logits' device
    return freq.sort(descending=True).values if sort else freq


def frequency_probe(fn, logits, **kwargs) -> dict:
    return {N_("frequency of each token"): frequencies(fn, logits, **kwargs)}


def sorted_frequency_probe(fn, logits, **kwargs) -> dict:
    """Ties among equally likely tokens may be broken any way: the frequencies, most frequent first."""
    return {N_("frequencies, most frequent first"): frequencies(fn, logits, sort=True, **kwargs)}


def generator_probe(fn, logits) -> dict:
    def draw(seed):
        with learner_code():
            return fn(logits, generator=torch.Generator(device=logits.device).manual_seed(seed))

    first, again, other = draw(7), draw(7), draw(8)
    if any(type(t) is not torch.Tensor for t in (first, again, other)):
        return {"ids": first}
    return {N_("the same generator seed draws the same ids"): bool(torch.equal(first, again)),
            N_("another seed draws other ids"): not torch.equal(first, other)}


def sample_case(logits, note, **kwargs) -> Case:
    return Case("", (logits,), kwargs, size=logits.numel(), note=note)


def sample_argmax(draw):
    yield sample_case(draw.randn(3, 7, dtype=draw.dtype()), "temperature=0: the argmax of each row", temperature=0.0)
    yield sample_case(draw.randn(2, 2, 5, dtype=draw.dtype()), "logits [2, 2, 5] -> ids [2, 2]", temperature=0.0)


def probs_logits(*p: float, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(p, dtype=dtype).log()


def sample_temperature(draw):
    logits = probs_logits(0.4, 0.3, 0.2, 0.1)
    yield sample_case(logits, "p = [0.4, 0.3, 0.2, 0.1], temperature 1")
    yield sample_case(logits, "temperature 0.5: p^2, renormalised", temperature=0.5)
    yield sample_case(logits, "temperature 3: flatter", temperature=3.0)


def sample_top_k(draw):
    yield sample_case(probs_logits(0.1, 0.4, 0.2, 0.3), "top_k=2: tokens 1 and 3 only, renormalised", top_k=2)
    yield sample_case(probs_logits(0.5, 0.5), "top_k=5 > V=2: every token", top_k=5)


def sample_top_p(draw):
    logits = probs_logits(0.05, 0.5, 0.3, 0.15)
    yield sample_case(logits, "top_p=0.7, p = [0.05, 0.5, 0.3, 0.15]: tokens 1 and 2 (0.8 reaches 0.7)", top_p=0.7)
    yield sample_case(logits, "top_p=0.4 < the top token's 0.5: the top token alone", top_p=0.4)
    yield sample_case(logits, "top_k=3 then top_p=0.9 of what is left", top_k=3, top_p=0.9)
    yield sample_case(logits, "temperature 0.5, then top_p=0.9", temperature=0.5, top_p=0.9)


def sample_top_p_edge(draw):
    uniform = torch.zeros(4, dtype=torch.float64)
    yield sample_case(uniform, "4 equally likely tokens, top_p=0.5: exactly 2 of them (0.25 + 0.25 reaches 0.5)",
                      top_p=0.5)
    yield sample_case(uniform, "top_p=0.0: the most likely token alone", top_p=0.0)


def sample_generator(draw):
    yield Case("", (draw.randn(6, 10, dtype=draw.dtype()),), size=60, note="logits [6, 10], seeds 7, 7 and 8")


# -- count_flops ---------------------------------------------------------------------------------------


def flops_case(config_args: tuple, tokens: int, training: bool, note: str = "") -> Case:
    from minidl.lm import LMConfig

    config = LMConfig(*config_args)
    words = (f"LMConfig(vocab_size={config.vocab_size}, context_length={config.context_length}, d_model="
             f"{config.d_model}, n_layers={config.n_layers}, n_heads={config.n_heads}, n_kv_heads="
             f"{config.n_kv_heads}, d_ff={config.d_ff})")
    return Case("", (config, tokens, training), size=tokens, note=note or words)


def flops_forward(draw):
    yield flops_case((100, 8, 16, 1, 2, 2, 32), 8, False)
    yield flops_case((512, 64, 64, 2, 4, 4, 176), 640, False)


def flops_gqa(draw):
    yield flops_case((100, 8, 16, 1, 4, 1, 32), 8, False, note="n_heads=4, n_kv_heads=1: k and v are [d_model/4, d_model]")
    yield flops_case((512, 64, 64, 2, 4, 2, 176), 64, False)


def flops_attention(draw):
    yield flops_case((100, 1024, 16, 2, 2, 2, 32), 1024, False, note="context_length=1024, d_model=16: attention dominates")


def flops_training(draw):
    yield flops_case((100, 8, 16, 1, 2, 2, 32), 8, True)
    yield flops_case((50257, 1024, 768, 12, 12, 12, 2048), 2**20, True, note="a GPT-2-small shape, 2^20 tokens")


# -- trained_lm ----------------------------------------------------------------------------------------

PASSAGES = 64          # passages per draw
PASSAGE_TOKENS = 64    # tokens a passage feeds the model (context_length >= 64)
SCORED_EVERY = 4       # bits per byte measured at positions 3, 7, ..., 63 of each passage
VOCAB = 512            # minidl.lm.shakespeare_tokenizer()'s vocabulary
BPB_FULL = 2.4         # bits per byte: the threshold the notebook states
BPB_ZERO = 3.9         # about the unigram model's bits per byte (3.94)


def held_out_passages(draw):
    """PASSAGES passages of the plays the grader keeps (data.GRADER_PLAYS), tokenized with the
    lesson's tokenizer, starting where this draw's seed says. The answer, which stays with the
    grader: each scored position's next token and its length in bytes, [N, K, 2]."""
    from minidl import data, lm

    tokenizer = lm.shakespeare_tokenizer(VOCAB)
    tokens = torch.tensor(tokenizer.encode(data.shakespeare(data.GRADER_PLAYS)))
    lengths = torch.tensor([len(tokenizer.vocab[i]) for i in range(len(tokenizer.vocab))])
    starts = torch.randint(0, len(tokens) - PASSAGE_TOKENS - 1, (PASSAGES,), generator=draw.gen)
    windows = torch.stack([tokens[s:s + PASSAGE_TOKENS + 1] for s in starts.tolist()])
    scored = torch.arange(SCORED_EVERY - 1, PASSAGE_TOKENS, SCORED_EVERY)
    targets = windows[:, 1:][:, scored]
    yield Case("", (windows[:, :-1], scored), size=PASSAGES, answer=torch.stack([targets, lengths[targets]], dim=-1),
               note=f"{PASSAGES} passages of {PASSAGE_TOKENS} tokens from plays you never trained on")


def prefix_logits(model, tokens, scored):
    """The logits for the token after each scored position t, from the prefix tokens[:, :t+1] alone
    (a model that looks ahead learns nothing from the token it must predict). [N, T], [K] -> [N, K, V].
    One thread: many small forward passes would oversubscribe a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = model_output(model, tokens)
        if type(out) is not torch.Tensor or out.shape != (*tokens.shape, VOCAB):
            return out  # the metric says what is wrong with it
        return torch.stack([model_output(model, tokens[:, :t + 1])[:, t] for t in scored.tolist()], dim=1)
    finally:
        torch.set_num_threads(threads)


def bits_per_byte(logits: torch.Tensor, answer: torch.Tensor) -> float:
    """-sum log2 p(next token) / the bytes of those tokens. logits [N, K, V], answer [N, K, 2] (id, bytes)."""
    N, K = answer.shape[:2]
    if logits.shape != (N, K, VOCAB) or not logits.is_floating_point():
        raise ValueError(_("your model should return float logits [{n}, {k}, {v}] for tokens [{n}, {k}], but it "
                           "returned {dtype}{shape}").format(n=N, k=PASSAGE_TOKENS, v=VOCAB,
                                                             dtype=str(logits.dtype).replace("torch.", ""),
                                                             shape=list(logits.shape)))
    nats = F.cross_entropy(logits.double().flatten(0, 1), answer[..., 0].flatten(), reduction="sum").item()
    return nats / math.log(2) / answer[..., 1].sum().item()


LESSON = Lesson(
    key="09_lm",
    title="A modern language model",
    builds="byte-level BPE and its tokenizer, an embedding, a LLaMA block (RMSNorm, RoPE, grouped-query attention, "
           "SwiGLU), the tied model, top-k/top-p sampling, its FLOPs, a trained BPE model of Shakespeare",
    exercises=(
        Exercise(
            id="lm.bpe_train",
            title="Byte-level BPE training",
            signature="(text, vocab_size, special_tokens=()) -> (vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]])",
            builds="256 bytes, the special tokens, then the most frequent pair merged again and again "
                   "(ties to the greater pair), inside GPT-2's pre-tokens",
            points=5,
            cpu_only=True,
            forbidden=TOKENIZER_FORBIDDEN,
            probe=bpe_probe,
            groups=(
                Group("bytes then specials", 1, bpe_bytes,
                      hint="The vocabulary starts with the 256 single bytes (id i is bytes([i])), then one id per "
                           "special token in the order given (its UTF-8 bytes), then one per merge; vocab_size "
                           "counts them all."),

                Group("one word", 1, bpe_one_word,
                      hint="Merge the most frequent pair of adjacent tokens, every occurrence left to right "
                           "((a, a) in 'aaaa' gives [aa, aa]), add it to the vocabulary, repeat until vocab_size "
                           "ids or no pair is left."),
                Group("pre-tokens", 2, bpe_boundaries,
                      hint="Cut the text with GPT-2's pre-tokenizer regex first (GPT2_SPLIT in the lesson) and "
                           "count pairs INSIDE each pre-token only: a pair that spans two pre-tokens (the "
                           "last letter of a word and the space before the next) is never counted or merged."),
                Group("most frequent pair", 2, bpe_frequent,
                      hint="Count each pair of adjacent tokens inside every pre-token, times how often the "
                           "pre-token occurs; merge the most frequent pair everywhere, add it to the vocabulary, "
                           "count again (or update the counts), until vocab_size ids or no pair is left."),
                Group("ties", 2, bpe_ties,
                      hint="Ties go to the lexicographically GREATER pair: max(counts, key=lambda p: (counts[p], p)) "
                           "compares the pairs of bytes (b'c', b'd') > (b'a', b'b') > (b' ', b'c'). Yours broke "
                           "a tie the wrong way (the first seen, or the smaller pair)."),
                Group("special tokens", 1, bpe_specials,
                      hint="Split the text on the special tokens first (re.split with re.escape'd tokens) and "
                           "leave them out of the counts: '<|endoftext|>' must never be split into pieces "
                           "such as '<|' and 'endoftext' that then get merged."),
                Group("unicode", 1, bpe_unicode,
                      hint="Work on the UTF-8 bytes of each pre-token (piece.encode('utf-8')), one starting "
                           "token per byte, not one per character."),
                Group("a real corpus", 1, bpe_corpus,
                      hint="All the rules at once on Shakespeare; compare your first merges with the expected ones."),
            ),
            hints={"type": "Return a tuple (vocab, merges): vocab a dict {id: bytes}, merges a list of pairs "
                           "(bytes, bytes) in the order they were merged."},
        ),
        Exercise(
            id="lm.Tokenizer",
            title="The BPE tokenizer",
            signature="Tokenizer(vocab, merges, special_tokens=()) with encode(str) -> list[int], "
                      "decode(list[int]) -> str, encode_iterable(lines) -> Iterator[int]",
            builds="merges applied in training order, decode(encode(s)) == s for any text, special tokens whole, "
                   "streaming encode",
            points=4,
            cpu_only=True,
            forbidden=TOKENIZER_FORBIDDEN,
            probe=tokenizer_probe,
            groups=(
                Group("merge order", 2, tokenizer_order,
                      hint="Apply the merges in TRAINING order: in each pre-token, find the pair with the lowest "
                           "merge rank (the earliest merge) wherever it is, merge all its occurrences, repeat. "
                           "Merging left to right, or the longest match first, gives other tokens."),
                Group("split characters", 2, tokenizer_split_characters,
                      hint="A token may hold half of a character (UTF-8 uses up to 4 bytes per character). Join "
                           "ALL the bytes first, then decode once with errors='replace': "
                           "b''.join(vocab[i] for i in ids).decode('utf-8', errors='replace'). Decoding each "
                           "token on its own fails or turns a whole character into U+FFFD."),
                Group("round trip", 1, tokenizer_roundtrip,
                      hint="encode: pre-tokenize, then each pre-token's UTF-8 bytes, merged; decode: join the "
                           "tokens' bytes and decode once."),
                Group("special tokens", 2, tokenizer_specials,
                      hint="Split the text on the special tokens first, LONGEST first (sorted by length, "
                           "descending, in the regex alternation), and give each its own id; never run BPE "
                           "over them."),
                Group("streaming", 1, tokenizer_streaming,
                      hint="encode_iterable yields the ids of ''.join(lines) as they come (a generator, yield), "
                           "never reading the whole file first. A pre-token may go on in the next line: keep the "
                           "last pre-token of what you read (and a possible start of a special token) for later."),
            ),
            hints={"split characters:raised": "Your decode raised on bytes that are not valid UTF-8 (half of a "
                                              "character): decode with errors='replace', which reads them as "
                                              "U+FFFD, after joining all the tokens' bytes.",
                   "raised": "The grader builds Tokenizer(vocab, merges, special_tokens) with vocab a dict {id: "
                             "bytes}, merges a list of (bytes, bytes) and special_tokens a list of str, then calls "
                             "encode(str), decode(list of ids) and encode_iterable(an iterator of lines)."},
        ),
        Exercise(
            id="lm.embedding",
            title="The embedding look-up",
            signature="(ids[...], weight[V, d]) -> Tensor[..., d]",
            builds="row ids of weight, as F.embedding, with the gradient that adds up over repeated ids",
            points=1,
            forbidden=EMBEDDING_FORBIDDEN,
            probe=named_gradients("ids", "weight"),
            groups=(
                Group("rows", 2, embedding_rows,
                      hint="Output[i] is row ids[i] of weight: weight[ids] (indexing with a tensor of ids)."),
                Group("any shape", 1, embedding_shapes,
                      hint="ids may have any shape, 0-d included: weight[ids] has shape ids.shape + (d,)."),
                Group("repeated ids", 2, embedding_repeats,
                      hint="An id used n times receives the sum of its n output gradients. Indexing (weight[ids]) "
                           "does that by itself; a hand-written backward must add (index_add_, or index_put_ "
                           "with accumulate=True), not overwrite."),
            ),
        ),
        Exercise(
            id="lm.LlamaBlock",
            title="A LLaMA block",
            signature="nn.Module(d_model, n_heads, n_kv_heads, d_ff, rope_base=10000.0, eps=1e-5); "
                      "forward(x[B, T, d], positions=None)",
            builds="pre-norm x + attn(RMSNorm(x)), + SwiGLU(RMSNorm(.)); RoPE on q and k, grouped-query attention, causal",
            points=5,
            forbidden=LLAMA_FORBIDDEN,
            probe=block_probe,
            groups=(
                Group("one position", 2, block_one_position,
                      hint="Pre-norm: h = x + wo(attention(attn_norm(x))), out = h + ffn(ffn_norm(h)), each "
                           "branch on the NORMALISED input and added to the un-normalised residual; RMSNorm "
                           "with eps, SwiGLU w2(silu(w1 x) * w3 x)."),
                Group("causal", 2, block_causal,
                      hint="Token t attends to tokens 0..t only: causal attention (True on and below the "
                           "diagonal), with the heads split from the features: [B, T, d] -> [B, h, T, d_h]."),
                Group("rotary pairs", 2, block_rope,
                      hint="RoPE turns q and k (not v), per head [B, h, T, d_h], in lesson 07's pairs: "
                           "neighbours (2i, 2i+1), x[..., 0::2] and x[..., 1::2] (ref.rope does it). The "
                           "halves pairing (i, i + d_h/2) of some code bases is another model."),
                Group("grouped-query", 2, block_gqa,
                      hint="With n_kv_heads < n_heads, query head j reads key/value head j // (n_heads / "
                           "n_kv_heads): k.repeat_interleave(group, dim=1). k.repeat(1, group, 1, 1) pairs "
                           "query head j with kv head j % n_kv_heads: heads repeated in the wrong order."),
                Group("positions and settings", 1, block_positions,
                      hint="positions (a [T] tensor) replace 0..T-1 in RoPE; rope_base and eps are the "
                           "constructor's, passed on to rope and RMSNorm."),
            ),
            hints={"raised": "The grader builds LlamaBlock(d_model, n_heads, n_kv_heads, d_ff, ...), loads a plain "
                             "state dict with the names attn_norm.weight, wq.weight, wk.weight, wv.weight, "
                             "wo.weight, ffn_norm.weight, ffn.w1.weight, ffn.w3.weight, ffn.w2.weight (Linear "
                             "layers without bias), then calls forward(x) or forward(x, positions=...).",
                   "type": "forward returns one tensor [B, T, d] connected to the autograd graph."},
        ),
        Exercise(
            id="lm.transformer_lm",
            title="The language model",
            signature="nn.Module(vocab_size, context_length, d_model, n_layers, n_heads, n_kv_heads, d_ff); "
                      "forward(ids[B, T]) -> logits[B, T, V]",
            builds="embedding, LlamaBlocks, final RMSNorm, the head tied to the embedding, GPT-2 initialisation",
            points=4,
            forbidden=LLAMA_FORBIDDEN,
            probe=lm_probe,
            groups=(
                Group("tied head", 1, lm_tied, probe=lm_parameters_probe,
                      hint="Tie the output head to the embedding: logits = norm(x) @ embed.weight.T, no separate "
                           "head matrix (an untied head adds vocab_size x d_model parameters)."),
                Group("initialisation", 1, lm_init, probe=lm_init_probe,
                      hint="GPT-2's initialisation: every matrix (the embedding included) N(0, 0.02^2), the "
                           "residual projections wo and ffn.w2 N(0, (0.02 / sqrt(2 n_layers))^2), norm gains 1: "
                           "nn.init.normal_(p, std=...) over named_parameters()."),
                Group("logits", 3, lm_logits,
                      hint="embed.weight[ids], the blocks in order (positions 0..T-1), norm, then @ "
                           "embed.weight.T; T may be shorter than context_length."),
                Group("context length", 1, lm_too_long,
                      hint="Raise ValueError when T > context_length (the model was never trained there)."),
            ),
            hints={"raised": "The grader builds transformer_lm(vocab_size, context_length, d_model, n_layers, "
                             "n_heads, n_kv_heads, d_ff), loads a plain state dict with the names embed.weight, "
                             "blocks.{i}.<LlamaBlock's names>, norm.weight, then calls forward(ids)."},
        ),
        Exercise(
            id="lm.sample",
            title="Sampling: temperature, top-k, top-p",
            signature="(logits[..., V], temperature=1.0, top_k=None, top_p=None, generator=None) -> ids[...]",
            builds="softmax(logits / T), the k most likely, then the smallest set reaching p (the top token kept)",
            points=4,
            tolerances={torch.float64: (0.0, 0.025)},
            groups=(
                Group("temperature 0", 1, sample_argmax,
                      hint="temperature 0 means the most likely token, logits.argmax(-1): no draw, no division "
                           "by 0. Ids have the shape of logits without the last axis."),
                Group("temperature", 1, sample_temperature, probe=frequency_probe,
                      hint="Divide the logits by the temperature, then softmax, then one draw per row "
                           "(torch.multinomial(probs, 1, generator=generator))."),
                Group("top-k", 1, sample_top_k, probe=frequency_probe,
                      hint="top_k keeps the k largest logits (logits.topk(k)); the others get -inf before the softmax."),
                Group("top-p", 2, sample_top_p, probe=frequency_probe,
                      hint="Sort the probabilities (descending); token i stays while the mass BEFORE it (cumsum "
                           "- p_i) is below top_p, so the token that crosses top_p stays and the top token "
                           "always stays (dropping it leaves nothing to draw when top_p is below its probability); "
                           "renormalise (multinomial does)."),
                Group("top-p boundary", 1, sample_top_p_edge, probe=sorted_frequency_probe,
                      hint="The smallest set whose mass REACHES top_p: 4 tokens of 0.25 with top_p=0.5 keep "
                           "exactly 2 (mass before the third is 0.5, not below 0.5); top_p=0 keeps the top "
                           "token alone. Yours kept one too many or one too few."),
                Group("generator", 1, sample_generator, probe=generator_probe,
                      hint="Draw with the generator you are given: torch.multinomial(..., generator=generator)."),
            ),
            hints={"top-p:raised": "Your top-p removed every token (softmax of all -inf is NaN): it dropped the top "
                                   "token. Keep a token while the mass BEFORE it is below top_p; the first one "
                                   "always stays.",
                   "top-p boundary:raised": "Your top-p removed every token with top_p=0: the most likely token "
                                            "must always stay."},
        ),
        Exercise(
            id="lm.count_flops",
            title="Counting FLOPs",
            signature="(config, tokens, training=True) -> int",
            builds="2 FLOPs per multiply-add of every matmul, attention's T-dependent term included; x3 for training",
            points=3,
            cpu_only=True,
            groups=(
                Group("forward", 2, flops_forward,
                      hint="Forward FLOPs per token: per layer 2 (2 d^2 + 2 d d_kv) for wq, wk, wv, wo, plus "
                           "2 (3 d d_ff) for SwiGLU, plus attention's 2 T d (q k^T: T keys) + 2 T d (weights "
                           "times T values), T = context_length; then the head's 2 V d. Times tokens."),
                Group("grouped-query", 1, flops_gqa,
                      hint="wk and wv are [d_kv, d] with d_kv = n_kv_heads * d_model / n_heads, not [d, d]."),
                Group("attention term", 1, flops_attention,
                      hint="Attention's matmuls grow with the context: 4 T d FLOPs per token and layer "
                           "(2 T d for the scores, 2 T d for the weighted values)."),
                Group("training", 2, flops_training,
                      hint="training=True adds the backward pass, which costs TWICE the forward (the gradients "
                           "of the activations and of the weights): 3x the forward in all, the 6 N D rule."),
            ),
        ),
        Exercise(
            id="lm.trained_lm",
            title="A BPE language model of Shakespeare",
            signature=f"a trained model: tokens [N, T] -> logits [N, T, {VOCAB}]",
            builds=f"a LLaMA-style model trained on Shakespeare's BPE tokens: full points at {BPB_FULL:g} bits per "
                   "byte or below on plays it never saw",
            points=4,
            cpu_only=True,
            probe=prefix_logits,
            threshold=Threshold("bits per byte", bits_per_byte, full=BPB_FULL, zero=BPB_ZERO, unit="bits per byte"),
            groups=(
                Group("held-out plays", 1, held_out_passages,
                      hint="Train longer (AdamW with decay groups, warm-up then cosine, clipping) on the training "
                           "text only; the grader feeds passages of 64 tokens of lm.shakespeare_tokenizer() (so "
                           "context_length >= 64) and reads the next-token logits at every 4th position, each "
                           "from the tokens up to it."),
            ),
            hints={"raised": f"The grader calls trained_lm(tokens) with int64 tokens [N, 64] (ids of "
                             f"lm.shakespeare_tokenizer(), on the CPU) and expects logits [N, 64, {VOCAB}].",
                   "type": "trained_lm must be the trained network itself (an nn.Module), returning logits."},
        ),
    ),
)
