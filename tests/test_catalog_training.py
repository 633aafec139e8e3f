"""The lesson-04 checks: correct alternatives score full marks; the classic mistakes fail, named."""

import torch

from autograder import check


def failure_text(result) -> str:
    f = result.failures[0] if result.failures else None
    return (result.message + " " + (f.hint if f else "")).lower()


# -- cross_entropy -----------------------------------------------------------------------------------
def cross_entropy_loop(logits, targets, reduction="mean"):
    losses = []
    for row, t in zip(logits, targets):
        m = row.max()
        losses.append(m + (row - m).exp().sum().log() - row[t])
    loss = torch.stack(losses) if losses else logits.new_zeros(0)
    return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]


def cross_entropy_naive(logits, targets, reduction="mean"):
    p = logits.exp() / logits.exp().sum(1, keepdim=True)
    loss = -p[torch.arange(len(targets)), targets].log()
    return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]


def test_cross_entropy_loop_alternative_passes():
    result = check("losses.cross_entropy", cross_entropy_loop)
    assert result.passed and result.score == result.max_score, str(result)


def test_cross_entropy_overflowing_on_huge_logits_fails_naming_it():
    result = check("losses.cross_entropy", cross_entropy_naive)
    assert not result.passed and result.failures[0].group == "large logits"
    text = failure_text(result)
    assert "overflow" in text and "nan" in text


def test_cross_entropy_with_log_softmax_is_refused():
    result = check("losses.cross_entropy",
                   lambda z, t, reduction="mean": torch.nn.functional.nll_loss(z.log_softmax(1), t, reduction=reduction))
    assert result.status == "forbidden"


# -- optimizers ------------------------------------------------------------------------------------
class PlainSGD:
    """Not a torch.optim.Optimizer: a list of parameters and a dict of buffers."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False, decay_after_momentum=False):
        self.params, self.lr, self.mu, self.wd, self.nesterov = list(params), lr, momentum, weight_decay, nesterov
        self.decay_after = decay_after_momentum
        self.buffers = {}

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        with torch.no_grad():
            for i, p in enumerate(self.params):
                if p.grad is None:
                    continue
                d = p.grad.clone()
                if self.wd and not self.decay_after:
                    d += self.wd * p
                if self.mu:
                    b = self.buffers[i] = d.clone() if i not in self.buffers else self.mu * self.buffers[i] + d
                    d = d + self.mu * b if self.nesterov else b
                if self.wd and self.decay_after:
                    d = d + self.wd * p
                p -= self.lr * d


class SubclassSGD(torch.optim.Optimizer):
    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "nesterov": nesterov})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad + group["weight_decay"] * p
                if group["momentum"]:
                    state = self.state[p]
                    state["b"] = g.clone() if "b" not in state else group["momentum"] * state["b"] + g
                    g = g + group["momentum"] * state["b"] if group["nesterov"] else state["b"]
                p.add_(g, alpha=-group["lr"])


def test_sgd_alternatives_pass():
    for cls in (PlainSGD, SubclassSGD):
        result = check("optim.SGD", cls)
        assert result.passed and result.score == result.max_score, (cls, str(result))


def test_sgd_with_weight_decay_after_momentum_fails_naming_it():
    class DecayAfter(PlainSGD):
        def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
            super().__init__(params, lr, momentum, weight_decay, nesterov, decay_after_momentum=True)

    result = check("optim.SGD", DecayAfter)
    assert not result.passed and result.failures[0].group == "momentum and weight decay"
    text = failure_text(result)
    assert "weight decay" in text and "momentum" in text and "before" in text


def test_sgd_that_never_zeroes_grads_fails_naming_it():
    class NoZero(PlainSGD):
        def zero_grad(self):
            pass

    result = check("optim.SGD", NoZero)
    assert not result.passed and "zero_grad" in result.message


def test_sgd_subclassing_torch_sgd_is_refused():
    class Sneaky(torch.optim.SGD):
        pass

    assert check("optim.SGD", Sneaky).status == "forbidden"


class PlainAdam:
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, bias_correction=True):
        self.params, self.lr, self.betas, self.eps, self.wd = list(params), lr, betas, eps, weight_decay
        self.bias_correction, self.t = bias_correction, 0
        self.m = [torch.zeros_like(p, dtype=torch.float64) for p in self.params]   # moments kept in float64
        self.v = [torch.zeros_like(p, dtype=torch.float64) for p in self.params]

    def zero_grad(self):
        for p in self.params:
            if p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self):
        self.t += 1
        b1, b2 = self.betas
        for p, m, v in zip(self.params, self.m, self.v):
            g = (p.grad + self.wd * p).double()
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            m_hat, v_hat = (m / (1 - b1**self.t), v / (1 - b2**self.t)) if self.bias_correction else (m, v)
            p -= (self.lr * m_hat / (v_hat.sqrt() + self.eps)).to(p.dtype)


def test_adam_alternative_passes():
    result = check("optim.Adam", PlainAdam)
    assert result.passed and result.score == result.max_score, str(result)


def test_adam_through_lesson_07s_adamw_is_refused():
    """minidl.optim.AdamW inherits the reference's step: Adam rebuilt from it is still the reference."""
    from minidl.optim import Adam, AdamW

    class Sneaky(AdamW):
        decay = staticmethod(Adam.decay)   # L2 inside the moments again: Adam

        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
            super().__init__(params, lr, betas, eps, weight_decay)

    assert check("optim.Adam", Sneaky).status == "forbidden"


def test_adam_without_bias_correction_fails_naming_it():
    class NoCorrection(PlainAdam):
        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
            super().__init__(params, lr, betas, eps, weight_decay, bias_correction=False)

    result = check("optim.Adam", NoCorrection)
    assert not result.passed and "bias correction" in failure_text(result)


# -- train_one_epoch and evaluate ------------------------------------------------------------------
def train_one_epoch_alt(model, loader, optimizer, loss_fn, device, zero=True, train_mode=True):
    if train_mode:
        model.train(True)
    losses, sizes = [], []
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        loss = loss_fn(model(x), y)
        if zero:
            model.zero_grad(set_to_none=False)     # zeroing through the model is just as good
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        sizes.append(len(x))
    return sum(l * n for l, n in zip(losses, sizes)) / sum(sizes)


def test_train_one_epoch_alternative_passes():
    result = check("train.train_one_epoch", train_one_epoch_alt)
    assert result.passed and result.score == result.max_score, str(result)


def test_train_one_epoch_without_zero_grad_fails_naming_it():
    result = check("train.train_one_epoch", lambda *a: train_one_epoch_alt(*a, zero=False))
    assert not result.passed and "zero_grad" in failure_text(result)


def test_train_one_epoch_without_model_train_fails_naming_it():
    result = check("train.train_one_epoch", lambda *a: train_one_epoch_alt(*a, train_mode=False))
    assert not result.passed and result.failures[0].group == "after evaluation"
    assert "train mode" in failure_text(result) and "model.train()" in failure_text(result)
    assert 0 < result.score < result.max_score


def test_train_one_epoch_with_unweighted_mean_fails():
    def unweighted(model, loader, optimizer, loss_fn, device):
        model.train()
        losses = []
        for x, y in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(x.to(device)), y.to(device))
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return sum(losses) / len(losses)

    result = check("train.train_one_epoch", unweighted)
    assert not result.passed and result.failures[0].group == "uneven last batch"
    assert "per sample" in failure_text(result)


def evaluate_alt(model, loader, device, eval_mode=True, no_grad=True):
    if eval_mode:
        model.eval()
    right = total = 0
    with torch.inference_mode(no_grad):
        for x, y in loader:
            right += int((model(x.to(device)).argmax(-1) == y.to(device)).sum())
            total += y.numel()
    return right / total


def test_evaluate_alternative_passes():
    result = check("train.evaluate", evaluate_alt)
    assert result.passed and result.score == result.max_score, str(result)


def test_evaluate_that_builds_a_graph_fails_naming_it():
    result = check("train.evaluate", lambda m, l, d: evaluate_alt(m, l, d, no_grad=False))
    assert not result.passed and "no_grad" in failure_text(result) and "graph" in failure_text(result)


def test_evaluate_left_in_train_mode_fails_naming_it():
    result = check("train.evaluate", lambda m, l, d: evaluate_alt(m, l, d, eval_mode=False))
    assert not result.passed and "eval mode" in failure_text(result) and "train-mode" in failure_text(result)


def test_the_watched_optimizer_keeps_its_own_step():
    """torch.optim wraps step() at a class's first instantiation; the grader's class must not change
    while learner code runs, or the grading worker reports tampering."""
    from autograder.catalog.training import Recorder, RecordingLoss, WatchedSGD

    step = WatchedSGD.__dict__["step"]
    WatchedSGD(Recorder(torch.zeros(2, 3), torch.zeros(2)), RecordingLoss(), lr=0.1)
    assert WatchedSGD.__dict__["step"] is step and not hasattr(step, "__wrapped__")


def test_float64_inputs_are_checked_and_computing_in_float64_passes():
    from autograder.catalog import EXERCISES
    from autograder.oracle import PUBLIC_SEED, make_cases

    logits = [c.args[0] for c in make_cases(EXERCISES["losses.cross_entropy"], PUBLIC_SEED, ["cpu"])]
    assert {z.dtype for z in logits} == {torch.float32, torch.float64}
    for eid in ("optim.SGD", "optim.Adam"):
        params = [c.kwargs["params"][0] for c in make_cases(EXERCISES[eid], PUBLIC_SEED, ["cpu"])]
        assert {p.dtype for p in params} == {torch.float32, torch.float64}, eid

    def in_float64(logits, targets, reduction="mean"):
        z = logits.double()
        m = z.max(dim=1, keepdim=True).values
        loss = m.squeeze(1) + (z - m).exp().sum(dim=1).log() - z.gather(1, targets[:, None]).squeeze(1)
        return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction].to(logits.dtype)

    result = check("losses.cross_entropy", in_float64)
    assert result.passed and result.score == result.max_score, str(result)
