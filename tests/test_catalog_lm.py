"""Lesson 09's catalogue: correct answers written other ways pass, each classic mistake fails with its
symptom named, the references are refused, and the trained model is scored in bits per byte."""

import math
import re
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder import check
from minidl import transformer as tf

from .test_catalog_transformer import plays  # noqa: F401  (a fixture: the grader's plays and the training text)


def named(result, *words):
    text = (result.message + " " + (result.failures[0].hint if result.failures else "")).lower()
    return all(w.lower() in text for w in words)


# -- bpe_train: recounting every pair after each merge (an accepted alternative), mistakes by flags --

SPLIT = re.compile(r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")


def bpe_recount(text, vocab_size, special_tokens=(), smaller_ties=False, across=False, split_specials=False):
    vocab = {i: bytes([i]) for i in range(256)}
    for s in special_tokens:
        vocab[len(vocab)] = s.encode()
    if special_tokens and not split_specials:
        pattern = "|".join(re.escape(s) for s in sorted(special_tokens, key=len, reverse=True))
        chunks = [c for c in re.split(pattern, text) if c]
    else:
        chunks = [text]
    words = Counter()
    for chunk in chunks:
        for piece in ([chunk] if across else SPLIT.findall(chunk)):
            words[tuple(bytes([b]) for b in piece.encode())] += 1
    merges = []
    while len(vocab) < vocab_size:
        pairs = Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        top = max(pairs.values())
        tied = [p for p, n in pairs.items() if n == top]
        best = min(tied) if smaller_ties else max(tied)
        merges.append(best)
        vocab[len(vocab)] = best[0] + best[1]
        merged = Counter()
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if word[i:i + 2] == best:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    return vocab, merges


def test_bpe_train_that_recounts_passes():
    assert check("lm.bpe_train", bpe_recount).score == 5


class Greater:
    """Reverses the order of pairs, so that heapq's smallest is the greatest pair."""

    def __init__(self, pair):
        self.pair = pair

    def __lt__(self, other):
        return self.pair > other.pair

    def __eq__(self, other):
        return self.pair == other.pair


def bpe_heap(text, vocab_size, special_tokens=()):
    """A heap of (-count, pair) with stale entries skipped, and words kept as lists (another accepted way)."""
    import heapq

    vocab = {i: bytes([i]) for i in range(256)}
    for s in special_tokens:
        vocab[len(vocab)] = s.encode()
    chunks = re.split("|".join(map(re.escape, sorted(special_tokens, key=len, reverse=True))), text) if special_tokens else [text]
    counted = Counter(piece for chunk in chunks for piece in SPLIT.findall(chunk))
    words = [[bytes([b]) for b in w.encode()] for w in counted]
    freq = list(counted.values())
    counts = Counter()
    for word, n in zip(words, freq):
        for pair in zip(word, word[1:]):
            counts[pair] += n
    heap = [(-n, Greater(pair)) for pair, n in counts.items()]
    heapq.heapify(heap)
    merges = []
    while len(vocab) < vocab_size and heap:
        n, top = heapq.heappop(heap)
        if counts.get(top.pair, 0) != -n or n == 0:
            continue                                                   # a stale entry
        a, b = top.pair
        merges.append((a, b))
        vocab[len(vocab)] = a + b
        changed = set()
        for k, word in enumerate(words):
            i, out = 0, []
            if not any(x == a and y == b for x, y in zip(word, word[1:])):
                continue
            for pair in zip(word, word[1:]):
                counts[pair] -= freq[k]
                changed.add(pair)
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            words[k] = out
            for pair in zip(out, out[1:]):
                counts[pair] += freq[k]
                changed.add(pair)
        for pair in changed:
            if counts[pair] > 0:
                heapq.heappush(heap, (-counts[pair], Greater(pair)))
    return vocab, merges


def test_bpe_train_with_a_heap_passes():
    assert check("lm.bpe_train", bpe_heap).score == 5


@pytest.mark.parametrize("mistake,words", [
    (dict(smaller_ties=True), ["ties", "lexicographically greater"]),
    (dict(across=True), ["pre-tokens", "spans two pre-tokens"]),
    (dict(split_specials=True), ["special tokens", "never be split"]),
])
def test_bpe_train_mistakes_are_named(mistake, words):
    result = check("lm.bpe_train", lambda *a: bpe_recount(*a, **mistake))
    assert not result.passed and named(result, *words), result


def test_bpe_train_forbids_the_reference_and_tokenizers():
    from minidl import lm

    assert check("lm.bpe_train", lm.bpe_train).status == "forbidden"

    def with_hugging_face(text, vocab_size, special_tokens=()):
        import tokenizers
        return tokenizers.Tokenizer(tokenizers.models.BPE())

    assert check("lm.bpe_train", with_hugging_face).status == "forbidden"


def test_every_reference_runs_clean_on_its_cases():
    """The oracle's expected values: the reference raises only where a case asks it to (T > context_length)."""
    from autograder.oracle import compute

    ids = ["lm.bpe_train", "lm.Tokenizer", "lm.embedding", "lm.LlamaBlock", "lm.transformer_lm", "lm.sample",
           "lm.count_flops"]
    results = compute(ids, hidden=False, devices=["cpu"])
    for eid in ids:
        for case, expected in zip(results[eid]["cases"], results[eid]["expected"]):
            assert (expected["kind"] == "raised") == (case.group == "context length"), (eid, case.group, expected)


# -- Tokenizer ---------------------------------------------------------------------------------------


class Tok:
    """A tokenizer written apart from minidl's: a per-word loop of the earliest merge; mistakes by flags."""

    left_to_right = per_token_decode = shortest_special = strict_decode = False

    def __init__(self, vocab, merges, special_tokens=()):
        self.vocab, self.merges = vocab, merges
        self.rank = {m: i for i, m in enumerate(merges)}
        self.id = {b: i for i, b in vocab.items()}
        self.specials = sorted(special_tokens, key=len, reverse=not self.shortest_special)

    def word(self, piece):
        parts = [bytes([b]) for b in piece.encode()]
        while True:
            found = [(self.rank[p], i) for i, p in enumerate(zip(parts, parts[1:])) if p in self.rank]
            if not found:
                return [self.id[p] for p in parts]
            _, i = min(found, key=lambda f: f[1]) if self.left_to_right else min(found)
            parts[i:i + 2] = [parts[i] + parts[i + 1]]

    def encode(self, text):
        chunks = re.split("(" + "|".join(map(re.escape, self.specials)) + ")", text) if self.specials else [text]
        ids = []
        for chunk in chunks:
            if chunk in self.specials:
                ids.append(self.id[chunk.encode()])
            else:
                for piece in SPLIT.findall(chunk):
                    ids += self.word(piece)
        return ids

    def encode_iterable(self, lines):
        pending = ""
        for line in lines:
            pending += line
            if pending.endswith("\n") and not pending.endswith("\n\n") and not pending.endswith(" \n"):
                cut = pending.rstrip("\n")
                if cut and not cut[-1].isspace():
                    yield from self.encode(cut)
                    pending = pending[len(cut):]
        yield from self.encode(pending)

    def decode(self, ids):
        if self.strict_decode:                                       # raises on half a character
            return b"".join(self.vocab[i] for i in ids).decode("utf-8")
        if self.per_token_decode:
            return "".join(self.vocab[i].decode("utf-8", errors="replace") for i in ids)
        return b"".join(self.vocab[i] for i in ids).decode("utf-8", errors="replace")


def test_tokenizer_written_apart_passes():
    assert check("lm.Tokenizer", Tok).score == 4


@pytest.mark.parametrize("flag,words", [
    ("left_to_right", ["merge order", "training order"]),
    ("per_token_decode", ["split characters", "join all the bytes first"]),
    ("strict_decode", ["raised", "errors='replace'"]),
    ("shortest_special", ["special tokens", "longest first"]),
])
def test_tokenizer_mistakes_are_named(flag, words):
    wrong = type("Wrong", (Tok,), {flag: True})
    result = check("lm.Tokenizer", wrong)
    assert not result.passed and named(result, *words), result


def test_tokenizer_that_reads_everything_first_does_not_stream():
    class Greedy(Tok):
        def encode_iterable(self, lines):
            return iter(self.encode("".join(lines)))

    result = check("lm.Tokenizer", Greedy)
    assert not result.passed and named(result, "streaming", "never reading the whole file"), result


# -- embedding ---------------------------------------------------------------------------------------


def test_embedding_by_indexing_and_by_one_hot_pass():
    assert check("lm.embedding", lambda ids, w: w[ids]).score == 1
    one_hot = lambda ids, w: (ids[..., None] == torch.arange(w.shape[0], device=w.device)).to(w.dtype) @ w
    assert check("lm.embedding", one_hot).score == 1
    assert check("lm.embedding", lambda ids, w: F.embedding(ids, w)).status == "forbidden"


def test_embedding_backward_that_overwrites_is_named():
    class Lookup(torch.autograd.Function):
        @staticmethod
        def forward(ctx, ids, w):
            ctx.save_for_backward(ids)
            ctx.shape = w.shape
            return w[ids]

        @staticmethod
        def backward(ctx, g):
            (ids,) = ctx.saved_tensors
            grad = torch.zeros(ctx.shape, dtype=g.dtype, device=g.device)
            grad[ids.reshape(-1)] = g.reshape(-1, ctx.shape[1])          # overwrites: repeated ids lose gradients
            return None, grad

    result = check("lm.embedding", lambda ids, w: Lookup.apply(ids, w))
    assert not result.passed and named(result, "repeated ids", "must add"), result


# -- LlamaBlock: one loop over heads, its own RoPE; mistakes by flags ---------------------------------


def rope_pairs(x, positions, base, halves=False):
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=x.dtype, device=x.device) / d)
    angle = positions.to(x.dtype)[:, None] * theta
    a, b = (x[..., : d // 2], x[..., d // 2:]) if halves else (x[..., 0::2], x[..., 1::2])
    ra, rb = a * angle.cos() - b * angle.sin(), a * angle.sin() + b * angle.cos()
    return torch.cat([ra, rb], -1) if halves else torch.stack([ra, rb], -1).flatten(-2)


class Block(nn.Module):
    halves = wrong_order = post_norm = False

    def __init__(self, d_model, n_heads, n_kv_heads, d_ff, rope_base=10000.0, eps=1e-5):
        super().__init__()
        self.h, self.kv, self.base, self.eps = n_heads, n_kv_heads, rope_base, eps
        d_kv = n_kv_heads * d_model // n_heads
        self.attn_norm, self.ffn_norm = tf.RMSNorm(d_model, eps), tf.RMSNorm(d_model, eps)
        self.wq, self.wo = nn.Linear(d_model, d_model, bias=False), nn.Linear(d_model, d_model, bias=False)
        self.wk, self.wv = nn.Linear(d_model, d_kv, bias=False), nn.Linear(d_model, d_kv, bias=False)
        self.ffn = tf.SwiGLU(d_model, d_ff)

    def forward(self, x, positions=None):
        B, T, d = x.shape
        d_h = d // self.h
        p = torch.arange(T, device=x.device) if positions is None else positions
        a = self.attn_norm(x)
        q, k, v = self.wq(a), self.wk(a), self.wv(a)
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        heads = []
        for j in range(self.h):
            kv = j % self.kv if self.wrong_order else j // (self.h // self.kv)
            qj = rope_pairs(q[..., j * d_h:(j + 1) * d_h], p, self.base, self.halves)
            kj = rope_pairs(k[..., kv * d_h:(kv + 1) * d_h], p, self.base, self.halves)
            scores = (qj @ kj.transpose(-2, -1) / math.sqrt(d_h)).masked_fill(~mask, float("-inf"))
            heads.append(scores.softmax(-1) @ v[..., kv * d_h:(kv + 1) * d_h])
        h = x + self.wo(torch.cat(heads, -1))
        if self.post_norm:
            return self.ffn_norm(h + self.ffn(h))
        return h + self.ffn(self.ffn_norm(h))


def test_llama_block_with_a_loop_over_heads_passes():
    assert check("lm.LlamaBlock", Block).score == 5


@pytest.mark.parametrize("flag,words", [
    ("halves", ["rotary pairs", "neighbours (2i, 2i+1)"]),
    ("wrong_order", ["grouped-query", "wrong order"]),
    ("post_norm", ["one position", "pre-norm"]),
])
def test_llama_block_mistakes_are_named(flag, words):
    result = check("lm.LlamaBlock", type("Wrong", (Block,), {flag: True}))
    assert not result.passed and named(result, *words), result


def test_llama_block_forbids_the_builtins():
    class Fused(Block):
        def forward(self, x, positions=None):
            return F.scaled_dot_product_attention(x[:, None], x[:, None], x[:, None], is_causal=True)[:, 0]

    assert check("lm.LlamaBlock", Fused).status == "forbidden"

    class BuiltinNorm(Block):
        def forward(self, x, positions=None):
            return nn.RMSNorm(x.shape[-1])(x)

    assert check("lm.LlamaBlock", BuiltinNorm).status == "forbidden"


# -- transformer_lm ----------------------------------------------------------------------------------


class LM(nn.Module):
    untied = flat_init = False

    def __init__(self, vocab_size, context_length, d_model, n_layers, n_heads, n_kv_heads, d_ff):
        super().__init__()
        self.context_length = context_length
        self.embed = nn.Embedding(vocab_size, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, n_kv_heads, d_ff) for _ in range(n_layers))
        self.norm = tf.RMSNorm(d_model, 1e-5)
        if self.untied:
            self.head = nn.Linear(d_model, vocab_size, bias=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                scaled = name.endswith(("wo.weight", "w2.weight")) and not self.flat_init
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layers) if scaled else 0.02)

    def forward(self, ids):
        if ids.shape[1] > self.context_length:
            raise ValueError("too long")
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return self.head(x) if self.untied else x @ self.embed.weight.T


def test_transformer_lm_written_apart_passes():
    assert check("lm.transformer_lm", LM).score == 4


@pytest.mark.parametrize("flag,words", [
    ("untied", ["tied head", "tie the output head"]),
    ("flat_init", ["initialisation", "0.02 / sqrt(2 n_layers)"]),
])
def test_transformer_lm_mistakes_are_named(flag, words):
    result = check("lm.transformer_lm", type("Wrong", (LM,), {flag: True}))
    assert not result.passed and named(result, *words), result


# -- sample ------------------------------------------------------------------------------------------


def sampler(logits, temperature=1.0, top_k=None, top_p=None, generator=None, mistake=None):
    """Written apart: a boolean keep-mask in sorted order; ``mistake`` injects the classic ones."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = (logits / temperature).softmax(-1)
    if top_k is not None:
        kth = probs.topk(min(top_k, probs.shape[-1]), -1).values[..., -1:]
        probs = torch.where(probs >= kth, probs, torch.zeros_like(probs))
        probs = probs / probs.sum(-1, keepdim=True)
    if top_p is not None:
        p, order = probs.sort(-1, descending=True)
        cum = p.cumsum(-1)
        if mistake == "no shift":                   # drops the token that crosses top_p (and the top token)
            keep = cum <= top_p
        elif mistake == "one too many":             # also keeps the token after the one that reaches top_p
            keep = (cum - p) <= top_p
        else:
            keep = torch.cat([torch.ones_like(cum[..., :1], dtype=torch.bool), cum[..., :-1] < top_p], -1)
        probs = torch.zeros_like(probs).scatter(-1, order, p * keep)
    flat = probs.reshape(-1, probs.shape[-1])
    gen = None if mistake == "no generator" else generator
    return torch.multinomial(flat, 1, generator=gen).view(probs.shape[:-1])


def test_sample_written_apart_passes():
    assert check("lm.sample", sampler).score == 4


@pytest.mark.parametrize("mistake,words", [
    ("no shift", ["top-p", "the top token always stays"]),
    ("one too many", ["top-p boundary", "one too many"]),
    ("no generator", ["generator", "generator you are given"]),
])
def test_sample_mistakes_are_named(mistake, words):
    result = check("lm.sample", lambda *a, **k: sampler(*a, **k, mistake=mistake))
    assert not result.passed and named(result, *words), result


# -- count_flops -------------------------------------------------------------------------------------


def flops(config, tokens, training=True, backward=True, attention=True, gqa=True):
    d, T, L = config.d_model, config.context_length, config.n_layers
    d_kv = d * config.n_kv_heads // config.n_heads if gqa else d
    weights = L * (d * d * 2 + d * d_kv * 2 + 3 * d * config.d_ff) + config.vocab_size * d   # multiply-adds
    forward = 2 * weights + (L * 4 * T * d if attention else 0)
    return tokens * forward * (3 if training and backward else 1)


def test_count_flops_written_apart_passes():
    assert check("lm.count_flops", flops).score == 3


@pytest.mark.parametrize("mistake,words", [
    (dict(backward=False), ["training", "twice the forward"]),
    (dict(attention=False), ["forward", "attention's 2 t d"]),
    (dict(gqa=False), ["grouped-query", "d_kv"]),
])
def test_count_flops_mistakes_are_named(mistake, words):
    result = check("lm.count_flops", lambda *a: flops(*a, **mistake))
    assert not result.passed and named(result, *words), result


# -- trained_lm: scored in bits per byte on plays the learner never saw --------------------------------


class TokenCounts(nn.Module):
    """A bigram (or unigram) model of the lesson's BPE tokens, counted on ``text``: no training."""

    def __init__(self, text, order=2):
        super().__init__()
        from minidl import lm

        ids = torch.tensor(lm.shakespeare_tokenizer().encode(text))
        V = 512
        if order == 1:
            counts = torch.bincount(ids, minlength=V).double() + 0.5
            self.register_buffer("log_p", (counts / counts.sum()).log().expand(V, V).clone())
        else:
            counts = torch.bincount(ids[:-1] * V + ids[1:], minlength=V * V).double().reshape(V, V) + 0.05
            self.register_buffer("log_p", (counts / counts.sum(1, keepdim=True)).log())
        self.order = order
        if order == 3:                                   # trigram counts, kept sparse: sorted keys a V^2 + b V + c
            keys, counts = torch.unique(ids[:-2] * V * V + ids[1:-1] * V + ids[2:], return_counts=True)
            self.register_buffer("keys", keys)
            self.register_buffer("counts", counts.double())

    def forward(self, ids):
        logits = self.log_p[ids]
        if self.order == 3:                              # after two tokens: trigram counts, the bigram's where none
            V = logits.shape[-1]
            wanted = (ids[:, :-1] * V * V + ids[:, 1:] * V)[..., None] + torch.arange(V)      # [N, T-1, V]
            at = torch.searchsorted(self.keys, wanted).clamp(max=len(self.keys) - 1)
            counts = torch.where(self.keys[at] == wanted, self.counts[at], torch.zeros_like(self.counts[at]))
            seen = counts.sum(-1, keepdim=True) > 0
            trigram = ((counts + 0.01) / (counts + 0.01).sum(-1, keepdim=True)).log()
            logits[:, 1:] = torch.where(seen, trigram, logits[:, 1:])
        return logits


def test_trained_lm_unigram_scores_zero_and_bigram_partial(plays):
    _, train = plays
    unigram = check("lm.trained_lm", TokenCounts(train, order=1))
    assert unigram.score == 0 and "bits per byte" in unigram.message, unigram
    bigram = check("lm.trained_lm", TokenCounts(train))
    assert 0 < bigram.score < bigram.max_score and named(bigram, "bits per byte", "full points at 2.4 or below, none from 3.9"), bigram


def test_trained_lm_that_read_the_grader_plays_gets_full_points(plays):
    graders, _ = plays
    result = check("lm.trained_lm", TokenCounts(graders, order=3), hidden=True)
    assert result.passed and result.score == result.max_score, result


def test_trained_lm_wrong_output_is_explained():
    result = check("lm.trained_lm", nn.Embedding(512, 65))
    assert result.score == 0 and "[64, 64, 512]" in result.message and "[64, 64, 65]" in result.message


def test_trained_lm_threshold_is_the_one_the_notebook_states():
    from autograder.catalog import EXERCISES
    from tests.conftest import ROOT

    rule = EXERCISES["lm.trained_lm"].threshold
    notebook = (ROOT / "course" / "source" / "09_lm" / "09_lm.ipynb").read_text()
    assert f"at or below {rule.full:.1f} bits per byte" in notebook and f"none from {rule.zero:.1f}" in notebook
