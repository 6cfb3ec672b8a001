"""The one training loop every recipe uses: minibatch Adam on softmax cross-entropy, with optional
mixup, a validation split with early stopping, and a cosine learning-rate schedule."""

from __future__ import annotations

import copy
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from .errors import ParameterError
from .recipes import TrainConfig


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch and numpy; return the generator that orders minibatches."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return torch.Generator().manual_seed(seed)


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA when a GPU is present, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ParameterError(f"device must be auto, cpu or cuda; got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device cuda was asked for, but PyTorch sees no CUDA GPU (is a CUDA build installed?)")
    return torch.device(device)


def fit_network(
    net: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    config: TrainConfig,
    *,
    seed: int = 0,
    device: str = "auto",
    on_epoch: Callable[[int, int, float], None] | None = None,
) -> dict:
    """Train ``net`` in place on rows ``X`` and integer labels ``y``; return its history.

    With ``config.val_fraction`` > 0 a stratified part of the rows is held out; the weights of the
    epoch with the best validation accuracy are kept, and training stops after
    ``config.patience`` epochs without improvement.
    """
    gen = seed_everything(seed)
    dev = resolve_device(device)
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    train_idx, val_idx = _validation_split(y, config.val_fraction, seed)
    if hasattr(net, "prepare"):
        net.prepare(Xt[train_idx])
    net.to(dev)
    # fused: one kernel for the whole update, twice as fast on the 19.7 M weights of the image MLP
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, eps=config.eps, weight_decay=config.weight_decay, fused=True)
    steps_per_epoch = -(-len(train_idx) // config.batch_size)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs * steps_per_epoch)
             if config.schedule == "cosine" else None)
    loss_fn = nn.CrossEntropyLoss()
    history: dict = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": [], "device": str(dev)}
    best = (-1.0, float("inf"))
    best_state, best_epoch, waited = None, 0, 0
    t0 = time.perf_counter()
    for epoch in range(config.epochs):
        net.train()
        order = train_idx[torch.randperm(len(train_idx), generator=gen)]
        total, correct = 0.0, 0.0
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            xb, yb = Xt[idx].to(dev), yt[idx].to(dev)
            opt.zero_grad()
            if config.mixup > 0 and len(idx) > 1:
                lam = float(np.random.beta(config.mixup, config.mixup))
                perm = torch.randperm(len(idx), generator=gen).to(dev)
                logits = net(lam * xb + (1 - lam) * xb[perm])
                loss = lam * loss_fn(logits, yb) + (1 - lam) * loss_fn(logits, yb[perm])
            else:
                logits = net(xb)
                loss = loss_fn(logits, yb)
            loss.backward()
            opt.step()
            if sched:
                sched.step()
            total += loss.item() * len(idx)
            correct += float((logits.argmax(1) == yb).sum())
        history["loss"].append(total / len(order))
        history["accuracy"].append(correct / len(order))
        if len(val_idx):
            vloss, vacc = _score(net, Xt[val_idx], yt[val_idx], dev, config.batch_size)
            history["val_loss"].append(vloss)
            history["val_accuracy"].append(vacc)
            if (vacc, -vloss) > (best[0], -best[1]):
                best, best_epoch, waited = (vacc, vloss), epoch + 1, 0
                best_state = copy.deepcopy(net.state_dict())
            else:
                waited += 1
        if on_epoch:
            on_epoch(epoch + 1, config.epochs, total / len(order))
        if config.patience and waited >= config.patience:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    net.to("cpu")
    history.update(seconds=time.perf_counter() - t0, epochs_run=len(history["loss"]), best_epoch=best_epoch or len(history["loss"]))
    return history


@torch.no_grad()
def _score(net: nn.Module, X: torch.Tensor, y: torch.Tensor, dev, batch_size: int) -> tuple[float, float]:
    net.eval()
    logits = torch.cat([net(X[i : i + 256].to(dev)).cpu() for i in range(0, len(X), 256)])
    return float(nn.functional.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


def _validation_split(y: np.ndarray, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(y)
    if fraction <= 0:
        return torch.arange(n), torch.arange(0)
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 and int(np.ceil(fraction * n)) >= len(counts[counts > 0]) else None
    tr, va = train_test_split(np.arange(n), test_size=fraction, random_state=seed, stratify=stratify)
    return torch.from_numpy(np.sort(tr)), torch.from_numpy(np.sort(va))
