"""The lesson-08 checks: references and correct alternatives score full marks; the classic
mistakes fail with a message that names them."""

import math
import os
import random

import numpy as np
import pytest
import torch
import torch.distributed as dist

from autograder import check
from minidl import scale


def text_of(result) -> str:
    f = result.failures[0] if result.failures else None
    return (result.message + " " + (f.hint if f else "")).lower()


def full(result):
    assert result.passed and result.score == result.max_score, str(result)


# -- accumulated_step -----------------------------------------------------------------------------------------
def accumulate(model, loss_fn, optimizer, micro_batches, weight="n/N", zero_inside=False, step_each=False):
    N, k = sum(len(y) for _, y in micro_batches), len(micro_batches)
    optimizer.zero_grad()
    total = 0.0
    for x, y in micro_batches:
        if zero_inside:
            optimizer.zero_grad()
        share = {"n/N": len(y) / N, "1/k": 1 / k, "1": 1.0}[weight]
        loss = loss_fn(model(x), y) * share
        loss.backward()
        total += loss.item() if weight != "1" else loss.item() * len(y) / N
        if step_each:
            optimizer.step()
    if not step_each:
        optimizer.step()
    return total


def test_accumulated_step_alternative_passes_and_the_reference_is_refused():
    full(check("scale.accumulated_step", accumulate))
    assert check("scale.accumulated_step", scale.accumulated_step).status == "forbidden"


def test_accumulated_step_without_division_fails_naming_it():
    result = check("scale.accumulated_step", lambda *a: accumulate(*a, weight="1"))
    assert not result.passed and "size of the gradient" in result.message and "division" in text_of(result)


def test_accumulated_step_dividing_by_k_fails_on_unequal_sizes():
    result = check("scale.accumulated_step", lambda *a: accumulate(*a, weight="1/k"))
    assert not result.passed and result.failures[0].group == "unequal sizes"
    assert "n_i / n" in text_of(result) and "1 / k" in text_of(result)
    assert result.score > 0


def test_accumulated_step_with_zero_grad_inside_the_loop_fails_naming_it():
    result = check("scale.accumulated_step", lambda *a: accumulate(*a, zero_inside=True))
    assert not result.passed and "zero_grad" in result.message


def test_accumulated_step_stepping_per_micro_batch_fails_naming_it():
    result = check("scale.accumulated_step", lambda *a: accumulate(*a, step_each=True))
    assert not result.passed and "optimizer.step() calls" in result.message


# -- LossScaler -----------------------------------------------------------------------------------------------
class Scaler:
    """A learner's scaler, written apart from the reference (a Python float for s, one flag for
    the whole step), with one of GradScaler's rules broken by ``mistake``."""

    mistake = ""

    def __init__(self, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):
        self.s, self.grow, self.back, self.interval = init_scale, growth_factor, backoff_factor, growth_interval
        self.good, self.unscaled, self.found = 0, set(), False

    def scale(self, loss):
        return loss * torch.tensor(self.s, dtype=torch.float32)

    def unscale_(self, optimizer):
        inv = torch.tensor(1.0 / self.s, dtype=torch.float32)
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.found = self.found or not torch.isfinite(p.grad).all().item()
                    p.grad *= inv
        self.unscaled.add(id(optimizer))

    def step(self, optimizer):
        if id(optimizer) not in self.unscaled or self.mistake == "unscale twice":   # divides by s again
            self.unscale_(optimizer)
        if self.found and self.mistake != "no skip":
            return None
        return optimizer.step()

    def update(self):
        if self.found and self.mistake != "no backoff":
            self.s = float(torch.tensor(self.s * self.back, dtype=torch.float32))
            self.good = self.good if self.mistake == "tracker kept" else 0
        elif self.unscaled:
            self.good += 1
            if self.good == self.interval:
                self.s, self.good = float(torch.tensor(self.s * self.grow, dtype=torch.float32)), 0
        self.unscaled, self.found = set(), False

    def get_scale(self):
        return self.s


def with_mistake(name):
    return type(f"Scaler_{name.replace(' ', '_')}", (Scaler,), {"mistake": name})


def test_loss_scaler_alternative_passes():
    full(check("scale.LossScaler", Scaler))


@pytest.mark.parametrize("mistake, words", [
    ("no skip", "steps taken"),
    ("no backoff", "scale after each update"),
    ("tracker kept", "scale after each update"),
    ("unscale twice", "divided by the scale exactly once"),
])
def test_loss_scaler_differences_from_grad_scaler_fail_naming_them(mistake, words):
    result = check("scale.LossScaler", with_mistake(mistake))
    assert not result.passed and words in result.message, str(result)


def test_loss_scaler_built_on_grad_scaler_is_refused():
    class Wrapped:
        def __init__(self, **hp):
            self.inner = torch.amp.GradScaler("cpu", **hp)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    assert check("scale.LossScaler", Wrapped).status == "forbidden"


# -- shard_indices --------------------------------------------------------------------------------------------
def test_shard_indices_alternative_passes_and_the_sampler_is_refused():
    def shards(n, rank, world_size, shuffle=True, seed=0, epoch=0, drop_last=False):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist() if shuffle \
            else list(range(n))
        per_rank = n // world_size if drop_last else -(-n // world_size)
        while len(order) < per_rank * world_size:
            order += order[:per_rank * world_size - len(order)]
        return [order[rank + world_size * i] for i in range(per_rank)]

    full(check("scale.shard_indices", shards))

    def via_sampler(n, rank, world_size, shuffle=True, seed=0, epoch=0, drop_last=False):
        from torch.utils.data import DistributedSampler

        s = DistributedSampler(range(n), world_size, rank, shuffle, seed, drop_last)
        s.set_epoch(epoch)
        return list(s)

    assert check("scale.shard_indices", via_sampler).status == "forbidden"


def test_shard_indices_without_padding_fails_naming_it():
    def no_padding(n, rank, world_size, shuffle=True, seed=0, epoch=0, drop_last=False):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist() if shuffle \
            else list(range(n))
        return order[rank::world_size]

    result = check("scale.shard_indices", no_padding)
    assert not result.passed and result.failures[0].group == "padding" and "ceil(n / w)" in text_of(result)


# -- average_gradients ----------------------------------------------------------------------------------------
def summed(model):
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)


def averaged_parameters(model):
    with torch.no_grad():
        for p in model.parameters():
            dist.all_reduce(p)
            p /= dist.get_world_size()


def test_average_gradients_alternative_passes_in_a_two_process_group():
    def flat_all_reduce(model):                       # one all-reduce of every gradient, as DDP's buckets do
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        flat = torch.cat([g.flatten() for g in grads]) / dist.get_world_size()
        dist.all_reduce(flat)
        for g, part in zip(grads, flat.split([g.numel() for g in grads])):
            g.copy_(part.view_as(g))

    full(check("scale.average_gradients", flat_all_reduce))


def test_average_gradients_summing_without_dividing_fails_naming_it():
    result = check("scale.average_gradients", summed)
    assert not result.passed and "size of your gradient" in result.message and "2.0" in result.message
    assert "divide by dist.get_world_size()" in text_of(result)


def test_average_gradients_averaging_parameters_fails_naming_it():
    result = check("scale.average_gradients", averaged_parameters)
    assert not result.passed and "all-reduce the gradients, not the parameters" in result.message


def test_average_gradients_unfinished_is_not_implemented():
    def unfinished(model):
        raise NotImplementedError

    assert check("scale.average_gradients", unfinished).status == "not_implemented"


def test_average_gradients_with_ddp_is_refused():
    def with_ddp(model):                               # a forward through DDP, refused inside the rank
        torch.nn.parallel.DistributedDataParallel(model)(torch.zeros(1, 4, dtype=torch.float64))

    assert check("scale.average_gradients", with_ddp).status == "forbidden"


def test_average_gradients_that_hangs_a_rank_fails_without_hanging_the_grader():
    def only_rank_zero(model):
        if dist.get_rank() == 0:                     # rank 1 never joins: rank 0 waits for it
            for p in model.parameters():
                dist.all_reduce(p.grad)

    result = check("scale.average_gradients", only_rank_zero)
    assert not result.passed and result.status != "error"


# -- quantization ---------------------------------------------------------------------------------------------
def test_quantization_alternatives_pass():
    def qparams(x, quant_min=-128, quant_max=127):
        lo, hi = min(float(x.float().min()), 0.0), max(float(x.float().max()), 0.0)
        s = torch.tensor(hi, dtype=torch.float32) - torch.tensor(lo, dtype=torch.float32)
        s = max(float(s / (quant_max - quant_min)), torch.finfo(torch.float32).eps)
        z = quant_min - int(torch.round(torch.tensor(lo, dtype=torch.float32) / torch.tensor(s, dtype=torch.float32)))
        return s, min(max(z, quant_min), quant_max)

    def quantize(x, scale, zero_point, quant_min=-128, quant_max=127):
        q = torch.round(x.float() * torch.tensor(1 / scale, dtype=torch.float32)).to(torch.int32) + zero_point
        return torch.clamp(q, quant_min, quant_max).to(torch.int8)

    full(check("scale.choose_qparams", qparams))
    full(check("scale.quantize_per_tensor", quantize))
    full(check("scale.dequantize", lambda q, scale, zero_point: (q.to(torch.float32) - zero_point) * scale))


def test_quantize_with_floor_fails_naming_round_half_to_even():
    def floor(x, scale, zero_point, quant_min=-128, quant_max=127):
        return (torch.floor(x / scale) + zero_point).clamp(quant_min, quant_max).to(torch.int8)

    result = check("scale.quantize_per_tensor", floor)
    assert not result.passed and "half to even" in text_of(result)


def test_quantize_with_half_up_rounding_fails_on_half_way_values():
    def half_up(x, scale, zero_point, quant_min=-128, quant_max=127):
        return (torch.floor(x / scale + 0.5) + zero_point).clamp(quant_min, quant_max).to(torch.int8)

    result = check("scale.quantize_per_tensor", half_up)
    assert not result.passed and result.failures[0].group == "half-way values" and "half to even" in text_of(result)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_quantize_dividing_by_the_scale_fails_on_near_half_way_values(dtype):
    """round(x / scale): torch.quantize_per_tensor multiplies by the float32 inverse of the scale, and
    x * (1 / scale) and x / scale round to different sides of a half-way value (0.45 / 0.02)."""
    def divided(x, scale, zero_point, quant_min=-128, quant_max=127):
        return (torch.round(x.to(dtype) / scale) + zero_point).clamp(quant_min, quant_max).to(torch.int8)

    result = check("scale.quantize_per_tensor", divided)
    assert result.score < result.max_score and result.failures[0].group == "half-way values", str(result)
    assert "1 / scale" in text_of(result) and "float32" in text_of(result), str(result)


def test_quantize_without_clamp_fails_naming_it():
    def no_clamp(x, scale, zero_point, quant_min=-128, quant_max=127):
        inv_scale = torch.tensor(1 / scale, dtype=torch.float32)       # right but for the clamp
        return (torch.round(x.float() * inv_scale) + zero_point).to(torch.int32).to(torch.int8)

    result = check("scale.quantize_per_tensor", no_clamp)
    assert not result.passed and result.failures[0].group == "clamp" and "clamp" in text_of(result)


def test_quantize_with_torch_is_refused():
    def builtin(x, scale, zero_point, quant_min=-128, quant_max=127):
        return torch.quantize_per_tensor(x, scale, zero_point, torch.qint8).int_repr()

    assert check("scale.quantize_per_tensor", builtin).status == "forbidden"


def test_choose_qparams_without_zero_in_the_range_fails_naming_it():
    def no_zero(x, quant_min=-128, quant_max=127):
        x = x.float()
        s = max(float((x.max() - x.min()) / (quant_max - quant_min)), torch.finfo(torch.float32).eps)
        return s, int(max(quant_min, min(quant_max, quant_min - round(float(x.min()) / s))))

    result = check("scale.choose_qparams", no_zero)
    assert not result.passed and "includes 0" in text_of(result)


def qparams_without_eps(x, quant_min=-128, quant_max=127):
    """Issue 18: no eps floor. An all-zero range gives scale 0 (quantizing with it divides by zero)."""
    x = x.float()
    lo, hi = torch.clamp(x.min(), max=0.0), torch.clamp(x.max(), min=0.0)
    scale = (hi - lo) / float(quant_max - quant_min)
    z = quant_min - torch.round(lo / scale).nan_to_num(0).int()
    return float(scale), int(torch.clamp(z, quant_min, quant_max))


def qparams_floor_only_zero(x, quant_min=-128, quant_max=127):
    """A floor only for an exactly empty range: a range narrower than 255 * eps keeps its tiny scale."""
    scale, z = qparams_without_eps(x, quant_min, quant_max)
    return (torch.finfo(torch.float32).eps, quant_min) if scale == 0 else (scale, z)


def qparams_in_python_floats(x, quant_min=-128, quant_max=127):
    """Issue 18: float64 arithmetic. On [-1, 1], lo / scale is exactly -127.5 and rounds to even (z = 0);
    in float32, as the observer computes, it is -127.49999 (z = -1)."""
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    s = max((hi - lo) / (quant_max - quant_min), torch.finfo(torch.float32).eps)
    return s, int(min(max(quant_min - round(lo / s), quant_min), quant_max))


@pytest.mark.parametrize("wrong", [qparams_without_eps, qparams_floor_only_zero])
def test_choose_qparams_without_the_eps_floor_fails_naming_it(wrong):
    result = check("scale.choose_qparams", wrong)
    assert result.score < result.max_score and result.failures[0].group == "edge cases", str(result)
    report = str(result).lower()                     # the case's note, the problem and the hint, as the learner sees them
    assert "output[0]" in result.message and "the scale is floored at eps" in report and "scale 0" in report, report


def test_choose_qparams_in_float64_fails_on_a_half_way_zero_point_naming_float32():
    result = check("scale.choose_qparams", qparams_in_python_floats)
    assert result.score < result.max_score and result.failures[0].group == "half-way zero points", str(result)
    assert "output[1] should be -1, but it is 0" in result.message, str(result)
    assert "-127.5" in text_of(result) and "float32" in text_of(result), str(result)


def test_choose_qparams_with_the_int8_range_written_in_fails_on_another_range():
    def fixed_range(x, quant_min=-128, quant_max=127):
        return qparams_in_float32(x)                  # always -128..127, whatever range is asked for

    result = check("scale.choose_qparams", fixed_range)
    assert result.score < result.max_score and result.failures[0].group == "mixed signs", str(result)
    assert "quant_min" in result.failures[0].inputs and "quant_max" in text_of(result), str(result)


def qparams_in_float32(x, quant_min=-128, quant_max=127):
    x = x.detach().float()
    lo, hi = torch.clamp(x.min(), max=0.0), torch.clamp(x.max(), min=0.0)
    s = torch.clamp((hi - lo) / float(quant_max - quant_min), min=torch.finfo(torch.float32).eps)
    return float(s), int(torch.clamp(quant_min - torch.round(lo / s).int(), quant_min, quant_max))


def test_choose_qparams_reference_equals_the_observer_on_every_case():
    from torch.ao.quantization import MinMaxObserver

    from autograder.catalog import EXERCISES
    from autograder.exercise import Draw

    for group in EXERCISES["scale.choose_qparams"].groups:
        for case in group.make(Draw("observer")):
            low, high = case.kwargs.get("quant_min", -128), case.kwargs.get("quant_max", 127)
            observer = MinMaxObserver(dtype=torch.quint8 if low >= 0 else torch.qint8, quant_min=low, quant_max=high)
            observer(case.args[0].float())
            s, z = observer.calculate_qparams()
            assert scale.choose_qparams(*case.args, **case.kwargs) == (float(s), int(z)), case.note


# -- checkpoints ----------------------------------------------------------------------------------------------
def save_without_rng(path, model, optimizer, scheduler=None, scaler=None, **extra):
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler else None,
                "scaler": scaler.state_dict() if scaler else None,
                "rng": {"torch": torch.get_rng_state(), "cuda": None, "python": None, "numpy": None},
                "extra": extra}, path)


def save_all(path, model, optimizer, scheduler=None, scaler=None, **extra):
    key = np.random.get_state()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler else None,
                "scaler": scaler.state_dict() if scaler else None,
                "rng": {"torch": torch.get_rng_state(), "cuda": None, "python": random.getstate(),
                        "numpy": [key[0], key[1].tolist(), key[2], key[3], key[4]]},
                "extra": extra}, path)


def load_all(path, model, optimizer=None, scheduler=None, scaler=None, map_location="cpu"):
    state = torch.load(path, weights_only=True, map_location=map_location)
    model.load_state_dict(state["model"])
    for obj, key in ((optimizer, "optimizer"), (scheduler, "scheduler"), (scaler, "scaler")):
        if obj is not None and state[key] is not None:
            obj.load_state_dict(state[key])
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    kind, key, *rest = state["rng"]["numpy"]
    np.random.set_state((kind, np.array(key, dtype=np.uint32), *rest))
    return state["extra"]


def test_checkpoint_alternatives_pass():
    full(check("scale.save_checkpoint", save_all))
    full(check("scale.load_checkpoint", load_all))


def test_save_checkpoint_without_the_rng_fails_naming_the_format():
    def no_rng(path, model, optimizer, scheduler=None, scaler=None, **extra):
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "extra": extra}, path)

    result = check("scale.save_checkpoint", no_rng)
    assert not result.passed and "format" in result.message and "rng" in text_of(result)


def test_load_checkpoint_that_forgets_the_generators_fails_on_the_losses():
    def load_no_rng(path, model, optimizer=None, scheduler=None, scaler=None, map_location="cpu"):
        state = torch.load(path, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        return state["extra"]

    result = check("scale.load_checkpoint", load_no_rng)
    assert not result.passed and "losses" in result.message and "random generator" in text_of(result)
