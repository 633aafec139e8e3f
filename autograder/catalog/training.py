"""Lesson 04, training loops: the exercises and how they are checked.

Optimizers are classes and loops take a model, so their probes build those objects from plain
data (initial parameters, a list of gradients, a seeded dataset) and return plain data: the
parameter trajectory, or what an instrumented model, loss and optimizer saw during the loop
(train or eval mode, grad mode, whether each step's gradients were fresh).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..exercise import Case, Exercise, Group, Lesson
from ..i18n import N_
from ..probes import with_grad
from ..sandbox import learner_code

# -- cross_entropy -------------------------------------------------------------------------------


def ce_case(draw, n: int, c: int, reduction: str, scale: float = 3.0, dtype=None) -> Case:
    logits = draw.randn(n, c, dtype=dtype or draw.dtype(), scale=scale)
    return Case("", (logits, draw.randint(0, c, n)), {"reduction": reduction}, size=n * c)


def ce_values(draw):
    for reduction in ("mean", "sum", "none", "mean"):
        yield ce_case(draw, draw.rng.randint(1, 8), draw.rng.randint(2, 6), reduction)


def ce_large(draw):
    for dtype, reduction in ((torch.float32, "mean"), (torch.float64, "none")):
        case = ce_case(draw, 4, 5, reduction, scale=1e4, dtype=dtype)
        case.note = "logits of magnitude 1e4"
        yield case
    yield Case("", (torch.tensor([[1000.0, 0.0, -1000.0]]), torch.tensor([2])), {"reduction": "sum"}, size=3,
               note="a confident, wrong prediction: the loss is 2000, not inf")


def ce_edges(draw):
    yield Case("", (draw.randn(3, 1), torch.zeros(3, dtype=torch.long)), {"reduction": "mean"}, size=3,
               note="a single class: the loss is 0")
    yield Case("", (draw.randn(1, 4), torch.tensor([3])), {"reduction": "none"}, size=4, note="one sample, last class")


def ce_grads(draw):
    for reduction in ("mean", "sum"):
        case = ce_case(draw, 5, 4, reduction, dtype=torch.float64)
        yield case


CE_FORBIDDEN = tuple(
    f"{where}.log_softmax" for where in ("torch", "torch.Tensor", "torch.nn.functional", "torch.special")
) + ("torch.nn.functional.cross_entropy", "torch.nn.functional.nll_loss", "torch.nn.CrossEntropyLoss",
     "torch.nn.NLLLoss", "torch.nn.LogSoftmax", "aten::log_softmax", "aten::_log_softmax", "aten::cross_entropy_loss",
     "aten::nll_loss", "aten::nll_loss_nd", "aten::nll_loss2d")

# -- optimizers ----------------------------------------------------------------------------------


def optimizer_probe(fn, params: list, grads: list, hp: dict) -> dict:
    """Run ``len(grads)`` steps of the optimizer built by fn(params, **hp) on the loss
    L_t = sum_k <g_{t,k}, p_k>, whose gradient is exactly g_t; record the parameters after each step."""
    ps = [nn.Parameter(p.clone()) for p in params]
    zeroed, trajectory = [], [[] for _ in ps]
    with learner_code():
        optimizer = fn(ps, **hp)
        for step_grads in grads:
            optimizer.zero_grad()
            zeroed.append(all(p.grad is None or not p.grad.any() for p in ps))
            loss = sum((p * g).sum() for p, g in zip(ps, step_grads))
            loss.backward()
            optimizer.step()
            for k, p in enumerate(ps):
                trajectory[k].append(p.detach().clone())
    return {N_("gradients are None or 0 after zero_grad()"): all(zeroed),
            N_("parameters after each step"): [torch.stack(t) for t in trajectory]}


def optimizer_case(draw, hp: dict, steps: int = 5, dtype: torch.dtype | None = None) -> Case:
    dtype = dtype or draw.dtype()
    shapes = [draw.shape(draw.rng.randint(1, 2), 1, 4) for _ in range(draw.rng.randint(1, 3))]
    params = [draw.randn(*s, dtype=dtype) for s in shapes]
    grads = [[draw.randn(*s, dtype=dtype) for s in shapes] for _ in range(steps)]
    settings = ", ".join(f"{k}={v}" for k, v in hp.items()) or "default settings"
    note = f"{settings}; {len(params)} parameter(s), {steps} steps"
    return Case("", (), {"params": params, "grads": grads, "hp": hp}, size=steps * sum(p.numel() for p in params),
                note=note)


def sgd_plain(draw):
    for lr, dtype in ((0.1, torch.float32), (0.5, torch.float64)):       # both dtypes, whatever the draws
        yield optimizer_case(draw, {"lr": lr}, steps=3, dtype=dtype)


def sgd_momentum(draw):
    for mu in (0.9, 0.5):
        yield optimizer_case(draw, {"lr": 0.1, "momentum": mu})


def sgd_decay(draw):
    yield optimizer_case(draw, {"lr": 0.1, "weight_decay": 0.1}, steps=3)


def sgd_momentum_decay(draw):
    yield optimizer_case(draw, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1})
    yield optimizer_case(draw, {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.5})


def sgd_nesterov(draw):
    yield optimizer_case(draw, {"lr": 0.1, "momentum": 0.9, "nesterov": True})
    yield optimizer_case(draw, {"lr": 0.1, "momentum": 0.8, "weight_decay": 0.05, "nesterov": True})


def adam_defaults(draw):
    yield optimizer_case(draw, {}, steps=3, dtype=torch.float32)        # both dtypes, whatever the draws
    yield optimizer_case(draw, {"lr": 0.1}, dtype=torch.float64)


def adam_betas(draw):
    yield optimizer_case(draw, {"lr": 0.05, "betas": (0.8, 0.99)})
    yield optimizer_case(draw, {"lr": 0.05, "betas": (0.5, 0.9), "eps": 1e-3})


def adam_decay(draw):
    yield optimizer_case(draw, {"lr": 0.05, "weight_decay": 0.1})


def adam_long(draw):
    yield optimizer_case(draw, {"lr": 0.01}, steps=20)


SGD_FORBIDDEN = ("torch.optim.SGD", "torch.optim.sgd.sgd", "torch.optim.sgd._single_tensor_sgd",
                 "torch.optim.sgd._multi_tensor_sgd", "torch.optim._functional.sgd")
ADAM_FORBIDDEN = ("torch.optim.Adam", "torch.optim.AdamW", "torch.optim.adam.adam", "torch.optim.adam._single_tensor_adam",
                  "torch.optim.adam._multi_tensor_adam", "torch.optim._functional.adam",
                  "torch.optim.adamw.adamw", "torch.optim._functional.adamw")

# -- train_one_epoch and evaluate ------------------------------------------------------------------


class Recorder(nn.Module):
    """A linear classifier that records, for each forward, train mode, grad mode and its input."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.net = nn.Linear(weight.shape[1], weight.shape[0], device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            self.net.weight.copy_(weight)
            self.net.bias.copy_(bias)
        self.modes: list[bool] = []
        self.grad_modes: list[bool] = []
        self.last_input: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        self.grad_modes.append(torch.is_grad_enabled())
        self.last_input = x
        return self.net(x)


class RecordingLoss(nn.Module):
    """Cross-entropy that remembers the last targets it saw."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        self.last_targets = targets
        return F.cross_entropy(logits, targets)


class WatchedSGD(torch.optim.SGD):
    """SGD that checks, at every step, that each gradient is the current batch's alone (zeroed before)."""

    def __init__(self, model: Recorder, loss_fn: RecordingLoss, lr: float):
        super().__init__(model.parameters(), lr=lr)
        self.model, self.loss_fn, self.fresh = model, loss_fn, []

    def step(self, closure=None):
        params = list(self.model.net.parameters())
        with torch.enable_grad():
            loss = F.cross_entropy(self.model.net(self.model.last_input), self.loss_fn.last_targets)
            expected = torch.autograd.grad(loss, params)
        self.fresh.append(all(p.grad is not None and torch.allclose(p.grad, e, rtol=1e-4, atol=1e-6)
                              for p, e in zip(params, expected)))
        return super().step(closure)

    # torch.optim.Optimizer.__init__ wraps a class's step() in a profiling hook the first time the
    # class is instantiated, which would change the grader's own code while a learner's loop runs
    # (and the worker would take it for tampering). Marked as already hooked, it is left alone.
    step.hooked = True


def loader_of(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> DataLoader:
    """A loader on the CPU, in order, as a learner would get one; the loop moves batches to the device."""
    return DataLoader(TensorDataset(x.cpu(), y.cpu()), batch_size=batch_size)


def train_probe(fn, x, y, weight, bias, batch_size: int, lr: float = 0.5, start_in_eval: bool = False) -> dict:
    model = Recorder(weight, bias)
    if start_in_eval:
        model.eval()                          # as evaluate() leaves it
    loss_fn = RecordingLoss()
    optimizer = WatchedSGD(model, loss_fn, lr)
    with learner_code():
        mean_loss = fn(model, loader_of(x, y, batch_size), optimizer, loss_fn, x.device)
    return {
        N_("model in train mode (model.train()) in every forward"): bool(model.modes) and all(model.modes),
        N_("gradients of the current batch only at every step (zero_grad)"): all(optimizer.fresh),
        N_("optimizer steps"): len(optimizer.fresh),
        N_("mean loss per sample"): mean_loss,
        N_("parameters after the epoch"): [p.detach() for p in model.net.parameters()],
    }


def evaluate_probe(fn, x, y, weight, bias, batch_size: int) -> dict:
    model = Recorder(weight, bias)            # in train mode, as after training
    with learner_code():
        accuracy = fn(model, loader_of(x, y, batch_size), x.device)
    return {
        N_("model in eval mode (model.eval()) in every forward"): bool(model.modes) and not any(model.modes),
        N_("no autograd graph built in any forward (torch.no_grad)"): bool(model.grad_modes) and not any(model.grad_modes),
        "accuracy": accuracy,
    }


def classification_data(draw, n: int, d: int = 5, c: int = 3) -> dict:
    """Separable-ish data and a model that gets some of it right: accuracies away from 0 and 1."""
    true_w = draw.randn(c, d, dtype=torch.float32)
    x = draw.randn(n, d, dtype=torch.float32)
    y = (x @ true_w.T + draw.randn(n, c, dtype=torch.float32)).argmax(dim=1)
    weight = true_w + draw.randn(c, d, dtype=torch.float32)
    return {"x": x, "y": y, "weight": weight, "bias": draw.randn(c, dtype=torch.float32, scale=0.1)}


def epoch_even(draw):
    yield Case("", (), classification_data(draw, 48) | {"batch_size": 16}, size=48, note="48 samples, batches of 16")


def epoch_uneven(draw):
    yield Case("", (), classification_data(draw, 40) | {"batch_size": 16}, size=40,
               note="40 samples, batches of 16, 16 and 8")


def epoch_after_eval(draw):
    yield Case("", (), classification_data(draw, 32) | {"batch_size": 8, "start_in_eval": True}, size=32,
               note="the model arrives in eval mode, as evaluate() leaves it")


def eval_even(draw):
    yield Case("", (), classification_data(draw, 60) | {"batch_size": 20}, size=60, note="60 samples, batches of 20")


def eval_uneven(draw):
    yield Case("", (), classification_data(draw, 50) | {"batch_size": 32}, size=50, note="50 samples, batches of 32 and 18")


LESSON = Lesson(
    key="04_training",
    title="Training loops",
    builds="cross-entropy from logits, SGD and Adam, one training epoch, evaluation",
    exercises=(
        Exercise(
            id="losses.cross_entropy",
            title="Cross-entropy from logits",
            signature='(logits[N,C], targets[N], reduction="mean") -> Tensor',
            builds="a stable cross-entropy with mean, sum and none reductions",
            points=4,
            forbidden=CE_FORBIDDEN,
            groups=(
                Group("values", 3, ce_values,
                      hint="loss_n = logsumexp(z_n) - z_n[t_n]; pick z_n[t_n] with logits.gather(1, targets[:, None]) "
                           "or logits[torch.arange(N), targets]; then mean, sum or no reduction."),
                Group("large logits", 2, ce_large,
                      hint="exp overflows to inf for logits above ~88 (float32), and log(inf / inf) is NaN. Subtract "
                           "each row's maximum m first: logsumexp(z) = m + log(sum(exp(z - m))), which never overflows."),
                Group("edge cases", 1, ce_edges),
                Group("gradients", 1, ce_grads, probe=with_grad,
                      hint="Build the loss from differentiable torch operations only (no .item(), numpy or in-place writes)."),
            ),
            hints={"shape": 'reduction="none" returns one loss per sample, shape [N]; "mean" and "sum" return a 0-d tensor.'},
        ),
        Exercise(
            id="optim.SGD",
            title="SGD with momentum, Nesterov and weight decay",
            signature="SGD(params, lr, momentum=0.0, weight_decay=0.0, nesterov=False): step(), zero_grad()",
            builds="the update rule of torch.optim.SGD",
            points=4,
            probe=optimizer_probe,
            forbidden=SGD_FORBIDDEN,
            groups=(
                Group("plain", 1, sgd_plain,
                      hint="theta <- theta - lr * grad, in place and without recording a graph "
                           "(with torch.no_grad(): p -= lr * p.grad)."),
                Group("momentum", 2, sgd_momentum,
                      hint="Keep one buffer per parameter across steps: b = grad on the first step, then "
                           "b = momentum * b + grad; theta <- theta - lr * b."),
                Group("weight decay", 1, sgd_decay, hint="Weight decay adds weight_decay * theta to the gradient."),
                Group("momentum and weight decay", 2, sgd_momentum_decay,
                      hint="Add weight decay to the gradient before the momentum buffer: g = grad + weight_decay * "
                           "theta, then b = momentum * b + g. Adding weight decay after momentum "
                           "(theta -= lr * (b + weight_decay * theta)) is a different optimizer from torch.optim.SGD."),
                Group("nesterov", 1, sgd_nesterov,
                      hint="With nesterov=True step with g + momentum * b instead of b (b updated first)."),
            ),
            hints={"raised": "SGD(params, lr=..., momentum=..., weight_decay=..., nesterov=...) must accept "
                                           "these keywords; step() and zero_grad() take no arguments."},
        ),
        Exercise(
            id="optim.Adam",
            title="Adam with bias correction",
            signature="Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0): step(), zero_grad()",
            builds="the update rule of torch.optim.Adam",
            points=4,
            probe=optimizer_probe,
            forbidden=ADAM_FORBIDDEN,
            groups=(
                Group("defaults", 2, adam_defaults,
                      hint="m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2, then the bias correction "
                           "m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t) with t = 1 on the first step (m and "
                           "v start at 0, so without it the first steps are far off); "
                           "theta <- theta - lr m_hat / (sqrt(v_hat) + eps)."),
                Group("betas and eps", 1, adam_betas,
                      hint="eps goes outside the square root: sqrt(v_hat) + eps; use the betas you were given."),
                Group("weight decay", 1, adam_decay,
                      hint="torch.optim.Adam adds weight_decay * theta to the gradient before the moments (L2, not AdamW)."),
                Group("many steps", 1, adam_long,
                      hint="Count steps per parameter (t = 1, 2, ...) and keep m and v between steps."),
            ),
            hints={"raised": "Adam(params, lr=..., betas=(b1, b2), eps=..., weight_decay=...) must accept "
                                           "these keywords; step() and zero_grad() take no arguments."},
        ),
        Exercise(
            id="train.train_one_epoch",
            title="One epoch of training",
            signature="(model, loader, optimizer, loss_fn, device) -> float",
            builds="the training loop: train mode, device transfer, zero_grad, backward, step, mean loss",
            points=4,
            probe=train_probe,
            groups=(
                Group("one epoch", 2, epoch_even,
                      hint="For each batch: move x and y to device, optimizer.zero_grad(), loss = loss_fn(model(x), y), "
                           "loss.backward(), optimizer.step(). Without zero_grad, backward() adds this batch's "
                           "gradients to the previous ones."),
                Group("uneven last batch", 1, epoch_uneven,
                      hint="Return the mean loss per sample: sum of loss.item() * len(y) over the batches, divided by "
                           "the number of samples (the last batch is smaller, so the mean of batch means is wrong)."),
                Group("after evaluation", 1, epoch_after_eval,
                      hint="Call model.train() at the start: evaluate() left the model in eval mode, where dropout "
                           "and batch norm behave differently."),
            ),
            hints={"type": "Return the mean loss as a Python float (use loss.item() or float(...))."},
        ),
        Exercise(
            id="train.evaluate",
            title="Evaluation",
            signature="(model, loader, device) -> float",
            builds="accuracy in eval mode, without building a graph",
            points=3,
            probe=evaluate_probe,
            groups=(
                Group("accuracy", 2, eval_even,
                      hint="Call model.eval() and run the loop under torch.no_grad(): evaluation must neither use "
                           "train-mode behaviour (dropout, batch-norm statistics) nor build an autograd graph. "
                           "Accuracy = (model(x).argmax(1) == y).sum() / number of samples, in [0, 1]."),
                Group("uneven last batch", 1, eval_uneven,
                      hint="Count correct predictions and samples over all batches and divide once at the end "
                           "(the mean of per-batch accuracies is wrong when the last batch is smaller)."),
            ),
            hints={"type": "Return the accuracy as a Python float in [0, 1]."},
        ),
    ),
)
