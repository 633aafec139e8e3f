"""Lesson 07: Transformers. Attention and its masks, positions, layer norm, multi-head attention,
encoder and decoder blocks, a decoder-only language model (GPT) with a key/value cache, a tiny
encoder-decoder, and three pieces of today's models: RMSNorm, rotary positions (RoPE), SwiGLU.

Notation: B batch, T query positions (L in attention), S key positions, d = d_model, h heads of
size d_h = d / h. A mask follows F.scaled_dot_product_attention: a bool mask is True where a
query may attend to a key; a float mask is added to the scores (0 keeps, -inf removes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


def causal_mask(size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """bool [size, size], True on and below the diagonal: position t attends to positions <= t."""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 attn_mask: torch.Tensor | None = None, is_causal: bool = False,
                                 scale: float | None = None) -> torch.Tensor:
    """q: [..., L, E], k: [..., S, E], v: [..., S, Ev] -> [..., L, Ev], as F.scaled_dot_product_attention.

    Attention(q, k, v) = softmax(q k^T / sqrt(E) + M) v, where M is 0 where a query may look and
    -inf where it may not. ``is_causal`` allows key s for query l when s <= l. A query that may
    look at no key at all gets zeros (softmax of a row of -inf would be 0/0), as
    F.scaled_dot_product_attention gives; nn.MultiheadAttention gives NaN there with its default
    need_weights=True and in its fast inference path.
    """
    L, S = q.shape[-2], k.shape[-2]
    if is_causal and attn_mask is not None:
        raise ValueError("give attn_mask or is_causal=True, not both")
    if is_causal:
        attn_mask = causal_mask(max(L, S), q.device)[:L, :S]                          # key s <= query l
    q = q * (q.shape[-1] ** -0.5 if scale is None else scale)      # scaling q [L, E] costs less than the scores [L, S]
    scores = q @ k.transpose(-2, -1)                                                    # [..., L, S]
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    elif attn_mask is not None:
        scores = scores + attn_mask
    if attn_mask is None or is_causal:                              # every query sees a key (the causal mask: key 0)
        return torch.softmax(scores, dim=-1) @ v
    no_key = scores.amax(dim=-1, keepdim=True) == float("-inf")                        # [..., L, 1]
    weights = torch.softmax(scores.masked_fill(no_key, 0.0), dim=-1).masked_fill(no_key, 0.0)
    return weights @ v


def sinusoidal_positions(length: int, d_model: int, device: torch.device | str | None = None) -> torch.Tensor:
    """[length, d_model], the encoding of "Attention Is All You Need":

      PE[t, 2i] = sin(t / 10000^(2i / d)),   PE[t, 2i + 1] = cos(t / 10000^(2i / d)).
    Each pair (2i, 2i + 1) turns at its own frequency, so PE[t + k] is a rotation of PE[t] that
    depends only on k: relative positions are a linear map away.
    """
    t = torch.arange(length, dtype=torch.float32, device=device).unsqueeze(1)           # [T, 1]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float32, device=device)             # [ceil(d/2)]
    angle = t / 10000 ** (two_i / d_model)                                              # [T, ceil(d/2)]
    pe = torch.empty(length, d_model, device=device)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return pe


def rope(x: torch.Tensor, positions: torch.Tensor | None = None, base: float = 10000.0) -> torch.Tensor:
    """x: [..., T, d] (d even) -> same shape: rotary position embedding.

    Feature pair (2i, 2i + 1) of the token at position p is turned by the angle p * theta_i,
    theta_i = base^(-2i / d):
      y[2i]     = x[2i] cos(p theta_i) - x[2i + 1] sin(p theta_i)
      y[2i + 1] = x[2i] sin(p theta_i) + x[2i + 1] cos(p theta_i)
    Rotations compose, so rope(q, p) . rope(k, s) depends on p - s alone: applied to queries and
    keys, the scores see relative positions. ``positions``: [T] (or broadcastable to [..., T]),
    0..T-1 by default.
    """
    T, d = x.shape[-2], x.shape[-1]
    if d % 2:
        raise ValueError(f"rope rotates feature pairs: the feature size d={d} must be even")
    if positions is None:
        positions = torch.arange(T, device=x.device)
    theta = base ** (-torch.arange(0, d, 2, device=x.device, dtype=x.dtype) / d)          # [d/2]
    angle = positions.to(x.dtype).unsqueeze(-1) * theta                                  # [..., T, d/2]
    cos, sin = torch.cos(angle), torch.sin(angle)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]                                           # [..., T, d/2]
    return torch.stack([x_even * cos - x_odd * sin, x_even * sin + x_odd * cos], dim=-1).flatten(-2)


def layer_norm(x: torch.Tensor, normalized_shape: int | tuple[int, ...], weight: torch.Tensor | None = None,
               bias: torch.Tensor | None = None, eps: float = 1e-5) -> torch.Tensor:
    """x: [..., *normalized_shape] -> same shape, as F.layer_norm.

    y = (x - mu) / sqrt(sigma^2 + eps) * weight + bias, with mu and sigma^2 the mean and the
    biased variance (divided by n, not n - 1) over the last len(normalized_shape) axes.
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    dims = tuple(range(-len(shape), 0))
    x_c = x - x.mean(dim=dims, keepdim=True)                              # x - mu
    var = (x_c * x_c).mean(dim=dims, keepdim=True)                        # biased: divided by n, not n - 1
    y = x_c * torch.rsqrt(var + eps)                                      # 1 / sqrt(sigma^2 + eps)
    if weight is None:
        return y if bias is None else y + bias
    return y * weight if bias is None else torch.addcmul(bias, y, weight)  # bias + y * weight, in one pass


def rms_norm(x: torch.Tensor, normalized_shape: int | tuple[int, ...], weight: torch.Tensor | None = None,
             eps: float | None = None) -> torch.Tensor:
    """x: [..., *normalized_shape] -> same shape, as F.rms_norm.

    y = x / sqrt(mean(x^2) + eps) * weight over the last len(normalized_shape) axes: layer norm
    without the mean and without the bias. eps defaults to torch.finfo(x.dtype).eps, as PyTorch's.
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    eps = torch.finfo(x.dtype).eps if eps is None else eps
    y = x * torch.rsqrt(x.square().mean(dim=tuple(range(-len(shape), 0)), keepdim=True) + eps)
    return y if weight is None else y * weight


class RMSNorm(nn.Module):
    """rms_norm with a learned gain (initialised to 1), as nn.RMSNorm(d)."""

    def __init__(self, d_model: int, eps: float | None = None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight.shape[0], self.weight, self.eps)


class SwiGLU(nn.Module):
    """The gated feed-forward network of LLaMA-style models: y = W_2 (SiLU(W_1 x) * (W_3 x)),
    SiLU(a) = a sigmoid(a), no biases. x: [..., d] -> [..., d], hidden size ``hidden``."""

    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(d_model, hidden, bias=False)    # the gate
        self.w3 = nn.Linear(d_model, hidden, bias=False)    # the value it gates
        self.w2 = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.w1(x)
        return self.w2(a * torch.sigmoid(a) * self.w3(x))


class LayerCache:
    """One attention layer's keys and values of the positions seen so far: [B, h, S, d_h] each."""

    def __init__(self):
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new positions' keys and values [B, h, T, d_h]; return all of them [B, h, S + T, d_h]."""
        self.k = k if self.k is None else torch.cat([self.k, k], dim=-2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=-2)
        return self.k, self.v


class KVCache:
    """A key/value cache for a model of ``n_layer`` layers. With it, generating one more token
    costs attention of ONE new query against S + 1 keys (the S cached and its own, appended in the
    same step), instead of recomputing all S + 1 positions in every layer: the keys and values of
    old positions never change (causal mask)."""

    def __init__(self, n_layer: int):
        self.layers = [LayerCache() for _ in range(n_layer)]

    def __len__(self) -> int:
        """How many positions are cached."""
        k = self.layers[0].k
        return 0 if k is None else k.shape[-2]


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[B, T, d] -> [B, h, T, d_h]: each head sees its own d_h features of every position."""
    B, T, d = x.shape
    return x.view(B, T, num_heads, d // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, h, T, d_h] -> [B, T, d]: the heads' outputs side by side again."""
    B, h, T, d_h = x.shape
    return x.transpose(1, 2).reshape(B, T, h * d_h)


class MultiHeadSelfAttention(nn.Module):
    """Self-attention with h heads, as nn.MultiheadAttention(d, h, batch_first=True) given its weights:
    qkv.weight = in_proj_weight [3d, d] (rows q, k, v), proj = out_proj.

      [q, k, v] = x W_qkv^T + b_qkv;  head_j = Attention(q_j, k_j, v_j);  y = [head_1 ... head_h] W_o^T + b_o
    forward(x [B, T, d], attn_mask=None, is_causal=False) -> [B, T, d]; masks as in
    scaled_dot_product_attention (True takes part: the opposite of nn.MultiheadAttention's bool mask).
    With a ``cache`` the T new positions follow the S cached ones: their queries attend to all
    S + T keys, causally (query t sees keys up to S + t), and their keys and values are cached.
    """

    def __init__(self, d_model: int, num_heads: int, bias: bool = True):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False,
                cache: LayerCache | None = None) -> torch.Tensor:
        q, k, v = (split_heads(t, self.num_heads) for t in self.qkv(x).chunk(3, dim=-1))   # [B, h, T, d_h] each
        if cache is not None:
            k, v = cache.extend(k, v)                                                     # [B, h, S + T, d_h]
            if is_causal:  # the last T rows of the causal mask: query t is position S + t
                attn_mask, is_causal = causal_mask(k.shape[-2], x.device)[-q.shape[-2]:], False
        return self.proj(merge_heads(scaled_dot_product_attention(q, k, v, attn_mask, is_causal)))


class CrossAttention(nn.Module):
    """A decoder's attention to the encoder's output: queries from x [B, T, d], keys and values
    from memory [B, S, d]. q = x W_q^T + b_q, [k, v] = memory W_kv^T + b_kv, then as above."""

    def __init__(self, d_model: int, num_heads: int, bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(d_model, d_model, bias=bias)
        self.kv = nn.Linear(d_model, 2 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        q = split_heads(self.q(x), self.num_heads)
        k, v = (split_heads(t, self.num_heads) for t in self.kv(memory).chunk(2, dim=-1))
        return self.proj(merge_heads(scaled_dot_product_attention(q, k, v, memory_mask)))


class MLP(nn.Module):
    """The position-wise feed-forward network: Linear(d, 4d) -> GELU -> Linear(4d, d) -> dropout."""

    def __init__(self, d_model: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class EncoderBlock(nn.Module):
    """Pre-norm block: x + SelfAttention(LN(x)), then + MLP(LN(x)). With is_causal=True it is a
    GPT block; without, a BERT-style encoder block that sees the whole sequence."""

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = MultiHeadSelfAttention(d_model, num_heads)
        self.mlp = MLP(d_model, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False,
                cache: LayerCache | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), attn_mask, is_causal, cache))
        return x + self.mlp(self.ln2(x))


class DecoderBlock(nn.Module):
    """Pre-norm decoder block: causal self-attention, then cross-attention to the encoder's
    memory, then the MLP, each added to the residual stream."""

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.self_attn = MultiHeadSelfAttention(d_model, num_heads)
        self.cross_attn = CrossAttention(d_model, num_heads)
        self.mlp = MLP(d_model, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop(self.self_attn(self.ln1(x), is_causal=True))
        x = x + self.drop(self.cross_attn(self.ln2(x), memory, memory_mask))
        return x + self.mlp(self.ln3(x))


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int = 32         # the longest context, in tokens
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 64
    dropout: float = 0.1


class GPT(nn.Module):
    """A decoder-only language model: token and learned position embeddings, n_layer causal
    blocks, a final layer norm and a linear head to the vocabulary.

    forward(idx [B, T] token ids, T <= block_size) -> logits [B, T, vocab_size]; logits[:, t]
    predict token t + 1 from tokens 0..t only. With a ``cache`` holding S positions, idx are the
    tokens at positions S..S+T-1 (S + T <= block_size).
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.tok = nn.Embedding(config.vocab_size, config.d_model)
        self.pos = nn.Embedding(config.block_size, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(EncoderBlock(config.d_model, config.n_head, config.dropout)
                                    for _ in range(config.n_layer))
        self.ln = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        start = 0 if cache is None else len(cache)
        T = start + idx.shape[1]
        if T > self.config.block_size:
            raise ValueError(f"a sequence of {T} tokens is longer than block_size={self.config.block_size}")
        x = self.drop(self.tok(idx) + self.pos(torch.arange(start, T, device=idx.device)))
        for i, block in enumerate(self.blocks):
            x = block(x, is_causal=True, cache=None if cache is None else cache.layers[i])
        return self.head(self.ln(x))

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None, use_cache: bool = False) -> torch.Tensor:
        """idx [B, T] -> [B, T + new_tokens]: sample one token at a time from softmax(logits / temperature),
        keeping only the top_k most likely when given; the context is cut to the last block_size tokens.

        ``use_cache``: feed only the newest token, its keys and values appended to a KVCache. When the
        context would outgrow block_size the window slides, every position moves, and the cache is
        refilled from the last block_size tokens (as the uncached model sees them): the same tokens.
        Once the window is full that happens at EVERY step: each later step is a full forward pass of
        block_size tokens, and the cache saves nothing. (Sliding the cache instead would not give the
        same tokens: with learned positions, a moved window changes every cached key and value.)
        """
        block, cache = self.config.block_size, None
        for _ in range(new_tokens):
            if not use_cache:
                logits = self(idx[:, -block:])
            elif cache is None or len(cache) == block:      # first step, or the window slides: fill it anew
                cache = KVCache(len(self.blocks))
                logits = self(idx[:, -block:], cache)
            else:
                logits = self(idx[:, -1:], cache)
            idx = torch.cat([idx, sample(logits[:, -1], temperature, top_k, generator)], dim=1)
        return idx


def sample(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """logits [B, V] -> token ids [B, 1] drawn from softmax(logits / temperature), restricted to the
    top_k most likely tokens when given. Temperature < 1 sharpens, > 1 flattens; top_k=1 is greedy."""
    logits = logits / temperature
    if top_k is not None:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]        # [B, 1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)


class Seq2Seq(nn.Module):
    """A tiny encoder-decoder with sinusoidal positions: the encoder reads the source, the
    decoder writes the target one token at a time, attending to the encoder's memory.

    forward(src [B, S], tgt_in [B, T]) -> logits [B, T, vocab_size]; logits[:, t] predict the
    target token after tgt_in[:, :t + 1] (teacher forcing: tgt_in is the target shifted right).
    """

    def __init__(self, vocab_size: int, d_model: int = 64, num_heads: int = 4, layers: int = 2,
                 max_len: int = 64, dropout: float = 0.0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.register_buffer("positions", sinusoidal_positions(max_len, d_model), persistent=False)
        self.encoder = nn.ModuleList(EncoderBlock(d_model, num_heads, dropout) for _ in range(layers))
        self.decoder = nn.ModuleList(DecoderBlock(d_model, num_heads, dropout) for _ in range(layers))
        self.ln_enc, self.ln_dec = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        self.scale = math.sqrt(d_model)

    def encode(self, src: torch.Tensor) -> torch.Tensor:
        x = self.embed(src) * self.scale + self.positions[: src.shape[1]]
        for block in self.encoder:
            x = block(x)
        return self.ln_enc(x)

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        y = self.embed(tgt_in) * self.scale + self.positions[: tgt_in.shape[1]]
        for block in self.decoder:
            y = block(y, memory)
        return self.head(self.ln_dec(y))

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.decode(tgt_in, self.encode(src))

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, start: int, length: int) -> torch.Tensor:
        """[B, S] -> [B, length]: the most likely target, one token at a time, from the start token."""
        memory = self.encode(src)
        out = torch.full((src.shape[0], 1), start, dtype=torch.long, device=src.device)
        for _ in range(length):
            out = torch.cat([out, self.decode(out, memory)[:, -1:].argmax(dim=-1)], dim=1)
        return out[:, 1:]


def cross_entropy_next_token(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy in nats per token: logits [B, T, V] against targets [B, T]."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
