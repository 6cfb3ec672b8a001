"""Training in two processes (DistributedDataParallel over gloo, on the CPU) makes the model one
process makes, and a killed two-process run resumes to the uninterrupted run's model.

Tolerances. Two processes sum the same gradients in another order (each process's half, then
the all-reduce), so the weights differ by rounding alone: measured 3e-8 to 1e-7 after 15-150
Adam steps of the MLPs here; asserted within 1e-5 (weights) and 1e-5 relative (losses), with the
same early-stopping epoch, validation accuracies and test predictions. A resumed two-process run
and an uninterrupted one do the same arithmetic: they are asserted equal bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import error_lines, run_cli
from instrec.recipes import TrainConfig

WEIGHTS = 1e-5
LOSS = 1e-5

# fit_network's cases: (rows, multi-label, config). 49 rows in minibatches of 16 leave a last one
# of 1 row, which one process of two trains on alone; mixup, a validation split with early stopping,
# weight decay and the cosine schedule all in the second; several labels a row in the third
CASES = {
    "plain": (49, False, TrainConfig(epochs=15, batch_size=16)),
    "mixup+validation": (70, False, TrainConfig(epochs=15, batch_size=16, mixup=0.2, val_fraction=0.2, patience=3,
                                                schedule="cosine", weight_decay=1e-3)),
    "multilabel": (70, True, TrainConfig(epochs=15, batch_size=16, mixup=0.2, val_fraction=0.2, patience=3)),
}
KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "best_epoch", "epochs_run")


class Interrupt(Exception):
    pass


def _data(n: int, multilabel: bool):
    rng = np.random.default_rng(0)
    c = np.arange(n) % 3
    X = rng.normal(size=(n, 20)).astype(np.float32) + c[:, None].astype(np.float32)
    if not multilabel:
        return X, c
    y = np.zeros((n, 3), np.float32)
    y[np.arange(n), c] = 1
    y[np.arange(0, n, 3), (c[::3] + 1) % 3] = 1
    return X, y


@pytest.fixture(autouse=True)
def checkpoint_every_epoch(monkeypatch):
    """A checkpoint after every epoch (the processes started inherit it): a run cut after epoch 3 has one."""
    monkeypatch.setenv("INSTREC_CHECKPOINT_SECONDS", "0")


def _fit(name: str, checkpoint=None, *, stop_after=None, resume=False):
    """The MLP of the case trained by fit_network: ``(weights, history)``."""
    from instrec.models.mlp import MLP
    from instrec.train import fit_network, seed_everything

    n, multilabel, config = CASES[name]
    X, y = _data(n, multilabel)
    seed_everything(3)
    net = MLP(X.shape[1], (32, 16), 3, standardize=True)

    def on_epoch(epoch, total, loss):
        if epoch == stop_after:
            raise Interrupt  # as if killed right after this epoch's checkpoint

    h = fit_network(net, X, y, config, seed=3, device="cpu", checkpoint=checkpoint, resume=resume, on_epoch=on_epoch)
    return {k: v.clone() for k, v in net.state_dict().items()}, {k: h[k] for k in KEYS}


def _worker(rank: int, world_size: int, store: str, out: str) -> None:
    """One process of two: every case, then a run interrupted after epoch 3 and resumed."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    results = {name: _fit(name) for name in CASES}
    ck = Path(out) / "checkpoints"
    results["whole"] = _fit("mixup+validation", ck / "whole")
    try:
        _fit("mixup+validation", ck / "cut", stop_after=3)
    except Interrupt:
        pass
    results["written"] = json.loads((ck / "cut" / "checkpoint.json").read_text())["epoch"]
    results["resumed"] = _fit("mixup+validation", ck / "cut", resume=True)
    torch.save(results, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


def _close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=WEIGHTS), (k, float((a[k] - b[k]).abs().max()))


def _same_history(h1: dict, h2: dict) -> None:
    assert (h1["best_epoch"], h1["epochs_run"], h1["val_accuracy"]) == (h2["best_epoch"], h2["epochs_run"], h2["val_accuracy"])
    for k in ("loss", "val_loss", "accuracy"):
        assert np.allclose(h1[k], h2[k], rtol=LOSS, atol=0), k


def test_fit_network_in_two_processes_equals_one(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for name in CASES:
        (w0, h0), (w1, h1) = r0[name], r1[name]
        assert all(torch.equal(w0[k], w1[k]) for k in w0) and h0 == h1, name  # one model, one history
        w, h = _fit(name)
        _close(w, w0)
        _same_history(h, h0)
    # killed after epoch 3, resumed: the uninterrupted two-process run's weights and history, exactly
    assert r0["written"] == 3
    (ww, hw), (wr, hr) = r0["whole"], r0["resumed"]
    assert all(torch.equal(ww[k], wr[k]) for k in ww) and hw == hr
    assert not list((tmp_path / "checkpoints").glob(".*part"))  # no half-written checkpoint left


# -- the command line: instrec train --nproc 2 ---------------------------------------------------

ARGS = ("--recipe", "seed-mfcc", "--epochs", "150")  # an MLP without dropout: equal up to rounding


def _weights(model: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(model / "model.safetensors"))


@pytest.fixture(scope="module")
def trained(tone_data, tmp_path_factory):
    """The same training in one process and in two: ``{1: (model, result), 2: (model, result)}``."""
    root = tmp_path_factory.mktemp("ddp")
    out = {}
    for n in (1, 2):  # one process: this one (a process of its own costs seconds of imports)
        model = root / f"nproc{n}"
        out[n] = model, run_cli("train", tone_data, *ARGS, "--out", model, "--nproc", n, process=n > 1)
    return out


def test_train_nproc_2_equals_one_process(trained):
    (m1, r1), (m2, r2) = trained[1], trained[2]
    assert r1.returncode == 0 and r2.returncode == 0, r2.stderr
    assert r2.stdout.replace(m2.name, m1.name) == r1.stdout  # rank 0 alone prints, and the same
    assert r2.stdout.count("model saved to") == 1
    assert not error_lines(r2.stderr)
    assert not m2.with_name(m2.name + ".checkpoint").exists()
    j1, j2 = (json.loads((m / "model.json").read_text()) for m in (m1, m2))
    assert j1["classes"] == j2["classes"]
    assert j2["training"]["final_loss"] == pytest.approx(j1["training"]["final_loss"], rel=LOSS)
    assert j2["metrics"]["test_split"]["accuracy"] == j1["metrics"]["test_split"]["accuracy"]
    _close(_weights(m1), _weights(m2))


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def test_nproc_errors_are_one_line(tmp_path):
    # found before any process is launched: here (a process's one-line usage errors: tests/test_cli.py)
    r = run_cli("train", tmp_path / "absent", "--recipe", "seed-mfcc", "--out", tmp_path / "m", "--nproc", "2")
    assert r.returncode == 2 and error_lines(r.stderr) == [
        f"instrec: error: Invalid value for 'DATA...': path '{tmp_path / 'absent'}' does not exist. (instrec train --help for usage)"]
    r = run_cli("train", tmp_path, "--cv", "3", "--nproc", "2")
    assert r.returncode == 2 and error_lines(r.stderr) == ["instrec: error: --cv trains its folds in one process; leave out --nproc"]


def test_the_exit_code_is_the_failure_of_its_own_not_the_launchers_sigterm():
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    from instrec.train.distributed import exit_code

    def failed(rank, code, when):
        f = ProcessFailure(local_rank=rank, pid=100 + rank, exitcode=code, error_file="/nonexistent")
        f.timestamp = when
        return f

    # rank 1 failed first (exit 1), the launcher then stopped rank 0 with SIGTERM: 1, not 143
    assert exit_code({0: failed(0, -15, 20), 1: failed(1, 1, 10)}) == 1
    assert exit_code({0: failed(0, 2, 20), 1: failed(1, 1, 10)}) == 2  # rank 0's own failure first
    assert exit_code({0: failed(0, -15, 20), 1: failed(1, 3, 30), 2: failed(2, 1, 10)}) == 1  # else the earliest
    assert exit_code({0: failed(0, -15, 20), 1: failed(1, -9, 10)}) == 137  # rank 1 killed (out of memory)
    assert exit_code({0: failed(0, -15, 20), 1: failed(1, -15, 10)}) == 143  # all stopped: rank 0's signal
