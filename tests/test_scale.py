"""minidl.scale against PyTorch's own machinery: one big step, GradScaler, DistributedSampler,
DistributedDataParallel in a real 2-process gloo group, quantize_per_tensor and MinMaxObserver,
and checkpoints whose resume is bitwise exact."""

import math
import multiprocessing
import random
import warnings

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from minidl import scale


def mlp(seed=0, dropout=0.0, dtype=torch.float64):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Dropout(dropout), nn.Linear(8, 3)).to(dtype)


# -- accumulated_step ----------------------------------------------------------------------------------
@pytest.mark.parametrize("sizes", [(4, 4, 4), (5, 1, 3, 7), (9,)])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_accumulated_step_equals_one_step_on_the_union(sizes, momentum):
    g = torch.Generator().manual_seed(len(sizes))
    x = torch.randn(sum(sizes), 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (sum(sizes),), generator=g)
    big, small = mlp(), mlp()
    opt_big = torch.optim.SGD(big.parameters(), lr=0.3, momentum=momentum)
    opt_small = torch.optim.SGD(small.parameters(), lr=0.3, momentum=momentum)
    for _ in range(2):                                   # the second step sees momentum and stale .grad
        opt_big.zero_grad()
        union_loss = F.cross_entropy(big(x), y)
        union_loss.backward()
        opt_big.step()
        loss = scale.accumulated_step(small, F.cross_entropy, opt_small, zip(x.split(sizes), y.split(sizes)))
        torch.testing.assert_close(loss, union_loss.detach())
        assert loss.ndim == 0 and not loss.requires_grad
        for p, q in zip(big.parameters(), small.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-12)


# -- LossScaler ----------------------------------------------------------------------------------------
def gradient_stream(steps, bad_steps, shapes=((3, 2), (4,)), seed=0):
    g = torch.Generator().manual_seed(seed)
    stream = []
    for t in range(steps):
        grads = [torch.randn(s, generator=g) for s in shapes]
        if t in bad_steps:
            grads[t % len(grads)].view(-1)[0] = bad_steps[t]
        stream.append(grads)
    return stream


def run_scaler(scaler, stream, unscale_on=()):
    params = [nn.Parameter(torch.ones(g.shape)) for g in stream[0]]
    opt = torch.optim.SGD(params, lr=0.1)
    record = []
    for t, grads in enumerate(stream):
        opt.zero_grad()
        loss = sum((p * g).sum() for p, g in zip(params, grads))
        scaled = scaler.scale(loss)
        scaled.backward()
        scaled_grads = [p.grad.clone() for p in params]
        if t in unscale_on:                                # clip-style: unscale first, step later
            scaler.unscale_(opt)
        returned = scaler.step(opt)
        scaler.update()
        record.append((float(scaled.detach()), scaled_grads, [p.grad.clone() for p in params],
                       [p.detach().clone() for p in params], scaler.get_scale(), returned))
    return record


@pytest.mark.parametrize("hp", [dict(init_scale=2.0**16, growth_interval=3),
                                dict(init_scale=1024.0, growth_factor=4.0, backoff_factor=0.25, growth_interval=2),
                                dict(init_scale=3.0, growth_factor=1.5, backoff_factor=0.3, growth_interval=1),
                                dict(init_scale=2.0**127, growth_interval=1)])  # growth would overflow float32
def test_loss_scaler_follows_grad_scaler_step_by_step(hp):
    bad = {2: float("inf"), 3: float("nan"), 7: float("-inf"), 8: float("inf"), 13: float("nan")}
    stream = gradient_stream(16, bad)
    ours = run_scaler(scale.LossScaler(**hp), stream, unscale_on={1, 7, 10})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = run_scaler(torch.amp.GradScaler("cpu", **hp), stream, unscale_on={1, 7, 10})
    for t, (a, b) in enumerate(zip(ours, theirs)):
        assert a[0] == b[0] or (math.isnan(a[0]) and math.isnan(b[0])), t              # the scaled loss
        for name, i in (("scaled grads", 1), ("unscaled grads", 2), ("parameters", 3)):
            for u, v in zip(a[i], b[i]):
                assert torch.equal(u, v) or torch.equal(u.isnan(), v.isnan()) and torch.equal(
                    u.nan_to_num(), v.nan_to_num()), (t, name, u, v)
        assert a[4] == b[4], (t, a[4], b[4])                                           # the scale after update()
        assert (a[5] is None) == (b[5] is None), t                                     # the step skipped or not
    skipped = [t for t, r in enumerate(ours) if r[3][0].equal(ours[t - 1][3][0])] if len(ours) > 1 else []
    assert set(bad) <= set(skipped)


def test_loss_scaler_state_dict_loads_into_grad_scaler():
    ours = scale.LossScaler(init_scale=256.0, growth_interval=5)
    ours._growth_tracker = 3
    theirs = torch.amp.GradScaler("cpu")
    theirs.load_state_dict(ours.state_dict())
    assert theirs.get_scale() == 256.0 and theirs.state_dict()["_growth_tracker"] == 3
    again = scale.LossScaler()
    again.load_state_dict(theirs.state_dict())
    assert again.state_dict() == ours.state_dict()


def test_loss_scaler_refuses_a_second_unscale():
    p = nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([p], lr=0.1)
    scaler = scale.LossScaler()
    scaler.scale(p.sum()).backward()
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.unscale_(opt)


# -- shard_indices -------------------------------------------------------------------------------------
@given(n=st.integers(1, 40), world_size=st.integers(1, 5), shuffle=st.booleans(), seed=st.integers(0, 100),
       epoch=st.integers(0, 3), drop_last=st.booleans())
def test_shard_indices_are_distributed_samplers(n, world_size, shuffle, seed, epoch, drop_last):
    dataset = range(n)
    for rank in range(world_size):
        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed,
                                     drop_last=drop_last)
        sampler.set_epoch(epoch)
        assert scale.shard_indices(n, rank, world_size, shuffle, seed, epoch, drop_last) == list(sampler)


def test_shards_are_disjoint_and_change_with_the_epoch():
    shards = [scale.shard_indices(10, r, 3) for r in range(3)]
    assert sorted(sum(shards, [])) == sorted(list(range(10)) + scale.shard_indices(10, 0, 1)[:2])   # 2 repeated
    assert scale.shard_indices(10, 0, 3, epoch=1) != shards[0]


# -- average_gradients in a real 2-process gloo group -----------------------------------------------------
def _rank(rank, world_size, folder, x, y):
    torch.set_num_threads(1)        # a forked child must not enter the parent's OpenMP pool: it would hang
    dist.init_process_group("gloo", init_method=f"file://{folder / 'store'}", rank=rank, world_size=world_size)
    try:
        xs, ys = x.chunk(world_size)[rank], y.chunk(world_size)[rank]
        model = mlp()
        F.cross_entropy(model(xs), ys).backward()
        before = [p.detach().clone() for p in model.parameters()]
        scale.average_gradients(model)
        ours = [p.grad.clone() for p in model.parameters()]
        unchanged = all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
        ddp = nn.parallel.DistributedDataParallel(mlp())
        F.cross_entropy(ddp(xs), ys).backward()
        torch.save((rank, ours, [p.grad.clone() for p in ddp.parameters()], unchanged), folder / f"{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_average_gradients_equals_ddp_in_a_two_process_gloo_group(tmp_path):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(10, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (10,), generator=g)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_rank, args=(r, 2, tmp_path, x, y)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    results = [torch.load(tmp_path / f"{r}.pt") for r in range(2)]
    model = mlp()
    F.cross_entropy(model(x), y).backward()                  # the whole batch in one process
    for rank, ours, ddp, unchanged in results:
        assert unchanged
        for a, b, whole in zip(ours, ddp, (p.grad for p in model.parameters())):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(a, whole, rtol=1e-12, atol=1e-14)


# -- int8 quantization ---------------------------------------------------------------------------------
def quietly(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                      # quantized tensors are deprecated in PyTorch 2.10+
        return fn(*args)


@given(n=st.integers(1, 60), shift=st.floats(-5, 5), spread=st.floats(1e-3, 50), seed=st.integers(0, 2**16))
def test_quantization_equals_torch_and_the_min_max_observer(n, shift, spread, seed):
    from torch.ao.quantization import MinMaxObserver

    x = torch.randn(n, generator=torch.Generator().manual_seed(seed)) * spread + shift
    observer = MinMaxObserver(dtype=torch.qint8)
    observer(x)
    s, z = observer.calculate_qparams()
    assert scale.choose_qparams(x) == (float(s), int(z))
    for xs in (x, x * 3):                                    # x * 3 lies partly outside the range: clamped
        q = quietly(torch.quantize_per_tensor, xs, float(s), int(z), torch.qint8)
        ours = scale.quantize_per_tensor(xs, float(s), int(z))
        assert ours.dtype == torch.int8 and torch.equal(ours, q.int_repr())
        assert torch.equal(scale.dequantize(ours, float(s), int(z)), q.dequantize())


def test_quantization_rounds_half_to_even_and_clamps():
    x = torch.arange(-200, 201) * 0.125                      # x / 0.25 hits every half-way point
    q = quietly(torch.quantize_per_tensor, x, 0.25, 3, torch.qint8).int_repr()
    assert torch.equal(scale.quantize_per_tensor(x, 0.25, 3), q)
    assert scale.quantize_per_tensor(torch.tensor([0.625, 0.875]), 0.25, 0).tolist() == [2, 4]   # 2.5 -> 2, 3.5 -> 4
    assert scale.quantize_per_tensor(torch.tensor([1e6, -1e6]), 0.1, 0).tolist() == [127, -128]


# -- checkpoints: resume bitwise exact -----------------------------------------------------------------------
def train(epochs, path, start_fresh, model_seed=0):
    """Epochs of a shuffled, dropout-using run with Adam, a schedule and a loss scaler; numpy and
    Python's random module are drawn from too. Resumes from ``path`` when not ``start_fresh``."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 6, generator=g), torch.randint(0, 3, (64,), generator=g)
    model = mlp(model_seed, dropout=0.3, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.8)
    scaler = scale.LossScaler(init_scale=2.0**10, growth_interval=3)
    loader = DataLoader(TensorDataset(x, y), batch_size=10, shuffle=True)   # shuffles with torch's global RNG
    start, losses = 0, []
    if not start_fresh:
        extra = scale.load_checkpoint(path, model, opt, sched, scaler)
        start, losses = extra["epoch"], extra["losses"]
    for epoch in range(start, epochs):
        losses += scale.scaled_epoch(model, loader, opt, scaler, jitter=0.01)
        sched.step()
        scale.save_checkpoint(path, model, opt, sched, scaler, epoch=epoch + 1, losses=losses)
    return model, losses, scaler.get_scale()


def test_two_epochs_resumed_for_two_more_equal_four_bitwise(tmp_path):
    from minidl.device import seed_everything

    seed_everything(0)
    straight, losses, s = train(4, tmp_path / "straight.pt", True)
    seed_everything(0)
    train(2, tmp_path / "resumable.pt", True)
    seed_everything(7)                                               # another process, other seeds: all restored
    resumed, resumed_losses, resumed_s = train(4, tmp_path / "resumable.pt", False, model_seed=5)
    assert resumed_losses == losses and resumed_s == s
    for p, q in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(p, q)


def test_checkpoint_file_format(tmp_path):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scale.save_checkpoint(tmp_path / "c.pt", model, opt, epoch=3, step=30)
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    assert set(state) == {"model", "optimizer", "scheduler", "scaler", "rng", "extra"}
    assert state["scheduler"] is None and state["scaler"] is None
    assert set(state["rng"]) == {"torch", "cuda", "python", "numpy"}
    assert state["extra"] == {"epoch": 3, "step": 30}
    other = mlp(3)
    assert scale.load_checkpoint(tmp_path / "c.pt", other) == {"epoch": 3, "step": 30}
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), other.parameters()))


def test_load_checkpoint_restores_every_generator(tmp_path):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scale.save_checkpoint(tmp_path / "c.pt", model, opt)
    draws = (torch.rand(3), random.random(), np.random.rand())
    scale.load_checkpoint(tmp_path / "c.pt", model)
    again = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(draws[0], again[0]) and draws[1:] == again[1:]
