"""Training checkpoints: the whole state of a run (weights, optimizer, schedule, every random
generator, history) in a folder, safetensors for tensors and JSON for the rest; nothing is ever
pickled. A run key fingerprints the data, recipe and seed, so another run's checkpoint is refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..recipes import TrainConfig

CKPT_TENSORS = "checkpoint.safetensors"
CKPT_JSON = "checkpoint.json"
CKPT_FORMAT = "instrec-checkpoint"


def run_key(name: str, X: np.ndarray, y: np.ndarray, config: TrainConfig, seed: int) -> str:
    """A fingerprint of what is trained on and how: resuming another run's checkpoint is refused."""
    h = hashlib.sha256()
    h.update(name.encode())
    y = np.asarray(y)
    h.update(json.dumps([list(X.shape), list(y.shape), seed, repr(config)]).encode())
    # a label matrix as the loop trains on it (floats: 0.3 present is not 0); class indices as int64
    h.update(np.ascontiguousarray(y, dtype=np.float32 if y.ndim == 2 else np.int64).tobytes())
    h.update(str(X.dtype).encode())
    # every row: one re-recorded clip among a thousand is another run (sha256 reads ~1 GB/s)
    for start in range(0, len(X), 4096):  # in pieces: no copy of the whole of X
        h.update(np.ascontiguousarray(X[start : start + 4096]).tobytes())
    return h.hexdigest()


def save_checkpoint(path: Path, key: str, epoch: int, net, opt, sched, gen, history, best, best_epoch,
                    waited, best_state, stopped) -> None:
    """Write the state after ``epoch`` to the folder ``path``, atomically (a new folder replaces it)."""

    from safetensors.torch import save_file

    from ..bundle import atomic_dir
    from ..fileio import write_json, writing

    tensors = {f"net.{k}": v for k, v in net.state_dict().items()}
    if best_state is not None:
        tensors.update({f"best.{k}": v for k, v in best_state.items()})
    opt_state = opt.state_dict()
    for pid, st in opt_state["state"].items():
        for name, v in st.items():
            tensors[f"opt.{pid}.{name}"] = v if torch.is_tensor(v) else torch.tensor(v)
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.gen"] = gen.get_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    meta = {
        "format": CKPT_FORMAT, "run_key": key, "epoch": epoch, "history": history,
        "best": list(best), "best_epoch": best_epoch, "waited": waited, "stopped": stopped,
        "has_best": best_state is not None,
        "opt_groups": opt_state["param_groups"],
        "opt_keys": {str(pid): sorted(st) for pid, st in opt_state["state"].items()},
        "sched": sched.state_dict() if sched is not None else None,
        "numpy_rng": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    with atomic_dir(path, marker=CKPT_JSON, what="training checkpoint") as tmp:
        with writing(path):  # a full disk or a read-only folder: one line naming it
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / CKPT_TENSORS))
        write_json(tmp / CKPT_JSON, meta)


def checkpoint_exists(path: Path) -> bool:
    """Whether ``path`` holds a checkpoint to resume from."""
    from ..bundle import recover_dir

    recover_dir(path)  # a run killed while it replaced its checkpoint left it aside
    return (path / CKPT_JSON).is_file()


def load_checkpoint(path: Path, key: str, net, opt, sched, gen, dev) -> dict:
    """Restore the state at ``path`` into ``net``, ``opt``, ``sched`` and the random generators;
    return its JSON part, with ``best_state`` added. Another run's checkpoint (``key``) is refused."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        meta = json.loads((path / CKPT_JSON).read_text(encoding="utf-8"))
        tensors = load_file(str(path / CKPT_TENSORS))
    except (OSError, ValueError, SafetensorError) as e:
        raise DataError(f"{path}: the checkpoint cannot be read ({e}); delete it to start afresh") from None
    if not isinstance(meta, dict) or meta.get("format") != CKPT_FORMAT:
        raise DataError(f"{path}: not an instrec checkpoint")
    if meta.get("run_key") != key:
        raise DataError(f"{path}: the checkpoint belongs to another run (other data, recipe or seed); "
                        "delete it or train without --resume")
    try:
        net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        best_state = ({k[5:]: v for k, v in tensors.items() if k.startswith("best.")} if meta["has_best"] else None)
        # load_state_dict moves each state tensor to its parameter's device (``step`` as Adam wants it)
        state = {int(pid): {name: tensors[f"opt.{pid}.{name}"] for name in names}
                 for pid, names in meta["opt_keys"].items()}
        opt.load_state_dict({"state": state, "param_groups": meta["opt_groups"]})
        if sched is not None and meta["sched"] is not None:
            sched.load_state_dict(meta["sched"])
        torch.set_rng_state(tensors["rng.torch"])
        gen.set_state(tensors["rng.gen"])
        if torch.cuda.is_available():
            n = torch.cuda.device_count()
            cuda = [tensors[f"rng.cuda.{i}"] for i in range(n) if f"rng.cuda.{i}" in tensors]
            if len(cuda) == n:
                torch.cuda.set_rng_state_all(cuda)
        kind, keys, pos, has_gauss, cached = meta["numpy_rng"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise DataError(f"{path}: the checkpoint is damaged ({str(e)[:200]}); delete it to start afresh") from None
    meta["best_state"] = best_state
    return meta
