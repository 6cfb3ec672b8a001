"""The one training loop every recipe uses: minibatch Adam on softmax cross-entropy, with optional
mixup, a validation split with early stopping, a cosine learning-rate schedule and training the
output layer alone; or, for small convex problems, full-batch L-BFGS on the same objective.
The state it saves every :data:`CHECKPOINT_SECONDS` or so, to resume from: :mod:`instrec.train.checkpoint`."""

from __future__ import annotations

import copy
import inspect
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..devices import resolve_device
from ..errors import ParameterError
from ..recipes import TrainConfig
# run_key is also fit_network's parameter: the function goes by another name here
from .checkpoint import checkpoint_exists, load_checkpoint, save_checkpoint
from .checkpoint import run_key as make_run_key
from .distributed import all_sum, barrier, broadcast_buffers, gather_strided, is_main, main_first, world


CHECKPOINT_SECONDS = 30.0  # a killed run loses at most this much training


def checkpoint_seconds() -> float:
    """Seconds between two checkpoints of a run: ``$INSTREC_CHECKPOINT_SECONDS`` (0: after every
    epoch), else :data:`CHECKPOINT_SECONDS`."""
    text = os.environ.get("INSTREC_CHECKPOINT_SECONDS", "").strip()
    if not text:
        return CHECKPOINT_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ParameterError(f"INSTREC_CHECKPOINT_SECONDS must be a number of seconds >= 0; got {text!r}")
    return value


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch and numpy; return the generator that orders minibatches."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return torch.Generator().manual_seed(seed)


def fit_network(
    net: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    config: TrainConfig,
    *,
    seed: int = 0,
    device: str = "auto",
    on_epoch: Callable[[int, int, float], None] | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    run_key: str = "",
    expand: Callable[[torch.Tensor], torch.Tensor] | None = None,
    prepare: bool = True,
) -> dict:
    """Train ``net`` in place on rows ``X`` and integer labels ``y``; return its history.

    A 2-D ``y`` (``(n, classes)`` of 0/1) is several labels a row: the loss is then binary
    cross-entropy of each class's logit, "accuracy" the micro F1 of the classes over 0.5, and the
    epoch is chosen by the validation loss.

    With ``config.val_fraction`` > 0 a stratified part of the rows is held out; the weights of the
    epoch with the best validation accuracy are kept, and training stops after
    ``config.patience`` epochs without improvement. If that part would hold fewer than
    ``config.min_val_per_class`` rows a class on average, none is held out: every epoch is
    trained and the last weights kept (``history["validation_rows"]`` says how many were held out,
    ``history["validation_index"]`` which: the rows the model is calibrated on).

    With ``checkpoint`` (a folder), the whole training state (weights, optimizer, schedule, every
    random generator, history) is written there atomically after an epoch, at most once in
    :func:`checkpoint_seconds` (30 s; not after the last epoch); ``resume=True``
    continues from it and ends with the same weights as an uninterrupted run. ``run_key`` names
    the run (data, recipe, seed): a checkpoint of another run is refused, not silently mixed in.
    ``expand`` turns a batch of stored rows into the network's float input (compact uint8 images
    stay compact in memory and are scaled one batch at a time).

    ``prepare=False`` keeps the input statistics ``net`` already has (fine-tuning keeps the base
    model's, which its weights were trained with) instead of fitting them on ``X``.

    In a process group of several processes (:mod:`instrec.train.distributed`, torchrun), every
    process is given the same ``X`` and ``y`` and trains one copy with DistributedDataParallel:
    each takes the same split and minibatch order, trains on its share of every minibatch
    (positions ``rank::world_size``) and the gradients are averaged, so that a minibatch is still
    ``config.batch_size`` rows and the run matches one process's up to rounding. Mixup draws the
    same mix on every process; the losses, accuracies and validation scores (each process scores
    its share of the validation rows) are those of the whole minibatch and validation split on
    every process, which therefore all stop at the same epoch. Rank 0 alone writes the
    checkpoint (the others wait for it); all resume from it. Dropout and augmentation draw per
    process (seeded by seed, epoch and rank, so that a resumed run repeats them), and batch norm
    normalises each process's share by its own statistics, keeping rank 0's running ones: such
    networks match one process's training in accuracy, not weight for weight. L-BFGS solves the
    same full-batch problem in each process (no speed-up).
    """
    y = _targets(y)
    # a checkpoint costs a write of every weight and the optimizer's state: at most one in `every` s
    every = checkpoint_seconds() if checkpoint is not None else 0.0
    gen = seed_everything(seed)
    size = world()[1]
    dev = resolve_device(device)
    expand = expand or (lambda t: t)
    Xt = torch.from_numpy(np.ascontiguousarray(X))
    multilabel = np.ndim(y) == 2
    yt = torch.from_numpy(np.asarray(y, dtype=np.float32 if multilabel else np.int64))
    train_idx, val_idx = _validation_split(y, config.val_fraction, seed, config.min_val_per_class)
    if prepare and getattr(net, "wants_prepare", False):
        net.prepare(expand(Xt[train_idx]))
    frozen_norms = _freeze_all_but_output(net) if config.trainable == "output" else []
    net.to(dev)
    if config.optimizer == "lbfgs":
        history = _fit_full_batch(net, Xt[train_idx], yt[train_idx], config, dev, expand, frozen_norms)
        if on_epoch:  # one full-batch solve: the progress bar is done at once
            on_epoch(config.epochs, config.epochs, history["loss"][-1])
        return _finish(net, history, val_idx)
    # fused: one kernel for the whole update, twice as fast on the 19.7 M weights of the image MLP
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=config.lr, eps=config.eps, weight_decay=config.weight_decay, fused=True)
    steps_per_epoch = -(-len(train_idx) // config.batch_size)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs * steps_per_epoch)
             if config.schedule == "cosine" else None)
    loss_fn = nn.BCEWithLogitsLoss() if multilabel else nn.CrossEntropyLoss()
    history: dict = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": [], "device": str(dev)}
    best = (-1.0, float("inf"))
    best_state, best_epoch, waited = None, 0, 0
    t0 = time.perf_counter()
    first_epoch = 0
    key = make_run_key(run_key, X, y, config, seed)
    saved_at = t0
    state = None
    if resume and checkpoint is not None:
        with main_first():  # rank 0 first: it puts back the checkpoint a killed run left aside
            if checkpoint_exists(Path(checkpoint)):
                state = load_checkpoint(Path(checkpoint), key, net, opt, sched, gen, dev)
    if state is not None:
        history, first_epoch = state["history"], state["epoch"]
        best, best_epoch, waited, best_state = tuple(state["best"]), state["best_epoch"], state["waited"], state["best_state"]
        if state["stopped"]:
            first_epoch = config.epochs  # early stopping had ended the run
    model = _data_parallel(net, dev) if size > 1 else net
    stopped = False
    for epoch in range(first_epoch, config.epochs):
        net.train()
        for m in frozen_norms:  # their running statistics are frozen weights too
            m.eval()
        order = train_idx[torch.randperm(len(train_idx), generator=gen)]
        if size > 1:
            torch.manual_seed(_process_seed(seed, epoch))
            total, correct = _distributed_epoch(model, order, Xt, yt, config, opt, sched, gen, dev, expand)
        else:
            total, correct = 0.0, 0.0
            for start in range(0, len(order), config.batch_size):
                idx = order[start : start + config.batch_size]
                xb, yb = expand(Xt[idx]).to(dev), yt[idx].to(dev)
                opt.zero_grad()
                lam = _mix_weight(config.mixup, multilabel) if len(idx) > 1 else None
                if lam is not None:
                    perm = torch.randperm(len(idx), generator=gen).to(dev)
                    xb, mix = lam * xb + (1 - lam) * xb[perm], (lam, yb[perm])
                else:
                    mix = None
                logits = net(xb)
                loss = _mixed(loss_fn, logits, yb, mix)
                loss.backward()
                opt.step()
                if sched:
                    sched.step()
                total += loss.item() * len(idx)
                correct += _hits(logits.detach(), _truth(yb, mix))
        history["loss"].append(total / len(order))
        history["accuracy"].append(correct / len(order))
        if len(val_idx):
            broadcast_buffers(net)  # every process scores with rank 0's batch-norm statistics
            vloss, vacc = _score(net, Xt[val_idx], yt[val_idx], dev, expand)
            history["val_loss"].append(vloss)
            history["val_accuracy"].append(vacc)
            # a multi-label network's F1 at 0.5 says little while its sigmoids are still low: its loss decides
            if ((-vloss, vacc) > (-best[1], best[0])) if multilabel else ((vacc, -vloss) > (best[0], -best[1])):
                best, best_epoch, waited = (vacc, vloss), epoch + 1, 0
                best_state = copy.deepcopy(net.state_dict())
            else:
                waited += 1
        stopped = bool(config.patience and waited >= config.patience)
        # rank 0's clock decides for every process: they must meet at the barrier together
        due = checkpoint is not None and epoch + 1 < config.epochs and not stopped and bool(
            all_sum(torch.tensor([float(is_main() and time.perf_counter() - saved_at >= every)])).item())
        if due:
            saved_at = time.perf_counter()
            if is_main():
                save_checkpoint(Path(checkpoint), key, epoch + 1, net, opt, sched, gen, history,
                                best, best_epoch, waited, best_state, stopped)
            barrier()  # no process goes on (to resume, or to remove it) before the checkpoint is whole
        if on_epoch:
            on_epoch(epoch + 1, config.epochs, total / len(order))
        if stopped:
            break
    broadcast_buffers(net)
    if best_state is not None:
        net.load_state_dict(best_state)
    history.update(seconds=time.perf_counter() - t0, epochs_run=len(history["loss"]), best_epoch=best_epoch or len(history["loss"]))
    return _finish(net, history, val_idx)


def _finish(net: nn.Module, history: dict, val_idx) -> dict:
    """Hand the trained network back as prediction wants it: every weight trainable again, eval mode, on the CPU."""
    for p in net.parameters():
        p.requires_grad_(True)
    net.eval()
    net.to("cpu")
    history["validation_rows"] = len(val_idx)
    history["validation_index"] = np.asarray(val_idx, dtype=np.int64)  # calibration's rows (not saved)
    return history


def _data_parallel(net: nn.Module, dev) -> nn.Module:
    """``net`` in DistributedDataParallel, which averages the processes' gradients in backward."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else None
    # buffers (batch-norm statistics) are made rank 0's where they count, before validation and at the
    # end, not by a broadcast before every forward pass (an all-reduce's cost again on the CPU)
    sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters \
        else "broadcast_buffers"  # its older name
    return DistributedDataParallel(net, device_ids=ids, **{sync: False})


def _process_seed(seed: int, epoch: int) -> int:
    """The seed of this process's dropout and augmentation in ``epoch``: its own (each process's
    rows draw their own), and a function of the epoch alone (a resumed run draws the same)."""
    return int(np.random.SeedSequence([seed % 2**63, epoch, world()[0]]).generate_state(1)[0])


def _distributed_epoch(model: nn.Module, order: torch.Tensor, Xt, yt, config: TrainConfig, opt, sched, gen, dev,
                       expand) -> tuple[float, float]:
    """One epoch in a process of a group: positions ``rank::world_size`` of every minibatch of
    ``order``. Returns the epoch's summed loss and hits over the whole of each minibatch, as the
    one-process loop sums them."""
    rank, size = world()
    multilabel = yt.dim() == 2
    loss_fn = nn.BCEWithLogitsLoss(reduction="sum") if multilabel else nn.CrossEntropyLoss(reduction="sum")
    steps, sizes = [], []
    for start in range(0, len(order), config.batch_size):
        idx = order[start : start + config.batch_size]
        mine, partners = idx[rank::size], None
        lam = _mix_weight(config.mixup, multilabel) if len(idx) > 1 else None
        if lam is not None:  # the same draws on every process: the global batch's mix
            partners = idx[torch.randperm(len(idx), generator=gen)][rank::size]
        n = len(mine)
        # a process without a row of this (last, short) batch still joins the gradients' all-reduce, with weight 0
        rows = mine if n else idx[:1]
        xb, yb = expand(Xt[rows]).to(dev), yt[rows].to(dev)
        if partners is not None:
            other = partners if n else idx[:1]
            xb = lam * xb + (1 - lam) * expand(Xt[other]).to(dev)
        opt.zero_grad()
        logits = model(xb)
        mix = None if partners is None else (lam, yt[other].to(dev))
        loss = _mixed(loss_fn, logits, yb, mix)
        # DDP averages the processes' gradients: each sum scaled so that the average is the minibatch's mean
        per_row = len(idx) * (yt.shape[1] if multilabel else 1)
        (loss * (size / per_row if n else 0.0)).backward()
        opt.step()
        if sched:
            sched.step()
        parts = _hit_parts(logits.detach(), _truth(yb, mix)) if n else (0.0, 0.0)
        steps.append((loss.item() * len(idx) / per_row if n else 0.0, *parts))
        sizes.append(len(idx))
    sums = all_sum(torch.tensor(steps, dtype=torch.float64).reshape(-1, 3)).tolist()
    total = sum(s[0] for s in sums)
    if not multilabel:
        return total, sum(s[1] for s in sums)
    return total, sum(n * (2 * tp / d if d else 1.0) for n, (_, tp, d) in zip(sizes, sums))


def _fit_full_batch(net: nn.Module, X: torch.Tensor, y: torch.Tensor, config: TrainConfig, dev, expand,
                    frozen_norms) -> dict:
    """Minimise the mean cross-entropy + (weight_decay / 2) |weights|^2 over all rows at once with
    L-BFGS: deterministic, and at the minimum of a convex problem. Biases are not decayed, as in
    logistic regression (scikit-learn's, whose minimum this then is). Nothing to checkpoint: such
    problems take seconds."""
    # the line search compares the objective at several points: it must be one function of the weights
    moving = [m for m in net.modules() if isinstance(m, nn.Dropout) and m.p > 0
              or isinstance(m, nn.modules.batchnorm._BatchNorm) and m not in frozen_norms]
    if moving or not isinstance(getattr(net, "augment", nn.Identity()), nn.Identity):
        raise ParameterError("optimizer lbfgs needs a network that computes the same function at every step: "
                             "no augmentation, dropout or batch norm being trained")
    net.eval()  # nothing above differs between the modes, and frozen batch norms keep their statistics
    t0 = time.perf_counter()
    params = [p for p in net.parameters() if p.requires_grad]
    decayed = [p for p in params if p.dim() > 1]
    opt = torch.optim.LBFGS(params, lr=config.lr, max_iter=config.epochs, history_size=20, tolerance_grad=1e-9,
                            tolerance_change=1e-12, line_search_fn="strong_wolfe")
    loss_fn = nn.BCEWithLogitsLoss(reduction="sum") if y.dim() == 2 else nn.CrossEntropyLoss(reduction="sum")
    n = len(y)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        total = torch.zeros((), device=dev)
        for start in range(0, n, config.batch_size):  # rows in pieces, gradients summed: the same as all at once
            xb, yb = expand(X[start : start + config.batch_size]).to(dev), y[start : start + config.batch_size].to(dev)
            part = loss_fn(net(xb), yb) / n
            part.backward()
            total += part.detach()
        if config.weight_decay and decayed:
            penalty = 0.5 * config.weight_decay * sum((p * p).sum() for p in decayed)
            penalty.backward()
            total += penalty.detach()
        return total

    opt.step(closure)
    with torch.no_grad():
        logits = torch.cat([net(expand(X[i : i + config.batch_size]).to(dev)) for i in range(0, n, config.batch_size)])
        loss = float(loss_fn(logits, y.to(dev))) / n
        accuracy = _hits(logits.cpu(), y) / n
    iterations = int(opt.state[params[0]].get("n_iter", 0))
    return {"loss": [loss], "accuracy": [accuracy], "val_loss": [], "val_accuracy": [], "device": str(dev),
            "optimizer": "lbfgs", "iterations": iterations, "seconds": time.perf_counter() - t0,
            "epochs_run": 1, "best_epoch": 1}


def _freeze_all_but_output(net: nn.Module) -> list[nn.Module]:
    """Stop gradients everywhere but ``net.output()``; return the batch norms, which must also
    keep their running statistics (training mode would update them)."""
    if not hasattr(net, "output"):
        raise ParameterError(f"trainable='output' needs a network with an output layer; {type(net).__name__} has none")
    keep = {id(p) for p in net.output().parameters()}
    for p in net.parameters():
        p.requires_grad_(id(p) in keep)
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


# With several labels a row, a mixed row is labelled with what both rows play: a partner more than
# 12 dB down (an amplitude share under 0.2, the mixtures' level range) would be labelled but barely heard.
MULTILABEL_MIX_FLOOR = 0.2


def _mix_weight(alpha: float, multilabel: bool) -> float | None:
    """Mixup's weight of a batch's own rows, drawn from Beta(``alpha``, ``alpha``); None for no mix
    (mixup off, or with several labels a row a partner too faint to label)."""
    if alpha <= 0:
        return None
    lam = float(np.random.beta(alpha, alpha))
    return None if multilabel and min(lam, 1 - lam) < MULTILABEL_MIX_FLOOR else lam


def _mixed(loss_fn, logits: torch.Tensor, target: torch.Tensor, mix) -> torch.Tensor:
    """The loss against ``target``, or with mixup ``(lam, partners)`` (the partner rows' targets):
    one label a row, the same mix of the two losses; several, the loss against the union of the two
    rows' labels, since both rows sound in the mix."""
    if mix is None or target.dim() == 2:
        return loss_fn(logits, _truth(target, mix))
    lam, partners = mix
    return lam * loss_fn(logits, target) + (1 - lam) * loss_fn(logits, partners)


def _truth(target: torch.Tensor, mix) -> torch.Tensor:
    """What a batch's rows are trained towards and scored against: their own labels, or mixed with
    several labels a row, the union of both rows' (the partner's instruments sound in the mix: naming
    them is right, not a false positive). One label a row keeps its own (mixup's usual accuracy)."""
    return target if mix is None or target.dim() != 2 else torch.maximum(target, mix[1])


def _hits(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Right answers in a batch: rows whose top class is the label; with several labels a row
    (2-D ``y``), the batch's micro F1 over 0.5 times its rows (so that sums over batches average)."""
    if y.dim() == 1:
        return float((logits.argmax(1) == y).sum())
    pred, true = logits > 0, y > 0.5
    tp = float((pred & true).sum())
    denom = float(pred.sum() + true.sum())
    return len(y) * (2 * tp / denom if denom else 1.0)


def _hit_parts(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """What :func:`_hits` is made of, summable over processes: ``(right answers, 0)``, or with
    several labels a row ``(true positives, predicted + true positives)``."""
    if y.dim() == 1:
        return float((logits.argmax(1) == y).sum()), 0.0
    pred, true = logits > 0, y > 0.5
    return float((pred & true).sum()), float(pred.sum() + true.sum())


@torch.no_grad()
def _score(net: nn.Module, X: torch.Tensor, y: torch.Tensor, dev, expand) -> tuple[float, float]:
    """Validation loss and accuracy; in a group each process computes the logits of its share
    of the rows, and every process scores all of them."""
    net.eval()
    rank, size = world()
    if len(X) < size:  # fewer rows than processes: each scores them all
        rank, size = 0, 1
    mine = X[rank::size]
    logits = torch.cat([net(expand(mine[i : i + 256]).to(dev)).cpu() for i in range(0, len(mine), 256)])
    if size > 1:
        logits = gather_strided(logits, len(X))
    if y.dim() == 2:
        return float(nn.functional.binary_cross_entropy_with_logits(logits, y)), _hits(logits, y) / len(y)
    return float(nn.functional.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


def _targets(y) -> np.ndarray:
    """``y`` as the loop takes it: a 2-D label matrix as it is; 1-D class indices as int64, floats
    included where they are whole numbers (0.0, 1.0...: the split's bincount refused them)."""
    y = np.asarray(y)
    if y.ndim == 2 or y.dtype.kind in "biu":
        return y if y.ndim == 2 else y.astype(np.int64, copy=False)
    if y.dtype.kind != "f" or not (np.isfinite(y).all() and (y == np.round(y)).all()):
        raise ParameterError(f"one label a row must be class indices, whole numbers; got {y.dtype} values that are not")
    return y.astype(np.int64)


def _validation_split(y: np.ndarray, fraction: float, seed: int, min_per_class: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(y)
    if np.ndim(y) == 2:  # several labels a row: stratified by each row's first class (or none)
        y = np.where(y.any(axis=1), y.argmax(axis=1) + 1, 0)
    counts = np.bincount(y)
    k, n_val = np.count_nonzero(counts), int(np.ceil(fraction * n))  # train_test_split's own count
    # a training side left empty would train nothing: as with too few rows, none held out
    if fraction <= 0 or fraction * n < min_per_class * k or n_val >= n:
        return torch.arange(n), torch.arange(0)
    from sklearn.model_selection import train_test_split

    # stratified only where each side can hold every class (sklearn refuses otherwise)
    stratify = y if counts[counts > 0].min() >= 2 and min(n_val, n - n_val) >= k else None
    tr, va = train_test_split(np.arange(n), test_size=fraction, random_state=seed, stratify=stratify)
    return torch.from_numpy(np.sort(tr)), torch.from_numpy(np.sort(va))
