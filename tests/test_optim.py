"""minidl.optim against torch.optim: parameter trajectories over several steps, learning-rate schedules."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl.optim import SGD, Adam, AdamW, WarmupCosine, warmup_cosine


def trajectories(make, params, grads):
    ps = [torch.nn.Parameter(p.clone()) for p in params]
    opt = make(ps)
    out = []
    for step in grads:
        opt.zero_grad()
        sum((p * g).sum() + 0.1 * (p**2).sum() for p, g in zip(ps, step)).backward()
        opt.step()
        out.append([p.detach().clone() for p in ps])
    return out


def same_trajectories(ours, theirs):
    for a, b in zip(ours, theirs):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y)


def problem(dtype, steps=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(3, 4), (5,), (2, 1, 3)]
    params = [torch.randn(s, generator=g, dtype=dtype) for s in shapes]
    grads = [[torch.randn(s, generator=g, dtype=dtype) for s in shapes] for _ in range(steps)]
    return params, grads


SGD_SETTINGS = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.05, weight_decay=0.1),
    dict(lr=0.05, momentum=0.9, weight_decay=0.1),
    dict(lr=0.1, momentum=0.9, nesterov=True),
    dict(lr=0.02, momentum=0.5, weight_decay=0.3, nesterov=True),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("hp", SGD_SETTINGS, ids=str)
def test_sgd_matches_torch(hp, dtype):
    params, grads = problem(dtype)
    same_trajectories(trajectories(lambda ps: SGD(ps, **hp), params, grads),
                      trajectories(lambda ps: torch.optim.SGD(ps, **hp), params, grads))


ADAM_SETTINGS = [dict(), dict(lr=0.1), dict(lr=0.05, betas=(0.8, 0.99), eps=1e-3), dict(lr=0.01, weight_decay=0.2)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("hp", ADAM_SETTINGS, ids=str)
def test_adam_matches_torch(hp, dtype):
    params, grads = problem(dtype, steps=15)
    same_trajectories(trajectories(lambda ps: Adam(ps, **hp), params, grads),
                      trajectories(lambda ps: torch.optim.Adam(ps, **hp), params, grads))


ADAMW_SETTINGS = [dict(), dict(lr=0.1), dict(lr=0.05, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.3),
                  dict(lr=0.01, weight_decay=0.0)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("hp", ADAMW_SETTINGS, ids=str)
def test_adamw_matches_torch(hp, dtype):
    params, grads = problem(dtype, steps=15)
    same_trajectories(trajectories(lambda ps: AdamW(ps, **hp), params, grads),
                      trajectories(lambda ps: torch.optim.AdamW(ps, **hp), params, grads))


def test_adamw_decay_is_decoupled_from_adams_l2():
    params, grads = problem(torch.float64, steps=5)
    ours = trajectories(lambda ps: AdamW(ps, lr=0.1, weight_decay=0.5), params, grads)
    adam_l2 = trajectories(lambda ps: Adam(ps, lr=0.1, weight_decay=0.5), params, grads)
    assert not torch.allclose(ours[-1][0], adam_l2[-1][0])


def lr_curve(make_scheduler, steps, base_lrs=(0.1, 0.03)):
    opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in base_lrs])
    scheduler, lrs = make_scheduler(opt), []
    for _ in range(steps):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        scheduler.step()
    return torch.tensor(lrs, dtype=torch.float64)


@pytest.mark.parametrize("warmup,total,start,floor", [(5, 30, 1 / 3, 0.0), (10, 50, 0.01, 0.1), (1, 8, 0.5, 0.0)])
def test_warmup_cosine_equals_linear_then_cosine_annealing(warmup, total, start, floor):
    from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

    def builtin(opt):
        return SequentialLR(opt, [LinearLR(opt, start_factor=start, total_iters=warmup),
                                  CosineAnnealingLR(opt, T_max=total - warmup, eta_min=floor * 0.1)],
                            milestones=[warmup])

    ours = lr_curve(lambda opt: WarmupCosine(opt, warmup, total, start, floor), total + 5, base_lrs=(0.1,))
    torch.testing.assert_close(ours, lr_curve(builtin, total + 5, base_lrs=(0.1,)))
    assert warmup_cosine(0, warmup, total, start, floor) == pytest.approx(start)
    assert warmup_cosine(warmup, warmup, total, start, floor) == pytest.approx(1.0)
    assert warmup_cosine(total, warmup, total, start, floor) == pytest.approx(floor)


def test_warmup_cosine_scales_each_groups_lr_and_checks_its_steps():
    curve = lr_curve(lambda opt: WarmupCosine(opt, 3, 10), 10)
    torch.testing.assert_close(curve[:, 1], curve[:, 0] * 0.3)
    with pytest.raises(ValueError, match="warmup_steps < total_steps"):
        WarmupCosine(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), 10, 10)


@settings(max_examples=15, deadline=None)
@given(st.floats(1e-3, 0.5), st.floats(0.0, 0.99), st.floats(0.0, 0.5), st.booleans(), st.integers(0, 1000))
def test_sgd_random_settings(lr, momentum, weight_decay, nesterov, seed):
    nesterov = nesterov and momentum > 0
    hp = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    params, grads = problem(torch.float64, steps=5, seed=seed)
    same_trajectories(trajectories(lambda ps: SGD(ps, **hp), params, grads),
                      trajectories(lambda ps: torch.optim.SGD(ps, **hp), params, grads))


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError):
        SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, nesterov=True)


def test_works_with_lr_schedulers_and_state_dict():
    p = torch.nn.Parameter(torch.ones(3))
    opt = Adam([p], lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    p.grad = torch.ones(3)
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    state = opt.state_dict()
    fresh = Adam([torch.nn.Parameter(torch.ones(3))], lr=0.1)
    fresh.load_state_dict(state)
    assert fresh.state[fresh.param_groups[0]["params"][0]]["t"] == 1


def test_skips_parameters_without_grad():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = SGD([a, b], lr=0.1, momentum=0.9)
    a.grad = torch.ones(2)
    opt.step()
    assert torch.equal(b, torch.ones(2)) and not torch.equal(a, torch.ones(2))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_optimizers_on_cuda():
    params, grads = problem(torch.float32)
    params = [p.cuda() for p in params]
    grads = [[g.cuda() for g in step] for step in grads]
    same_trajectories(trajectories(lambda ps: Adam(ps, lr=0.1), params, grads),
                      trajectories(lambda ps: torch.optim.Adam(ps, lr=0.1), params, grads))
