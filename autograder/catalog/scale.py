"""Lesson 08, training at scale: the exercises and how they are checked.

Most exercises here are about behaviour over time or across processes, so their probes run a
small training run themselves and return what they observed: how many optimizer steps were
taken, what the gradients were when the optimizer stepped, the loss scale after every update,
the gradients on each rank of a real 2-process gloo group, the losses after a resume.
"""

from __future__ import annotations

import os
import pickle
import random
import signal
import tempfile
from datetime import timedelta

import torch
import torch.nn.functional as F
from torch import nn

from ..exercise import Case, Exercise, Group, Lesson
from ..i18n import N_, _
from ..sandbox import ForbiddenCall, learner_code, refuse

# -- accumulated_step ----------------------------------------------------------------------------------


class WatchedSGD(torch.optim.SGD):
    """SGD that records, at each step, the gradients it is handed."""

    def __init__(self, params, lr: float, momentum: float):
        super().__init__(params, lr=lr, momentum=momentum)
        self.seen: list[list[torch.Tensor]] = []

    def step(self, closure=None):
        self.seen.append([torch.zeros_like(p) if p.grad is None else p.grad.clone()
                          for g in self.param_groups for p in g["params"]])
        return super().step(closure)

    step.hooked = True  # see catalog/training.py: Optimizer.__init__ would otherwise wrap step() here


class ZeroWatch(nn.Module):
    """A small MLP that records, at each forward, whether every gradient is zero (or None)."""

    def __init__(self, state: dict):
        super().__init__()
        d, h = state["0.weight"].shape[1], state["0.weight"].shape[0]
        self.net = nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, state["2.weight"].shape[0]))
        self.net.to(state["0.weight"].dtype).to(state["0.weight"].device)
        self.net.load_state_dict(state)
        self.zero_at_forward: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.zero_at_forward.append(all(p.grad is None or not p.grad.any() for p in self.parameters()))
        return self.net(x)


def accumulate_probe(fn, state: dict, xs: list, ys: list, lr: float, momentum: float) -> dict:
    """Two calls of fn (the second finds last call's gradients and momentum); what the optimizer saw."""
    model = ZeroWatch(state)
    twin = ZeroWatch(state)                                # one step on the union, for the ratio
    optimizer = WatchedSGD(model.parameters(), lr, momentum)
    returned, patterns, ratios = [], [], []
    for _ in range(2):
        twin.net.load_state_dict(model.net.state_dict())
        union = F.cross_entropy(twin.net(torch.cat(xs)), torch.cat(ys))
        g_union = torch.cat([g.flatten() for g in torch.autograd.grad(union, list(twin.net.parameters()))])
        model.zero_at_forward.clear()
        steps_before = len(optimizer.seen)
        with learner_code():
            loss = fn(model, F.cross_entropy, optimizer, list(zip(xs, ys)))
        patterns.append(model.zero_at_forward[:])
        if len(optimizer.seen) > steps_before:
            g = torch.cat([t.flatten() for t in optimizer.seen[steps_before]])
            ratios.append(float(g @ g_union / (g_union @ g_union)))
        returned.append(float(loss) if type(loss) is torch.Tensor and loss.numel() == 1 else loss)
    k = len(xs)
    return {
        N_("optimizer.step() calls per accumulated step"): len(optimizer.seen) / 2,
        N_("gradients zero only before the first micro-batch (zero_grad once, before the loop)"):
            all(p == [True] + [False] * (k - 1) for p in patterns),
        N_("size of the gradient at the step / gradient of the union's mean loss"): ratios,
        N_("gradients at each step"): [torch.cat([t.flatten() for t in s]) for s in optimizer.seen],
        N_("parameters after the two steps"): [p.detach() for p in model.net.parameters()],
        N_("returned loss (mean over the union)"): returned,
    }


def mlp_state(draw, d: int = 4, h: int = 5, c: int = 3) -> dict:
    return {"0.weight": draw.randn(h, d), "0.bias": draw.randn(h, scale=0.1), "2.weight": draw.randn(c, h),
            "2.bias": draw.randn(c, scale=0.1)}


def micro_batches(draw, sizes: list[int], d: int = 4, c: int = 3) -> tuple[list, list]:
    return [draw.randn(n, d) for n in sizes], [draw.randint(0, c, n) for n in sizes]


def accumulation_case(draw, sizes: list[int], momentum: float, note: str) -> Case:
    xs, ys = micro_batches(draw, sizes)
    return Case("", (), {"state": mlp_state(draw), "xs": xs, "ys": ys, "lr": 0.5, "momentum": momentum},
                size=sum(sizes), note=note)


def accumulate_equal(draw):
    yield accumulation_case(draw, [4, 4, 4], 0.0, "3 micro-batches of 4, plain SGD, 2 calls")
    yield accumulation_case(draw, [3, 3], 0.9, "2 micro-batches of 3, momentum 0.9, 2 calls")


def accumulate_unequal(draw):
    yield accumulation_case(draw, [5, 1, 3], 0.0, "micro-batches of 5, 1 and 3 samples, 2 calls")
    yield accumulation_case(draw, [2, 7], 0.9, "micro-batches of 2 and 7 samples, momentum 0.9, 2 calls")


def accumulate_single(draw):
    yield accumulation_case(draw, [6], 0.0, "a single micro-batch: a plain step")


# -- LossScaler ------------------------------------------------------------------------------------------


def scaler_probe(fn, hp: dict, grads: list, unscale_first: list) -> dict:
    """Train 'parameters' on the loss sum_k <g_t,k, p_k> (its gradient is exactly g_t, infinities
    included) with the learner's scaler; unscale_first[t]: call unscale_() before step(), as for clipping."""
    params = [nn.Parameter(torch.ones_like(g)) for g in grads[0]]
    optimizer = WatchedSGD(params, lr=0.1, momentum=0.0)
    scaled_losses, scales, stepped = [], [], []
    with learner_code():
        scaler = fn(**hp)
    for t, step_grads in enumerate(grads):
        optimizer.zero_grad()
        loss = sum((p * g).sum() for p, g in zip(params, step_grads))
        steps_before = len(optimizer.seen)
        with learner_code():
            scaled = scaler.scale(loss)
        if type(scaled) is not torch.Tensor:
            raise TypeError(_("scale(loss) should return a tensor (loss * scale), not {type}").format(
                type=type(scaled).__name__))
        scaled_losses.append(float(scaled.detach()))
        scaled.backward()
        with learner_code():
            if unscale_first[t]:
                scaler.unscale_(optimizer)
            scaler.step(optimizer)
            scaler.update()
            scales.append(float(scaler.get_scale()))
        stepped.append(len(optimizer.seen) > steps_before)
    return {
        N_("steps taken (False: skipped because a gradient was inf/NaN)"): stepped,
        N_("scale after each update() (backoff after inf/NaN, growth after growth_interval good steps)"):
            torch.tensor(scales, dtype=torch.float64),
        N_("gradients at each optimizer.step() (divided by the scale exactly once)"):
            [torch.cat([g.flatten() for g in s]) for s in optimizer.seen],
        N_("loss * scale at each step (scale(loss))"): torch.tensor(scaled_losses, dtype=torch.float64),
        N_("parameters after the last step"): [p.detach() for p in params],
    }


def scaler_case(draw, hp: dict, steps: int, bad: dict, unscale_at=(), note: str = "") -> Case:
    shapes = [(2, 3), (4,)]
    grads = []
    for t in range(steps):
        g = [draw.randn(*s, dtype=torch.float32) for s in shapes]
        if t in bad:
            g[t % 2].view(-1)[draw.rng.randrange(g[t % 2].numel())] = bad[t]
        grads.append(g)
    return Case("", (), {"hp": hp, "grads": grads, "unscale_first": [t in unscale_at for t in range(steps)]},
                size=steps, note=note)


INF, NAN = float("inf"), float("nan")


def scaler_finite(draw):
    yield scaler_case(draw, {"init_scale": 1024.0, "growth_interval": 100}, 4, {},
                      note="4 steps, every gradient finite, no growth yet")


def scaler_backoff(draw):
    yield scaler_case(draw, {"init_scale": 2.0**16, "growth_interval": 100}, 6, {1: INF, 2: NAN, 4: -INF},
                      note="inf at step 1, NaN at step 2, -inf at step 4: those steps are skipped")
    yield scaler_case(draw, {"init_scale": 256.0, "backoff_factor": 0.25, "growth_interval": 100}, 4, {0: INF},
                      note="inf at the first step, backoff_factor 0.25")


def scaler_growth(draw):
    yield scaler_case(draw, {"init_scale": 8.0, "growth_interval": 3}, 10, {},
                      note="growth_interval 3: the scale doubles after every 3 good steps")
    yield scaler_case(draw, {"init_scale": 4.0, "growth_factor": 4.0, "growth_interval": 2}, 9, {4: INF},
                      note="growth_interval 2, inf at step 4: the count of good steps starts again after it")


def scaler_unscale(draw):
    yield scaler_case(draw, {"init_scale": 512.0, "growth_interval": 2}, 6, {3: INF}, unscale_at=(0, 2, 3),
                      note="unscale_() called before step() at steps 0, 2 and 3 (as for gradient clipping)")


# -- shard_indices ---------------------------------------------------------------------------------------


def shard_case(n, rank, world_size, shuffle=True, seed=0, epoch=0, drop_last=False, note="") -> Case:
    return Case("", (n, rank, world_size), {"shuffle": shuffle, "seed": seed, "epoch": epoch, "drop_last": drop_last},
                size=n, note=note)


def shard_even(draw):
    yield shard_case(12, 0, 4, shuffle=False, note="12 samples over 4 ranks, in order")
    yield shard_case(12, 3, 4, shuffle=False)
    yield shard_case(10, 1, 2, seed=draw.rng.randrange(100), note="shuffled")


def shard_epochs(draw):
    seed = draw.rng.randrange(100)
    for epoch in (1, 2):
        yield shard_case(16, 1, 2, seed=seed, epoch=epoch, note=f"epoch {epoch}: a new order each epoch")


def shard_padding(draw):
    yield shard_case(10, 2, 4, shuffle=False, note="10 samples over 4 ranks: 2 repeated so every rank gets 3")
    yield shard_case(10, 3, 4, seed=draw.rng.randrange(100), note="10 samples over 4 ranks, shuffled")
    yield shard_case(2, 4, 5, shuffle=False, note="2 samples over 5 ranks: repeated more than once")


def shard_drop_last(draw):
    yield shard_case(10, 3, 4, shuffle=False, drop_last=True, note="drop_last: the tail is dropped, 2 each")
    yield shard_case(11, 0, 3, seed=draw.rng.randrange(100), drop_last=True, note="drop_last, shuffled")


# -- average_gradients: a real 2-process gloo group ------------------------------------------------------

RANKS_SECONDS = 15.0


class RanksFailed(RuntimeError):
    """The 2-process group did not finish (a rank hung or died)."""


def _rank_main(fn, rank: int, world_size: int, folder: str, state: dict, x: torch.Tensor, y: torch.Tensor,
               unused: bool) -> None:
    """One rank, in a forked child: a local backward on this rank's shard, then fn(model); writes what it saw."""
    code = 1
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)                                    # gloo's C++ messages stay out of the notebook
        torch.set_num_threads(1)                            # a forked child must not enter the parent's OpenMP pool
        import torch.distributed as dist

        dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=world_size,
                                timeout=timedelta(seconds=RANKS_SECONDS))
        model = nn.Sequential(nn.Linear(x.shape[1], state["0.weight"].shape[0]), nn.Tanh(),
                              nn.Linear(state["0.weight"].shape[0], state["2.weight"].shape[0])).double()
        model.load_state_dict(state)
        if unused:
            model.register_parameter("unused", nn.Parameter(torch.ones(2, dtype=torch.float64)))
        F.cross_entropy(model(x.chunk(world_size)[rank]), y.chunk(world_size)[rank]).backward()
        before = [p.detach().clone() for p in model.parameters()]
        out: dict = {}
        try:
            with learner_code():
                fn(model)
        except ForbiddenCall as e:
            out["forbidden"] = e.name
        except Exception as e:  # noqa: BLE001 (the learner's exception, sent to the parent)
            out["error"] = (type(e).__name__, str(e)[:300])
        from ..sandbox import _armed
        out["hits"] = list(_armed[-1].hits) if _armed else []
        out["unchanged"] = all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
        out["grads"] = [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
        with open(os.path.join(folder, f"{rank}.pkl"), "wb") as f:
            pickle.dump(out, f)
        dist.destroy_process_group()
        code = 0
    finally:
        os._exit(code)


def two_ranks(fn, state: dict, x: torch.Tensor, y: torch.Tensor, unused: bool) -> list[dict]:
    """Fork 2 ranks that form a gloo group on this machine; what each rank saw after fn(model)."""
    world_size, pids = 2, []
    with tempfile.TemporaryDirectory() as folder:
        try:
            for rank in range(world_size):
                pid = os.fork()
                if pid == 0:
                    _rank_main(fn, rank, world_size, folder, state, x, y, unused)
                pids.append(pid)
            codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
            pids = []
        finally:
            for pid in pids:                                # interrupted (time limit): leave no rank behind
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except OSError:
                    pass
        results = []
        for rank in range(world_size):
            path = os.path.join(folder, f"{rank}.pkl")
            if not os.path.exists(path):
                raise RanksFailed(_("rank {rank} of the 2-process group did not finish (exit code {code}): does "
                                    "every rank call all_reduce the same number of times, on tensors of the same "
                                    "shapes? (the group waits {seconds} s for the other rank)").format(
                                        rank=rank, code=codes[rank], seconds=f"{RANKS_SECONDS:g}"))
            with open(path, "rb") as f:
                results.append(pickle.load(f))
    return results


def average_probe(fn, state: dict, x: torch.Tensor, y: torch.Tensor, unused: bool = False) -> dict:
    results = two_ranks(fn, state, x, y, unused)
    for rank, r in enumerate(results):
        for name in r["hits"] + ([r["forbidden"]] if "forbidden" in r else []):
            with learner_code():
                refuse(name)                                # a refusal in a rank counts here
        if "error" in r and r["error"][0] == "NotImplementedError":
            raise NotImplementedError(r["error"][1])        # an unfinished exercise, reported as such
        if "error" in r:
            raise RuntimeError(_("on rank {rank}: {error}: {message}").format(
                rank=rank, error=r["error"][0], message=r["error"][1]))
    mean = [None if g is None else (g + h) / 2 for g, h in zip(*[_local_grads(state, x, y, rank, unused)
                                                                    for rank in range(2)])]
    flat = lambda gs: torch.cat([g.flatten() for g in gs if g is not None])  # noqa: E731
    ratio = float(flat(results[0]["grads"]) @ flat(mean) / (flat(mean) @ flat(mean)))
    return {
        N_("parameters unchanged (average the gradients, not the parameters)"): all(r["unchanged"] for r in results),
        N_("the same gradients on both ranks (all-reduce the gradients, not the parameters)"):
            all((g is None and h is None) or (g is not None and h is not None and torch.equal(g, h))
                for g, h in zip(results[0]["grads"], results[1]["grads"])),
        N_("size of your gradient / the mean of the ranks' gradients"): ratio,
        N_("gradients on rank 0"): results[0]["grads"],
        N_("gradients on rank 1"): results[1]["grads"],
    }


def _local_grads(state, x, y, rank, unused):
    model = nn.Sequential(nn.Linear(x.shape[1], state["0.weight"].shape[0]), nn.Tanh(),
                          nn.Linear(state["0.weight"].shape[0], state["2.weight"].shape[0])).double()
    model.load_state_dict(state)
    grads = torch.autograd.grad(F.cross_entropy(model(x.chunk(2)[rank]), y.chunk(2)[rank]), list(model.parameters()))
    return list(grads) + ([None] if unused else [])


def average_case(draw, n: int, unused: bool = False, note: str = "") -> Case:
    state = {k: v.double() for k, v in mlp_state(draw).items()}
    x, y = draw.randn(n, 4, dtype=torch.float64), draw.randint(0, 3, n)
    return Case("", (), {"state": state, "x": x, "y": y, "unused": unused}, size=n, note=note)


def average_values(draw):
    yield average_case(draw, 8, note="2 ranks, 4 samples each")


def average_unused(draw):
    yield average_case(draw, 6, unused=True, note="a parameter that took no part in the loss: its .grad is None")


# -- int8 quantization -------------------------------------------------------------------------------------


def q_values(draw):
    for n, spread, shift in ((7, 1.0, 0.0), (20, 5.0, 2.0), (12, 0.01, -0.003)):
        x = draw.randn(n, dtype=torch.float32) * spread + shift
        yield Case("", (x,), size=n, note="mixed signs")
    yield Case("", (draw.randn(8, dtype=torch.float32) + 0.5,), {"quant_min": 0, "quant_max": 255}, size=8,
               note="quant_min=0, quant_max=255 (uint8 codes, as the quint8 observer)")


def q_one_sided(draw):
    yield Case("", (draw.randn(9, dtype=torch.float32).abs() + 1,), size=9, note="all positive: the range is [0, max]")
    yield Case("", (-draw.randn(2, 5, dtype=torch.float64).abs() - 0.5,), size=10,
               note="all negative, float64: computed in float32, as the observer does")


def q_edges(draw):
    yield Case("", (torch.zeros(4),), size=4, note="all zeros: the scale is float32's eps (1.19e-07), not 0")
    yield Case("", (torch.tensor([3.0]),), size=1, note="a single value")
    yield Case("", (torch.tensor([-3e-6, 1e-6, 0.0]),), size=3,
               note="a range narrower than 255 * eps: the scale is floored at eps, not (hi - lo) / 255")


def q_ties(draw):
    yield Case("", (torch.tensor([-1.0, 0.25, 1.0]),), size=3,
               note="[-1, 1]: lo / scale is -127.5 in float64 but -127.49999 in float32, so the zero point is -1")
    yield Case("", (torch.tensor([[-2.0, 0.5], [1.0, 2.0]], dtype=torch.float64),), size=4,
               note="[-2, 2] in float64: computed in float32, as the observer does (zero point -1)")


def quantize_case(draw, x: torch.Tensor, note: str) -> Case:
    from minidl.scale import choose_qparams

    scale, zero_point = choose_qparams(x)
    return Case("", (x, scale, zero_point), size=x.numel(), note=note)


def quantize_values(draw):
    for n, spread in ((10, 1.0), (30, 4.0)):
        yield quantize_case(draw, draw.randn(n, dtype=torch.float32) * spread + 0.3, "x quantized with its own qparams")


def quantize_halves(draw):
    x = torch.arange(-12, 13, dtype=torch.float32) * 0.125
    yield Case("", (x, 0.25, 3), size=x.numel(), note="x / scale = -6, -5.5, ..., 6: half-way values round to even")
    yield Case("", (torch.tensor([0.625, 0.875, -0.625, -0.875]), 0.25, 0), size=4,
               note="2.5 -> 2, 3.5 -> 4, -2.5 -> -2, -3.5 -> -4")
    x = torch.arange(-40, 41, dtype=torch.float32) * 0.05
    yield Case("", (x, 0.02, 3), size=x.numel(),
               note="x = -2, -1.95, ..., 2 with scale 0.02: x / scale is near half-way (0.45 / 0.02 = 22.5), and "
                    "torch.quantize_per_tensor decides it as x * (1 / scale) in float32")


def quantize_clamp(draw):
    x = draw.randn(12, dtype=torch.float32) * 4
    yield Case("", (x, 0.02, -5), size=12, note="most values lie outside [-128, 127] * scale: clamped")
    yield Case("", (torch.tensor([1e6, -1e6, 0.0]), 0.1, 10), size=3, note="huge values: 127 and -128")


def dequantize_values(draw):
    for scale, zero_point in ((0.05, 0), (0.013, -7), (0.5, 100)):
        q = draw.randint(-128, 128, 10).to(torch.int8)
        yield Case("", (q, scale, zero_point), size=10, note=f"scale {scale}, zero point {zero_point}")


Q_FORBIDDEN = ("torch.quantize_per_tensor", "torch.quantize_per_tensor_dynamic", "torch.Tensor.int_repr",
               "torch.Tensor.dequantize", "torch.dequantize", "torch.fake_quantize_per_tensor_affine",
               "torch._make_per_tensor_quantized_tensor", "torch._choose_qparams_per_tensor",
               "torch.ao.quantization.MinMaxObserver", "torch.ao.quantization.observer.MinMaxObserver",
               "aten::quantize_per_tensor", "aten::int_repr", "aten::dequantize",
               "aten::_choose_qparams_per_tensor", "aten::fake_quantize_per_tensor_affine")

# -- save_checkpoint / load_checkpoint -------------------------------------------------------------------


def resume_probe(save, load, seed: int, epochs: int, split: int, which: str) -> dict:
    """Train ``epochs`` epochs straight, then ``split`` epochs + save + load into fresh objects (the
    global generators disturbed in between) + the rest: losses and parameters of both runs.
    ``which`` says whose function is the learner's ('save' or 'load'); the other is minidl's."""
    import numpy as np

    from minidl.scale import LossScaler, scaled_epoch

    def run(start_fresh: bool, until: int, path: str, model_seed: int):
        g = torch.Generator().manual_seed(seed)
        x, y = torch.randn(40, 5, generator=g), torch.randint(0, 3, (40,), generator=g)
        torch.manual_seed(model_seed)
        model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.8)
        scaler = LossScaler(init_scale=2.0**8, growth_interval=2)
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8, shuffle=True)
        start, losses, returned = 0, [], None
        if not start_fresh:
            if which == "load":
                with learner_code():
                    returned = load(path, model, opt, sched, scaler)
                if type(returned) is not dict or "epoch" not in returned or "losses" not in returned:
                    raise TypeError(_("load_checkpoint should return the extra keywords save_checkpoint was given, "
                                      "as a dict ({{'epoch': ..., 'losses': ...}} here), not {type}").format(
                                          type=type(returned).__name__))
            else:
                returned = load(path, model, opt, sched, scaler)
            start, losses = returned["epoch"], list(returned["losses"])
        for epoch in range(start, until):
            losses += scaled_epoch(model, loader, opt, scaler, jitter=0.05)
            sched.step()
            if epoch + 1 == split and start_fresh:
                if which == "save":
                    with learner_code():
                        save(path, model, opt, sched, scaler, epoch=epoch + 1, losses=losses)
                else:
                    save(path, model, opt, sched, scaler, epoch=epoch + 1, losses=losses)
        return model, losses, returned

    def reseed(s):
        torch.manual_seed(s)
        random.seed(s)
        np.random.seed(s)

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "checkpoint.pt")
        reseed(seed)
        losses = run(True, epochs, os.path.join(folder, "unused.pt"), 0)[1]
        reseed(seed)
        run(True, split, path, 0)
        file_format = _format(path)
        reseed(seed + 1000)                                # a new process, seeded otherwise
        try:
            resumed, resumed_losses, returned = run(False, epochs, path, 7)
        except Exception as e:
            if which == "load":
                raise
            return {N_("the file (torch.load(path, weights_only=True)) in the lesson's format"): file_format,
                    N_("the extra keywords, as load_checkpoint returns them"): f"minidl's load_checkpoint failed: {e!r}",
                    N_("losses of every step, the resumed run's (the uninterrupted run's)"): "no resumed run",
                    N_("parameters after all epochs"): "no resumed run"}
    return {
        N_("the file (torch.load(path, weights_only=True)) in the lesson's format"): file_format,
        N_("the extra keywords, as load_checkpoint returns them"): returned,
        N_("losses of every step, the resumed run's (the uninterrupted run's)"): torch.tensor(resumed_losses, dtype=torch.float64),
        N_("parameters after all epochs"): [p.detach() for p in resumed.parameters()],
    }


def _format(path: str) -> dict:
    """What a checkpoint file holds, as the lesson's table defines it (loaded as data only)."""
    try:
        state = torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001 (a file that is not data only, or not a checkpoint)
        return {N_("loads with weights_only=True"): f"no: {type(e).__name__}"}
    if type(state) is not dict:
        return {N_("loads with weights_only=True"): f"yes, but it holds a {type(state).__name__}, not a dict"}
    rng = state.get("rng")
    return {N_("loads with weights_only=True"): "yes",
            "keys": sorted(str(k) for k in state),
            N_("rng keys"): sorted(str(k) for k in rng) if type(rng) is dict else f"not a dict: {type(rng).__name__}",
            "extra": sorted(str(k) for k in state["extra"]) if type(state.get("extra")) is dict else "missing"}


def resume_cases(which: str):
    def make(draw):
        for epochs, split in ((4, 2), (3, 1)):
            yield Case("", (), {"seed": draw.rng.randrange(1000), "epochs": epochs, "split": split, "which": which},
                       size=epochs, note=f"{epochs} epochs straight against {split} + resume + {epochs - split}, with "
                                         "shuffling, dropout, Adam, a schedule and a loss scaler")
    return make


def save_probe(fn, **kwargs) -> dict:
    from minidl.scale import load_checkpoint

    return resume_probe(fn, load_checkpoint, **kwargs)


def load_probe(fn, **kwargs) -> dict:
    from minidl.scale import save_checkpoint

    return resume_probe(save_checkpoint, fn, **kwargs)


RESUME_HINT = ("Save model.state_dict(), optimizer.state_dict(), scheduler and scaler state dicts (None when not "
               "given), every random generator's state (torch.get_rng_state(), torch.cuda.get_rng_state_all() when "
               "CUDA is there, random.getstate(), numpy.random.get_state()) and the keywords, in one dict with the keys "
               "model, optimizer, scheduler, scaler, rng (torch, cuda, python, numpy) and extra; load_checkpoint puts "
               "each back (set_rng_state, random.setstate, ...) and returns extra. Without the generators, the "
               "resumed run shuffles and drops out differently from the uninterrupted one. torch.load(..., "
               "weights_only=True) refuses numpy arrays: keep numpy's key as a list or a tensor.")

LESSON = Lesson(
    key="08_scale",
    title="Training at scale",
    builds="gradient accumulation, dynamic loss scaling, the data split of DDP and its all-reduce, int8 "
           "quantization, checkpoints that resume exactly",
    exercises=(
        Exercise(
            id="scale.accumulated_step",
            title="Gradient accumulation",
            signature="(model, loss_fn, optimizer, micro_batches) -> loss",
            builds="one optimizer step over k micro-batches, equal to one step on their union",
            points=4,
            probe=accumulate_probe,
            cpu_only=True,
            groups=(
                Group("equal micro-batches", 2, accumulate_equal,
                      hint="optimizer.zero_grad() once before the loop; for each micro-batch (x, y): "
                           "(loss_fn(model(x), y) * n_i / N).backward(), which adds to .grad; optimizer.step() once "
                           "after the loop. Without the division by the number of micro-batches (k equal ones) the "
                           "gradient is k times too large; zero_grad inside the loop keeps only the last one's."),
                Group("unequal sizes", 2, accumulate_unequal,
                      hint="loss_fn returns the mean over its micro-batch, so weight micro-batch i by n_i / N "
                           "(N = the total number of samples), not 1 / k: the union's mean is sum_i n_i L_i / N."),
                Group("one micro-batch", 1, accumulate_single),
            ),
            hints={"raised": "micro_batches is a list of (x, y) pairs; loss_fn(model(x), y) is a 0-d mean loss.",
                   "type": "Return the loss on the union (a 0-d tensor or a float): sum_i n_i L_i / N."},
        ),
        Exercise(
            id="scale.LossScaler",
            title="Dynamic loss scaling",
            signature="LossScaler(init_scale=2.**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000): "
                      "scale(loss), unscale_(optimizer), step(optimizer), update(), get_scale()",
            builds="torch.amp.GradScaler's scale, unscale, skipped steps, backoff and growth",
            points=5,
            probe=scaler_probe,
            forbidden=("torch.amp.GradScaler", "torch.amp.grad_scaler.GradScaler", "torch.cuda.amp.GradScaler",
                       "torch.cpu.amp.GradScaler", "aten::_amp_update_scale_", "aten::_amp_foreach_non_finite_check_and_unscale_"),
            groups=(
                Group("finite gradients", 1, scaler_finite,
                      hint="scale(loss) returns loss * s; step(optimizer) divides every gradient by s (unscale_) and "
                           "then calls optimizer.step()."),
                Group("inf and NaN", 2, scaler_backoff,
                      hint="If any gradient is inf or NaN (not torch.isfinite(g).all()), step() must not call "
                           "optimizer.step(), and update() multiplies s by backoff_factor and restarts the count of "
                           "good steps at 0."),
                Group("growth", 2, scaler_growth,
                      hint="Count good steps in a row; when the count reaches growth_interval, update() multiplies s by "
                           "growth_factor and restarts the count; an inf/NaN step resets it to 0. Keep s in float32 "
                           "(GradScaler multiplies in float64 and rounds to float32)."),
                Group("unscale_ before step", 1, scaler_unscale,
                      hint="Remember, per optimizer, that unscale_() already ran since the last update() (and whether "
                           "it found inf/NaN): step() must not divide by s a second time."),
            ),
            hints={"raised": "LossScaler(init_scale=..., growth_factor=..., backoff_factor=..., growth_interval=...) "
                             "with methods scale(loss), unscale_(optimizer), step(optimizer), update(), get_scale()."},
        ),
        Exercise(
            id="scale.shard_indices",
            title="The data split of distributed training",
            signature="(n, rank, world_size, shuffle=True, seed=0, epoch=0, drop_last=False) -> list[int]",
            builds="the indices DistributedSampler gives each rank",
            points=3,
            cpu_only=True,
            forbidden=("torch.utils.data.DistributedSampler", "torch.utils.data.distributed.DistributedSampler"),
            groups=(
                Group("even split", 2, shard_even,
                      hint="Every rank draws the same order: torch.randperm(n, generator=torch.Generator()."
                           "manual_seed(seed + epoch)).tolist() when shuffling, else range(n); rank r takes "
                           "positions r, r + W, r + 2W, ... (indices[rank::world_size])."),
                Group("epochs", 1, shard_epochs, hint="Seed the permutation with seed + epoch."),
                Group("padding", 2, shard_padding,
                      hint="Without drop_last every rank gets ceil(n / W) indices: append the start of the order "
                           "(repeated as often as needed) until there are W * ceil(n / W), then take every W-th."),
                Group("drop_last", 1, shard_drop_last,
                      hint="With drop_last, keep the first W * floor(n / W) of the order (each rank gets floor(n / W))."),
            ),
            hints={"type": "Return a list of Python ints (tensor.tolist())."},
        ),
        Exercise(
            id="scale.average_gradients",
            title="The all-reduce of data parallelism",
            signature="(model) -> None, inside an initialised process group",
            builds="DDP's gradient averaging with dist.all_reduce, run in a real 2-process gloo group",
            points=3,
            probe=average_probe,
            cpu_only=True,
            forbidden=("torch.nn.parallel.DistributedDataParallel", "torch.nn.parallel.distributed.DistributedDataParallel"),
            groups=(
                Group("two ranks", 3, average_values,
                      hint="For every parameter p with a gradient: dist.all_reduce(p.grad, op=dist.ReduceOp.SUM) "
                           "adds the ranks' gradients in place; then divide by dist.get_world_size() to get the mean "
                           "(summing without dividing makes the step W times too large). Average the gradients, not "
                           "the parameters: the ranks' parameters are already equal."),
                Group("unused parameter", 1, average_unused,
                      hint="Skip parameters whose .grad is None (they took no part in the loss)."),
            ),
            hints={"raised": "Call torch.distributed (dist.all_reduce, dist.get_world_size()) on each p.grad; the "
                             "process group is already initialised."},
        ),
        Exercise(
            id="scale.choose_qparams",
            title="Quantization parameters",
            signature="(x, quant_min=-128, quant_max=127) -> (scale: float, zero_point: int)",
            builds="the min/max observer's scale and zero point",
            points=2,
            cpu_only=True,
            forbidden=Q_FORBIDDEN,
            groups=(
                Group("mixed signs", 2, q_values,
                      hint="In float32: lo = min(x.min(), 0), hi = max(x.max(), 0); scale = (hi - lo) / (quant_max - "
                           "quant_min); zero_point = quant_min - round(lo / scale), clamped to [quant_min, quant_max]. "
                           "Use the quant_min and quant_max you are given, not -128 and 127."),
                Group("one-sided ranges", 1, q_one_sided,
                      hint="The range always includes 0 (lo <= 0 <= hi), so that 0.0 has an exact code."),
                Group("edge cases", 1, q_edges,
                      hint="scale = max(scale, torch.finfo(torch.float32).eps): an all-zero (or tiny) range must not "
                           "give scale 0 (or one below eps): quantizing with scale 0 divides by zero."),
                Group("half-way zero points", 1, q_ties,
                      hint="Compute lo, hi, the scale and lo / scale in float32 tensors (x.float(), torch.round), as "
                           "PyTorch's observer does, not in Python floats (float64): for a symmetric range such as "
                           "[-1, 1], lo / scale is exactly -127.5 in float64 and rounds to even (-128), but in "
                           "float32 it is -127.49999 and rounds to -127."),
            ),
            # The scale is compared relatively: an absolute tolerance would take 0 for eps (1.19e-07).
            tolerances={torch.float32: (1e-5, 0.0)},
            hints={"type": "Return a tuple (scale as a Python float, zero_point as a Python int): float(...), int(...)."},
        ),
        Exercise(
            id="scale.quantize_per_tensor",
            title="Affine int8 quantization",
            signature="(x, scale, zero_point, quant_min=-128, quant_max=127) -> int8 tensor",
            builds="torch.quantize_per_tensor(...).int_repr(): round half to even, clamp",
            points=3,
            forbidden=Q_FORBIDDEN,
            groups=(
                Group("values", 2, quantize_values,
                      hint="q = round(x / scale) + zero_point, clamped to [quant_min, quant_max], as int8. Round to "
                           "the nearest code, half to even, with torch.round: floor or int() (truncation) give codes "
                           "one too low (or too high, below 0)."),
                Group("half-way values", 1, quantize_halves,
                      hint="Round half to even, as torch.round does (2.5 -> 2, 3.5 -> 4, -2.5 -> -2): floor, int() "
                           "(truncation) or floor(v + 0.5) (half up) give other codes. And compute v as "
                           "torch.quantize_per_tensor does, x.float() * inv_scale with inv_scale = 1 / scale as a "
                           "float32 tensor: x / scale (or float64) rounds some near-half-way values such as "
                           "0.45 / 0.02 to the other side."),
                Group("clamp", 1, quantize_clamp,
                      hint="Clamp to [quant_min, quant_max] before the cast to int8: without the clamp, 200 wraps "
                           "around to -56."),
            ),
            hints={"dtype": "Return the codes as torch.int8 (.to(torch.int8))."},
        ),
        Exercise(
            id="scale.dequantize",
            title="Dequantization",
            signature="(q, scale, zero_point) -> float32 tensor",
            builds="the real value each code stands for",
            points=1,
            forbidden=Q_FORBIDDEN,
            groups=(Group("values", 1, dequantize_values,
                          hint="x = (q - zero_point) * scale, in float32 (convert q first: int8 arithmetic overflows)."),),
        ),
        Exercise(
            id="scale.save_checkpoint",
            title="A checkpoint that resumes exactly",
            signature="(path, model, optimizer, scheduler=None, scaler=None, **extra) -> None",
            builds="one file with model, optimizer, scheduler, scaler, every RNG state and the extra keywords",
            points=3,
            probe=save_probe,
            cpu_only=True,
            forbidden=("minidl.scale.load_checkpoint",),
            groups=(Group("resume", 1, resume_cases("save"), hint=RESUME_HINT),),
            hints={"type": RESUME_HINT},
        ),
        Exercise(
            id="scale.load_checkpoint",
            title="Resuming from a checkpoint",
            signature="(path, model, optimizer=None, scheduler=None, scaler=None, map_location='cpu') -> extra",
            builds="everything put back (model, optimizer, scheduler, scaler, every RNG), the extra keywords returned",
            points=3,
            probe=load_probe,
            cpu_only=True,
            forbidden=("minidl.scale.save_checkpoint",),
            groups=(Group("resume", 1, resume_cases("load"), hint=RESUME_HINT),),
            hints={"type": RESUME_HINT},
        ),
    ),
)
