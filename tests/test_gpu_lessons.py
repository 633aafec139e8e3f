"""GPU check: the minidl calls that lessons 01-08 make, run on cuda, as a learner's notebook makes them
when ``default_device()`` finds a GPU. Part of ``make gpu-check``: imports torch, pytest and the
repository only (no Jupyter, nbgrader or hypothesis); skipped without a GPU. Each test is small:
a few steps of each lesson's training, checked for the device of every result and for progress."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from minidl import autograd, broadcasting, cnn, data, ddp_train, losses, optim, rnn, scale, tensors, text, train
from minidl import transformer as tf
from minidl.device import available_devices, default_device, seed_everything

pytestmark = pytest.mark.cuda

CUDA = torch.device("cuda")


def on_gpu(*results) -> bool:
    return all(t.device.type == "cuda" for t in results)


def test_lesson_01_tensors_set_up_and_references(monkeypatch):
    assert default_device() == CUDA and CUDA in available_devices()
    seed_everything(0)
    a = torch.randn(3, device="cuda")
    seed_everything(0)
    assert torch.equal(a, torch.randn(3, device="cuda"))                   # the GPU's generator is seeded too
    monkeypatch.setenv("MINIDL_DEVICE", "cpu")
    assert default_device() == torch.device("cpu")
    moved = tensors.to_device({"x": [torch.ones(2)], "n": 3}, CUDA)
    assert on_gpu(moved["x"][0]) and moved["n"] == 3
    assert on_gpu(tensors.one_hot(torch.tensor([1, 0], device="cuda"), 3),
                  tensors.patchify(torch.randn(1, 3, 8, 8, device="cuda"), 4))
    assert tensors.contiguous_strides((2, 3, 4)) == torch.empty(2, 3, 4, device="cuda").stride()


def test_lesson_02_broadcasting_references():
    x, y = torch.randn(5, 3, device="cuda"), torch.randn(4, 3, device="cuda")
    assert broadcasting.broadcast_shapes((5, 1, 3), (4, 1)) == (5, 4, 3)
    assert on_gpu(broadcasting.sum_to_shape(x, (1, 3)), broadcasting.pairwise_sq_dists(x, y),
                  broadcasting.softmax(x * 1e4))
    assert torch.isfinite(broadcasting.softmax(x * 1e4)).all()


def test_lesson_03_autograd_references():
    v = autograd.Value(0.5)
    out = (v * v).tanh() + v.exp()
    out.backward()
    assert abs(v.grad - (2 * 0.5 * (1 - math.tanh(0.25) ** 2) + math.exp(0.5))) < 1e-12   # pure Python
    x = torch.randn(4, 3, dtype=torch.float64, device="cuda", requires_grad=True)
    assert torch.autograd.gradcheck(autograd.SiLU.apply, (x,))
    assert on_gpu(autograd.numerical_grad(lambda t: (t ** 2).sum(), x.detach()),
                  *autograd.linear_backward(x.detach(), torch.randn(2, 3, dtype=torch.float64, device="cuda"),
                                            torch.zeros(2, dtype=torch.float64, device="cuda"),
                                            torch.randn(4, 2, dtype=torch.float64, device="cuda")))


def mlp(inputs: int = 64) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(inputs, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))


def test_lesson_04_training_loop_with_amp_and_checkpoint(tmp_path):
    """fit on cuda with float16 autocast, metrics, the losses and optimizers, and a checkpoint that resumes."""
    train_loader, test_loader = data.loaders(data.load_digits(), 64, pin_memory=True)
    model = mlp().to(CUDA)
    opt = optim.Adam(model.parameters(), lr=3e-3)
    history = train.fit(model, train_loader, opt, losses.cross_entropy, 5, CUDA, val_loader=test_loader, amp=True,
                        checkpoint=tmp_path / "fit.pt", progress=False)
    assert history["val_acc"][-1] > 0.9 and history["train_loss"][-1] < history["train_loss"][0]
    resumed = mlp().to(CUDA)
    again = train.fit(resumed, train_loader, optim.Adam(resumed.parameters(), lr=3e-3), losses.cross_entropy, 5,
                      CUDA, val_loader=test_loader, amp=True, checkpoint=tmp_path / "fit.pt", progress=False)
    assert again["val_acc"] == history["val_acc"]                          # nothing left to train: restored
    preds, labels = train.predict(model, test_loader, CUDA)
    confusion = train.confusion_matrix(preds, labels, 10)
    precision, recall, f1 = train.precision_recall_f1(confusion)
    assert confusion.sum() == len(labels) and 0.9 < f1.mean() <= 1
    assert abs(train.evaluate(model, test_loader, CUDA) - history["val_acc"][-1]) < 0.02
    sgd_model = mlp().to(CUDA)
    loss = train.train_one_epoch(sgd_model, train_loader, optim.SGD(sgd_model.parameters(), lr=0.1, momentum=0.9),
                                 losses.cross_entropy, CUDA)
    assert loss < 2.3
    z, y = torch.randn(6, device="cuda"), torch.rand(6, device="cuda")
    assert on_gpu(losses.mse_loss(z, y), losses.binary_cross_entropy_with_logits(z, y))


def test_lesson_05_cnn_on_digits_images():
    split = data.load_digits(flatten=False)
    train_loader, test_loader = data.loaders(split, 64, pin_memory=True)
    torch.manual_seed(0)
    model = cnn.LeNet(image_size=split.x_train.shape[-1]).to(CUDA)
    history = train.fit(model, train_loader, optim.AdamW(model.parameters(), lr=3e-3), F.cross_entropy, 3, CUDA,
                        val_loader=test_loader, progress=False)
    assert history["val_acc"][-1] > 0.85
    x, w = torch.randn(2, 1, 8, 8, device="cuda"), torch.randn(4, 1, 3, 3, device="cuda")
    assert on_gpu(cnn.conv2d(x, w, padding=1), cnn.max_pool2d(x, 2))
    assert cnn.conv_output_size(8, 3, padding=1) == 8 and cnn.receptive_field([(3, 1), (2, 2)]) == 4
    assert cnn.conv_params(1, 4, 3) == 40


def char_loss(output, targets):
    logits, _ = output
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=text.PAD)


def test_lesson_06_character_model_on_names():
    vocab = text.names_vocab()
    train_names, val_names = text.split_names(text.first_names())
    x, y = text.encode_names(train_names[:2000], vocab)
    torch.manual_seed(0)
    model = rnn.CharModel(len(vocab), embed=32, hidden=64).to(CUDA)
    loader = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True, generator=torch.Generator().manual_seed(0))
    history = train.fit(model, loader, torch.optim.Adam(model.parameters(), lr=1e-2), char_loss, 3, CUDA,
                        progress=False)
    assert history["train_loss"][-1] < history["train_loss"][0]
    norm = rnn.clip_grad_norm_(model.parameters(), 1.0)
    assert on_gpu(norm)
    name = model.sample(torch.tensor([0], device="cuda"), 12, stop=0, generator=torch.Generator().manual_seed(0))
    assert all(0 < i < len(vocab) for i in name)
    h = torch.zeros(2, 8, device="cuda")
    W_ih, W_hh = torch.randn(24, 5, device="cuda"), torch.randn(24, 8, device="cuda")
    assert on_gpu(rnn.gru_cell(torch.randn(2, 5, device="cuda"), h, W_ih, W_hh))
    assert len(rnn.gradient_norms_through_time(0.5, steps=10)) == 10


def test_lesson_07_gpt_and_seq2seq():
    train_text, _ = data.shakespeare_split()
    vocab = text.CharVocab([train_text])
    x, y = text.char_windows(vocab.encode(train_text[:50_000]), 32)
    torch.manual_seed(0)
    model = tf.GPT(tf.GPTConfig(vocab_size=len(vocab), block_size=32, n_layer=2, n_head=4, d_model=64,
                                dropout=0.0)).to(CUDA)
    opt = optim.AdamW(model.parameters(), lr=3e-3)
    scheduler = optim.WarmupCosine(opt, warmup_steps=10, total_steps=60, min_factor=0.1)
    g = torch.Generator().manual_seed(0)
    losses_seen = []
    for _ in range(60):
        batch = torch.randint(0, len(x), (64,), generator=g)
        loss = tf.cross_entropy_next_token(model(x[batch].to(CUDA)), y[batch].to(CUDA))
        opt.zero_grad()
        loss.backward()
        opt.step()
        scheduler.step()
        losses_seen.append(loss.item())
    assert sum(losses_seen[-5:]) < sum(losses_seen[:5])
    prompt = x[:2, :8].to(CUDA)
    plain = model.generate(prompt, 40, 0.8, None, torch.Generator().manual_seed(1))
    cached = model.generate(prompt, 40, 0.8, None, torch.Generator().manual_seed(1), use_cache=True)
    assert on_gpu(plain) and torch.equal(plain, cached)                    # the KV cache changes no token
    seq2seq = tf.Seq2Seq(vocab_size=11, d_model=32, num_heads=2, layers=1).to(CUDA)
    src = torch.randint(1, 11, (3, 5), device="cuda")
    assert on_gpu(seq2seq.greedy(src, 0, 5))
    q = torch.randn(1, 2, 6, 8, device="cuda")
    assert on_gpu(tf.rope(q), tf.sinusoidal_positions(6, 8, device="cuda"), tf.causal_mask(6, device="cuda"),
                  tf.layer_norm(q, 8), tf.RMSNorm(8).to(CUDA)(q), tf.SwiGLU(8, 16).to(CUDA)(q))


def test_lesson_08_scale_on_the_gpu():
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 3).to(CUDA)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    micro = [(torch.randn(n, 8, device="cuda"), torch.randint(0, 3, (n,), device="cuda")) for n in (3, 5)]
    assert on_gpu(scale.accumulated_step(model, F.cross_entropy, opt, micro))
    x = torch.randn(100, device="cuda")
    s, z = scale.choose_qparams(x)
    q = scale.quantize_per_tensor(x, s, z)
    assert on_gpu(q, scale.dequantize(q, s, z)) and (scale.dequantize(q, s, z) - x).abs().max() <= s / 2 + 1e-6
    model, losses_seen = ddp_train.train(steps=5, batch_size=16, rank=0, world_size=1, device="cuda")
    assert on_gpu(next(model.parameters())) and losses_seen[-1] < losses_seen[0]
    x_all, y_all, vocab_size = ddp_train.data()
    gpt = tf.GPT(tf.GPTConfig(vocab_size=vocab_size, block_size=32, n_layer=2, n_head=2, d_model=32,
                              dropout=0.0)).to(CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = gpt(x_all[:4].to(CUDA))
    assert logits.dtype == torch.bfloat16
    torch.cuda.reset_peak_memory_stats()
    F.cross_entropy(gpt(x_all[:16].to(CUDA)).flatten(0, 1), y_all[:16].to(CUDA).flatten()).backward()
    assert torch.cuda.max_memory_allocated() > 0
