"""Lesson 09: minidl.lm against Hugging Face's tokenizers and PyTorch's fused pieces, measured in one run.

``rows()`` returns (name, ratio) pairs, ratio = minidl's time / the other's (best of interleaved
repeats). Targets (issue 19): BPE training on 1 MB within 30x of tokenizers' BpeTrainer (Rust, on
every core; ours is Python with the incremental pair-count update); a LlamaBlock forward+backward
within 1.5x of the same block from nn.RMSNorm, F.scaled_dot_product_attention(enable_gqa=True) and
F.silu. Encoding is timed with a fresh Tokenizer (its per-word cache cold). The cache row is
cached generation's time over uncached (below 1: that much faster).
"""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F
from torch import nn

from minidl import data, lm

from .bench_cnn_rnn import fwd_bwd
from .timing import interleaved_ratio

MEGABYTE = 1_000_000
VOCAB = 1000


def hugging_face_bpe(text: str):
    """tokenizers' byte-level BPE trainer set up as minidl's: GPT-2's pre-tokenizer, 256 bytes, no prefix space."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], trainer)
    return tok


def builtin_block(block: lm.LlamaBlock, norms: tuple[nn.RMSNorm, nn.RMSNorm], x: torch.Tensor) -> torch.Tensor:
    """block's computation from nn.RMSNorm, F.scaled_dot_product_attention(enable_gqa=True) and F.silu."""
    B, T, d = x.shape
    d_h = d // block.n_heads
    a = norms[0](x)
    q, k, v = (w(a).view(B, T, -1, d_h).transpose(1, 2) for w in (block.wq, block.wk, block.wv))
    angle = torch.arange(T)[:, None] * block.rope_base ** (-torch.arange(0, d_h, 2) / d_h)
    rot = torch.polar(torch.ones_like(angle), angle)

    def turn(t: torch.Tensor) -> torch.Tensor:
        return torch.view_as_real(torch.view_as_complex(t.reshape(*t.shape[:-1], -1, 2).contiguous()) * rot).flatten(-2)

    att = F.scaled_dot_product_attention(turn(q), turn(k), v, is_causal=True, enable_gqa=True)
    h = x + block.wo(att.transpose(1, 2).reshape(B, T, d))
    f = norms[1](h)
    return h + block.ffn.w2(F.silu(block.ffn.w1(f)) * block.ffn.w3(f))


def rows() -> list[tuple[str, float]]:
    torch.manual_seed(0)
    out: list[tuple[str, float]] = []
    text = data.shakespeare_split()[0][:MEGABYTE]
    out.append((f"lm.bpe_train 1 MB of Shakespeare, vocab {VOCAB} / tokenizers' BpeTrainer",
                interleaved_ratio(lambda: lm.bpe_train(text, VOCAB), lambda: hugging_face_bpe(text), repeats=3)))
    vocab, merges = lm.bpe_train(text, VOCAB)
    hf = hugging_face_bpe(text)
    assert json.loads(hf.to_str())["model"]["merges"], "tokenizers trained nothing"
    out.append(("lm.Tokenizer.encode 1 MB (fresh tokenizer) / tokenizers' encode",
                interleaved_ratio(lambda: lm.Tokenizer(vocab, merges).encode(text), lambda: hf.encode(text), repeats=3)))
    block = lm.LlamaBlock(128, 8, 2, 344)
    norms = (nn.RMSNorm(128, eps=1e-5), nn.RMSNorm(128, eps=1e-5))
    norms[0].weight, norms[1].weight = block.attn_norm.weight, block.ffn_norm.weight
    x = torch.randn(8, 128, 128)
    out.append(("lm.LlamaBlock fwd+bwd [8,128,128], 8 heads, 2 kv / nn.RMSNorm + F.sdpa(enable_gqa) + F.silu",
                interleaved_ratio(fwd_bwd(block, x), fwd_bwd(lambda x: builtin_block(block, norms, x), x), repeats=15)))
    model = lm.TransformerLM(512, 256, 96, 2, 4, 2, 256).eval()
    prompt = torch.randint(0, 512, (8, 16))
    out.append(("lm.TransformerLM.generate 8 x 200 tokens: with the KV cache / without",
                interleaved_ratio(lambda: model.generate(prompt, 200, temperature=0, use_cache=True),
                                  lambda: model.generate(prompt, 200, temperature=0, use_cache=False), repeats=3)))
    return out


if __name__ == "__main__":
    for name, ratio in rows():
        print(f"{ratio:6.2f}x  {name}")
