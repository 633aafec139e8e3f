"""Lesson 07: minidl's attention and layer norm against PyTorch's built-ins on the CPU, and
generation with the key/value cache against generation without it, measured in the same run.

``rows()`` returns (name, ratio) pairs, ratio = minidl's time / the other's time (best of several
interleaved repeats). Targets: attention forward+backward within 1.5x of
F.scaled_dot_product_attention, layer_norm within 3x of F.layer_norm; the cache row is the time
of cached generation over uncached (below 1: the cache is that much faster in tokens per second).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minidl import transformer as tf

from .bench_cnn_rnn import fwd_bwd
from .timing import interleaved_ratio


def rows() -> list[tuple[str, float]]:
    torch.manual_seed(0)
    out: list[tuple[str, float]] = []
    q, k, v = (torch.randn(8, 4, 128, 32) for _ in range(3))
    out.append(("transformer.scaled_dot_product_attention fwd+bwd [8,4,128,32] causal / F.scaled_dot_product_attention",
                interleaved_ratio(fwd_bwd(tf.scaled_dot_product_attention, q, k, v, is_causal=True),
                                  fwd_bwd(F.scaled_dot_product_attention, q, k, v, is_causal=True), repeats=15)))
    x, w, b = torch.randn(32, 64, 256), torch.randn(256), torch.randn(256)
    with torch.no_grad():
        out.append(("transformer.layer_norm fwd [32,64,256] / F.layer_norm",
                    interleaved_ratio(lambda: tf.layer_norm(x, 256, w, b), lambda: F.layer_norm(x, (256,), w, b), repeats=30)))
    out.append(("transformer.layer_norm fwd+bwd / F.layer_norm",
                interleaved_ratio(fwd_bwd(lambda x, w, b: tf.layer_norm(x, 256, w, b), x, w, b),
                                  fwd_bwd(lambda x, w, b: F.layer_norm(x, (256,), w, b), x, w, b), repeats=15)))
    model = tf.GPT(tf.GPTConfig(vocab_size=65, block_size=256, n_layer=2, n_head=4, d_model=64, dropout=0.0)).eval()
    prompt = torch.randint(0, 65, (8, 16))
    out.append(("transformer.GPT.generate 8 x 200 tokens: with the KV cache / without",
                interleaved_ratio(lambda: model.generate(prompt, 200, top_k=1, use_cache=True),
                                  lambda: model.generate(prompt, 200, top_k=1), repeats=3)))
    return out


if __name__ == "__main__":
    for name, ratio in rows():
        print(f"{ratio:6.2f}x  {name}")
