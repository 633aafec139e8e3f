"""Lesson 09: a modern language model. Byte-level BPE, a LLaMA-style block (RMSNorm, RoPE,
grouped-query attention, SwiGLU), the whole model with tied embeddings, sampling with
temperature, top-k and top-p, and the FLOPs it costs. Read it top to bottom, as nanoGPT's model.py.

Notation: B batch, T positions, d = d_model, h query heads of size d_h = d / h, h_kv key/value
heads (h_kv divides h: each group of h / h_kv query heads shares one key/value head), V the
vocabulary, L layers. It reuses lesson 07's rope, RMSNorm, SwiGLU, attention and KV cache.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .transformer import (KVCache, LayerCache, RMSNorm, SwiGLU, causal_mask, merge_heads, rope,
                          scaled_dot_product_attention, split_heads)


@dataclass
class LMConfig:
    """The shape of a TransformerLM; lesson 09's trained model by default (0.25 M parameters)."""

    vocab_size: int = 512
    context_length: int = 64      # the longest input, in tokens
    d_model: int = 96
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int = 2           # grouped-query attention: 2 key/value heads shared by 4 query heads
    d_ff: int = 256               # SwiGLU's hidden size, 8/3 d (3 matrices instead of 2 of 4d)
    rope_base: float = 10000.0
    eps: float = 1e-5


# -- 1. Byte-level BPE ---------------------------------------------------------------------------

# GPT-2's pre-tokenizer, '(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+,
# written with Python's re, which has no \p{...}: a letter is [^\W\d_] (a word character that is
# neither a digit nor '_'), a number \d, and anything else that is not a space (\W or '_') is
# punctuation. It cuts text into words with their leading space, numbers, runs of punctuation and
# whitespace; BPE never merges across these pieces, so a token never spans two words.
GPT2_SPLIT = re.compile(r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")


def pretokenize(text: str, special_tokens: Iterable[str] = ()) -> list[str]:
    """'Hi there<|endoftext|>!' -> ['Hi', ' there', '<|endoftext|>', '!']: special tokens whole
    (the longest first where one is a prefix of another), the text between them cut by GPT2_SPLIT."""
    return [piece for _, piece in pieces(text, special_tokens)]


def pieces(text: str, special_tokens: Iterable[str] = ()) -> Iterator[tuple[int, str]]:
    """(start, piece) of each pre-token of ``text``, in order; special tokens are pieces of their own."""
    specials = sorted(special_tokens, key=len, reverse=True)          # longest first: it wins
    parts = re.split("(" + "|".join(map(re.escape, specials)) + ")", text) if specials else [text]
    start = 0
    for part in parts:
        if part in specials:
            yield start, part
        else:
            for match in GPT2_SPLIT.finditer(part):
                yield start + match.start(), match.group()
        start += len(part)


def bpe_train(text: str, vocab_size: int, special_tokens: Iterable[str] = ()
              ) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Byte-level BPE: (vocab, merges) for ``text``.

    vocab: ids 0..255 are the single bytes, then one id per special token, then one per merge,
    up to ``vocab_size`` ids in all. merges: the pairs merged, in order. Each step merges the
    pair of adjacent tokens that occurs most often inside the pre-tokens (counted over the
    corpus), ties going to the lexicographically greater pair (b'ab' > b'a'); special tokens are
    never split and never take part in a merge.

    Counting all pairs again after every merge costs the whole corpus per merge. Here the counts
    are updated: only the words that contain the merged pair change, and only their pairs are
    recounted (``where`` says which words hold which pair).
    """
    special_tokens = list(special_tokens)
    vocab = {i: bytes([i]) for i in range(256)}
    for token in special_tokens:
        vocab[len(vocab)] = token.encode("utf-8")
    counts = Counter(p for p in pretokenize(text, special_tokens) if p not in special_tokens)
    words = [[bytes([b]) for b in word.encode("utf-8")] for word in counts]       # each pre-token as bytes
    freq = list(counts.values())
    pairs: Counter[tuple[bytes, bytes]] = Counter()
    where: defaultdict[tuple[bytes, bytes], set[int]] = defaultdict(set)
    for i, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pairs[pair] += freq[i]
            where[pair].add(i)
    merges: list[tuple[bytes, bytes]] = []
    while len(vocab) < vocab_size and pairs:
        best = max(pairs.items(), key=lambda item: (item[1], item[0]))[0]        # most frequent, then greatest
        merges.append(best)
        vocab[len(vocab)] = best[0] + best[1]
        for i in where.pop(best):
            old = words[i]
            new = merge_word(old, best)
            for pair in zip(old, old[1:]):                       # this word's pairs leave the counts ...
                pairs[pair] -= freq[i]
                if pairs[pair] == 0:
                    del pairs[pair]
            for pair in zip(new, new[1:]):                       # ... and come back, merged
                pairs[pair] += freq[i]
                where[pair].add(i)
            words[i] = new
    return vocab, merges


def merge_word(word: list[bytes], pair: tuple[bytes, bytes]) -> list[bytes]:
    """[b'a', b'b', b'a', b'b'] with (b'a', b'b') -> [b'ab', b'ab']: every occurrence, left to right."""
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == pair[0] and word[i + 1] == pair[1]:
            out.append(pair[0] + pair[1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


class Tokenizer:
    """Text <-> token ids with a BPE's (vocab, merges).

    encode: special tokens first (kept whole, the longest wins), then each pre-token's bytes are
    merged as training merged them: the pair that was learned first goes first. decode: the
    tokens' bytes joined, then read as UTF-8, a byte sequence that is not valid UTF-8 (a
    character cut between tokens) read as U+FFFD. decode(encode(s)) == s for every string.
    """

    def __init__(self, vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]], special_tokens: Iterable[str] = ()):
        self.vocab = dict(vocab)
        self.ids = {token: i for i, token in self.vocab.items()}
        self.rank = {pair: r for r, pair in enumerate(merges)}
        self.special_tokens = list(special_tokens)
        for token in self.special_tokens:                        # a special token missing from vocab is added
            if token.encode("utf-8") not in self.ids:
                self.vocab[len(self.vocab)] = token.encode("utf-8")
                self.ids[token.encode("utf-8")] = len(self.vocab) - 1
        self.encode_piece = functools.lru_cache(maxsize=2**16)(self._encode_piece)   # words repeat: merge each once

    def _encode_piece(self, piece: str) -> tuple[int, ...]:
        """One pre-token -> its ids: merge the lowest-ranked pair present, until none is left."""
        word = [bytes([b]) for b in piece.encode("utf-8")]
        while len(word) > 1:
            pair = min(zip(word, word[1:]), key=lambda p: self.rank.get(p, math.inf))
            if pair not in self.rank:
                break
            word = merge_word(word, pair)
        return tuple(self.ids[token] for token in word)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for _, piece in pieces(text, self.special_tokens):
            ids += self.piece_ids(piece)
        return ids

    def piece_ids(self, piece: str) -> tuple[int, ...]:
        if piece in self.special_tokens:
            return (self.ids[piece.encode("utf-8")],)
        return self.encode_piece(piece)

    def encode_iterable(self, lines: Iterable[str]) -> Iterator[int]:
        """The ids of "".join(lines), streamed: memory bounded by a line and one pre-token, never
        the whole text. The last pre-token read so far (and a possible start of a special token)
        may go on in the next line, so it waits for more text; the pre-tokens before it are final."""
        buffer = ""
        for line in lines:
            buffer += line
            found = list(pieces(buffer, self.special_tokens))
            if len(found) < 2:
                continue
            cut = min(found[-1][0], self.special_prefix(buffer))
            for start, piece in found:
                if start + len(piece) > cut:                    # this piece and the rest wait for more text
                    buffer = buffer[start:]
                    break
                yield from self.piece_ids(piece)
        yield from self.encode(buffer)

    def special_prefix(self, text: str) -> int:
        """Where the longest end of ``text`` that begins a special token starts (len(text) if none)."""
        cut = len(text)
        for token in self.special_tokens:
            for k in range(len(token) - 1, 0, -1):
                if text.endswith(token[:k]):
                    cut = min(cut, len(text) - k)
                    break
        return cut

    def decode(self, ids: Iterable[int]) -> str:
        return b"".join(self.vocab[int(i)] for i in ids).decode("utf-8", errors="replace")


# -- 2. The model ----------------------------------------------------------------------------------


def embedding(ids: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """ids: int64 [...] in 0..V-1, weight: [V, d] -> [..., d], as F.embedding: row ids[...] of weight.

    Indexing is a gather; its gradient is a scatter-add, so an id that occurs n times adds n
    output gradients into its row.
    """
    return weight[ids]


class LlamaBlock(nn.Module):
    """A LLaMA block, pre-norm: h = x + Attention(RMSNorm(x)), out = h + SwiGLU(RMSNorm(h)).

    Attention: q = x W_q^T [B, h, T, d_h], k = x W_k^T and v = x W_v^T [B, h_kv, T, d_h]; RoPE
    turns q and k (lesson 07's pairs (2i, 2i+1)); query head j reads key/value head
    j // (h / h_kv) (grouped-query attention: k and v are repeat_interleave'd); causal; then W_o.
    Parameters (so a plain state dict loads): attn_norm.weight [d], wq.weight [d, d],
    wk.weight and wv.weight [h_kv d_h, d], wo.weight [d, d], ffn_norm.weight [d],
    ffn.w1.weight and ffn.w3.weight [d_ff, d], ffn.w2.weight [d, d_ff]; no biases.

    forward(x [B, T, d], positions=None [T], cache=None) -> [B, T, d]. positions default to
    0..T-1 (after the S cached ones with a cache, which holds [B, h_kv, S, d_h]: GQA shrinks it).
    """

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int, d_ff: int, rope_base: float = 10000.0,
                 eps: float = 1e-5):
        super().__init__()
        if d_model % n_heads or n_heads % n_kv_heads:
            raise ValueError(f"need n_heads | d_model and n_kv_heads | n_heads, got d_model={d_model}, "
                             f"n_heads={n_heads}, n_kv_heads={n_kv_heads}")
        self.n_heads, self.n_kv_heads, self.rope_base = n_heads, n_kv_heads, rope_base
        d_kv = n_kv_heads * (d_model // n_heads)
        self.attn_norm = RMSNorm(d_model, eps)
        self.wq = nn.Linear(d_model, d_model, bias=False)
        self.wk = nn.Linear(d_model, d_kv, bias=False)
        self.wv = nn.Linear(d_model, d_kv, bias=False)
        self.wo = nn.Linear(d_model, d_model, bias=False)
        self.ffn_norm = RMSNorm(d_model, eps)
        self.ffn = SwiGLU(d_model, d_ff)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None,
                cache: LayerCache | None = None) -> torch.Tensor:
        h = x + self.attention(self.attn_norm(x), positions, cache)
        return h + self.ffn(self.ffn_norm(h))

    def attention(self, x: torch.Tensor, positions: torch.Tensor | None, cache: LayerCache | None) -> torch.Tensor:
        T = x.shape[1]
        S = 0 if cache is None or cache.k is None else cache.k.shape[-2]               # positions already cached
        if positions is None:
            positions = torch.arange(S, S + T, device=x.device)
        q = rope(split_heads(self.wq(x), self.n_heads), positions, self.rope_base)     # [B, h, T, d_h]
        k = rope(split_heads(self.wk(x), self.n_kv_heads), positions, self.rope_base)  # [B, h_kv, T, d_h]
        v = split_heads(self.wv(x), self.n_kv_heads)
        if cache is not None:
            k, v = cache.extend(k, v)                                                  # [B, h_kv, S + T, d_h]
        group = self.n_heads // self.n_kv_heads
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)   # head j reads kv head j // group
        mask = causal_mask(S + T, x.device)[S:]                                        # query t is position S + t
        return self.wo(merge_heads(scaled_dot_product_attention(q, k, v, attn_mask=mask)))


class TransformerLM(nn.Module):
    """A decoder-only LLaMA-style language model: ids [B, T] (T <= context_length) -> logits [B, T, V].

      x = E[ids];  x = block(x) for each of the L blocks;  logits = RMSNorm(x) E^T
    The output head is the token embedding E [V, d] itself (tied: V d parameters fewer, and a
    token's input and output vectors learn together). Parameters: embed.weight [V, d],
    blocks.{i}.* (LlamaBlock's names), norm.weight [d].

    Initialisation as GPT-2: every matrix N(0, 0.02^2), except the residual projections (wo and
    ffn.w2, the two writes into the residual stream per block) N(0, (0.02 / sqrt(2 L))^2), so the
    residual stream's variance does not grow with depth; norm gains 1.
    """

    def __init__(self, vocab_size: int, context_length: int, d_model: int, n_layers: int, n_heads: int,
                 n_kv_heads: int, d_ff: int, rope_base: float = 10000.0, eps: float = 1e-5):
        super().__init__()
        self.config = LMConfig(vocab_size, context_length, d_model, n_layers, n_heads, n_kv_heads, d_ff, rope_base, eps)
        self.embed = nn.Embedding(vocab_size, d_model)
        self.blocks = nn.ModuleList(LlamaBlock(d_model, n_heads, n_kv_heads, d_ff, rope_base, eps)
                                    for _ in range(n_layers))
        self.norm = RMSNorm(d_model, eps)
        for name, p in self.named_parameters():
            if name.endswith(("wo.weight", "w2.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * n_layers))
            elif p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    @classmethod
    def from_config(cls, config: LMConfig) -> TransformerLM:
        c = config
        return cls(c.vocab_size, c.context_length, c.d_model, c.n_layers, c.n_heads, c.n_kv_heads, c.d_ff,
                   c.rope_base, c.eps)

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        start = 0 if cache is None else len(cache)
        if start + ids.shape[1] > self.config.context_length:
            raise ValueError(f"{start + ids.shape[1]} tokens are more than context_length={self.config.context_length}")
        x = embedding(ids, self.embed.weight)
        for i, block in enumerate(self.blocks):
            x = block(x, cache=None if cache is None else cache.layers[i])
        return self.norm(x) @ self.embed.weight.T                                     # tied head

    @torch.no_grad()
    def generate(self, ids: torch.Tensor, new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, generator: torch.Generator | None = None,
                 use_cache: bool = True) -> torch.Tensor:
        """ids [B, T] -> [B, T + new_tokens], one sampled token at a time (``sample``). With
        ``use_cache`` only the newest token is fed, its keys and values appended to a KVCache; when
        the window is full it slides, and the cache is refilled from the last context_length tokens."""
        context, cache = self.config.context_length, None
        for _ in range(new_tokens):
            if not use_cache:
                logits = self(ids[:, -context:])
            elif cache is None or len(cache) == context:
                cache = KVCache(len(self.blocks))
                logits = self(ids[:, -context:], cache)
            else:
                logits = self(ids[:, -1:], cache)
            ids = torch.cat([ids, sample(logits[:, -1], temperature, top_k, top_p, generator)[:, None]], dim=1)
        return ids


transformer_lm = TransformerLM      # the exercise's name: the learner writes a class transformer_lm


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW's two groups: matrices decay, vectors (norm gains, biases) do not; nor does the tied
    embedding, which is also the output head (decaying it pulls rare tokens' rows to zero)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() == 2 and "embed" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# -- 3. Sampling -----------------------------------------------------------------------------------


def sample(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """logits [..., V] -> token ids int64 [...], one draw per row.

    p = softmax(logits / temperature) (temperature 0: the argmax, no draw); top_k keeps the k
    most likely tokens; top_p (nucleus) then keeps the smallest set of most likely tokens whose
    probability reaches top_p: token i (sorted by probability) stays while the mass of the tokens
    before it is below top_p, so the most likely token always stays. Draws use ``generator``.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(dim=-1) - sorted_p                                  # mass of the likelier tokens
        drop = before >= top_p
        drop[..., 0] = False                                                          # the top token always stays
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p.masked_fill(drop, 0.0))
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


# -- 4. Costs ----------------------------------------------------------------------------------------


def count_flops(config: LMConfig, tokens: int, training: bool = True) -> int:
    """Matmul FLOPs to process ``tokens`` tokens in sequences of config.context_length = T tokens
    (2 FLOPs per multiply-add), forward only or, with ``training``, forward and backward (the
    backward costs twice the forward: gradients of the inputs and of the weights).

    Per token and layer: the projections 2 (2 d^2 + 2 d d_kv) with d_kv = h_kv d_h, SwiGLU
    2 (3 d d_ff), attention 2 T d (q k^T against T keys) + 2 T d (the weights times T values);
    per token the head 2 V d. The weights' part is 2 N per token (N the matmul parameters), so
    training costs 6 N D plus attention's 12 L T d D for D tokens.
    """
    c = config
    d_kv = c.n_kv_heads * (c.d_model // c.n_heads)
    per_layer = 2 * (2 * c.d_model ** 2 + 2 * c.d_model * d_kv + 3 * c.d_model * c.d_ff) + 4 * c.context_length * c.d_model
    forward = tokens * (c.n_layers * per_layer + 2 * c.vocab_size * c.d_model)
    return 3 * forward if training else forward


def kv_cache_bytes(config: LMConfig, batch: int, length: int, bytes_per_value: int = 2) -> int:
    """The KV cache's memory: 2 (k and v) x L layers x h_kv heads x d_h x length x batch values."""
    c = config
    return 2 * c.n_layers * c.n_kv_heads * (c.d_model // c.n_heads) * length * batch * bytes_per_value


# -- 5. Data: Shakespeare in BPE tokens, bits per byte ------------------------------------------------

SPECIAL_TOKENS = ("<|endoftext|>",)
TOKENIZER_CHARS = 400_000        # the lesson's tokenizer is trained on the first 400 k characters of the training plays


@functools.lru_cache(maxsize=2)
def shakespeare_tokenizer(vocab_size: int = 512) -> Tokenizer:
    """The lesson's tokenizer: bpe_train on the start of lesson 07's training plays (never the
    validation plays, never the grader's), the plays separated by <|endoftext|>."""
    from .data import shakespeare_split

    train, _ = shakespeare_split()
    text = train[:TOKENIZER_CHARS]
    vocab, merges = bpe_train(text, vocab_size, SPECIAL_TOKENS)
    return Tokenizer(vocab, merges, SPECIAL_TOKENS)


def bits_per_byte(nats_per_token: float, tokens: int, n_bytes: int) -> float:
    """A loss in nats per token as bits per byte of text: tokens x nats / ln 2 / bytes. Unlike
    the loss per token, it does not depend on the tokenizer, so models with different
    vocabularies compare (perplexity per token = e^(nats per token) does not)."""
    return nats_per_token * tokens / math.log(2) / n_bytes
