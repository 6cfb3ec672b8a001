"""Batch tagging on Ray: ``instrec predict MODEL PATH... --ray ADDRESS``.

The files go through Ray Data: ``map_batches`` on a pool of actors, each holding its own copy of
the model (loaded once per actor, one CPU and one onnxruntime thread each), decoding and
predicting with :func:`instrec.inference.predict_or_skip`, the very function a local run
uses, so the results are the same. Results stream back to the driver, which keeps the resumable
log of ``predict --log`` (a file already there is not predicted again) and drops a file answered
twice (Ray retries the batch of an actor that died, on a new one).

Paths are the driver's files and folders, which every worker must see at the same path (one
machine, or a shared disk), or URLs (``s3://``, ``gs://``, ``file://``... any filesystem fsspec
knows and the workers can read), fetched by each worker to a temporary file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Iterator, Sequence

from ..audio import is_audio_path
from ..errors import InstrecError, ParameterError
from ..inference import predict_or_skip
from ..results import Prediction
from . import cluster_cpus, ray_session

if TYPE_CHECKING:  # the actors import this module: nothing they do not use (the pipeline brings scikit-learn)
    from ..pipeline.prediction import Outcome, Runner

MAX_FETCH_BYTES = 4 << 30  # a URL's file is copied to the worker's disk, never to memory, but not without end
# files a task, at most: Ray Data's per-task cost (~10 ms) stays a few % of a batch's work (a 3-s clip
# takes ~3 ms), and an actor lost mid-batch costs little to redo
BATCH_FILES = 64


def is_url(path) -> bool:
    """Whether ``path`` names a file by URL (``scheme://...``) rather than on this machine's disk."""
    return "://" in str(path)


def ray_runner(address: str | None = None, *, workers: int | None = None, batch_size: int = BATCH_FILES) -> Runner:
    """A runner for :func:`instrec.pipeline.predict_paths` that predicts on the Ray cluster at
    ``address`` (see :func:`instrec.cluster.ray_session`) with ``workers`` actors (default: one
    per CPU of the cluster)."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ParameterError(f"workers must be a positive number of actors; got {workers!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ParameterError(f"batch_size must be a positive number of files; got {batch_size!r}")

    def run(model, files: Sequence[str], window, hop) -> Iterator[Outcome]:
        if not files:
            return
        with ray_session(address) as ray:
            size = min(workers or cluster_cpus(), len(files))
            batch = max(1, min(batch_size, len(files) // (size * 4)))  # a few batches an actor at least: balance
            # absolute: a worker's working folder is the cluster's, not this process's; answered as spelt
            sent = [str(f) if is_url(f) else os.path.abspath(f) for f in files]
            items = [{"i": i, "path": p} for i, p in enumerate(sent)]
            ds = ray.data.from_items(items, override_num_blocks=min(-(-len(items) // batch), 10_000))
            tagged = ds.map_batches(
                _Tagger, fn_constructor_args=(ray.put(model), window, hop), batch_size=batch, batch_format="numpy",
                # Ray Data's actors are restarted and their batches retried when they die (its defaults)
                compute=ray.data.ActorPoolStrategy(size=size), num_cpus=1)
            try:
                for row in tagged.iter_rows():
                    i = int(row["i"])
                    if row["problem"]:
                        yield i, (str(files[i]), row["problem"].replace(sent[i], str(files[i])))
                    else:
                        yield i, dataclasses.replace(Prediction.from_dict(json.loads(row["json"])), path=str(files[i]))
            except ray.exceptions.RayActorError as e:
                if not getattr(e, "actor_init_failed", False):
                    raise
                # a node without instrec's packages (or the model's engine): Ray's traceback says it last
                raise InstrecError(f"the tagging actors could not start on the Ray cluster: {_last_line(e)} "
                                   "(each node needs instrec and its packages, as installed here)") from None

    return run


def _last_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(e)).splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


class _Tagger:
    """One actor of the pool: a copy of the model; a batch of paths in, their predictions out."""

    def __init__(self, model, window, hop):
        import ray

        from ..features.pool import init_worker

        init_worker()  # as a local pool's worker: one BLAS thread, freed memory kept in the heap
        # one transfer of the model through the object store, whatever the number of actors
        self.model = ray.get(model) if isinstance(model, ray.ObjectRef) else model
        self.window, self.hop = window, hop

    def __call__(self, batch):
        out_json, problems = [], []
        for path in batch["path"]:
            r = _predict_url(self.model, path, self.window, self.hop) if is_url(path) else \
                predict_or_skip(self.model, path, window=self.window, hop=self.hop)
            if isinstance(r, Prediction):
                out_json.append(json.dumps(r.to_dict(), ensure_ascii=False))
                problems.append("")
            else:
                out_json.append("")
                problems.append(r[1])
        return {"i": batch["i"], "json": out_json, "problem": problems}


def _predict_url(model, url: str, window, hop):
    """A URL's file fetched to a temporary file of the same suffix, predicted, named by its URL."""
    try:
        import fsspec

        suffix = PurePosixPath(url.split("?")[0]).suffix
        with fsspec.open(url, "rb") as src, tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
            copied = 0
            while chunk := src.read(1 << 20):
                copied += len(chunk)
                if copied > MAX_FETCH_BYTES:
                    return url, f"larger than {MAX_FETCH_BYTES >> 30} GiB: not fetched"
                tmp.write(chunk)
            tmp.flush()
            r = predict_or_skip(model, tmp.name, window=window, hop=hop)
    except (OSError, ValueError, ImportError) as e:  # fsspec's: not found, no such protocol, no access
        return url, f"cannot read it: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    if isinstance(r, Prediction):
        return dataclasses.replace(r, path=url)
    return url, r[1].replace(tmp.name, url)


def expand_urls(paths: Sequence[str | os.PathLike]) -> tuple[list[str], list[tuple[str, str]]]:
    """``paths`` with each URL of a folder replaced by the URLs of the audio files under it
    (recursively, sorted); local paths and URLs of files unchanged. ``(url, problem)`` for a URL
    that cannot be listed or holds no audio."""
    out, skipped = [], []
    for p in paths:
        if not is_url(p):
            out.append(p)
            continue
        url = str(p)
        try:
            import fsspec

            fs, root = fsspec.core.url_to_fs(url)
            if not fs.isdir(root):
                if not fs.exists(root):
                    skipped.append((url, "no such file or folder"))
                else:
                    out.append(url)
                continue
            found = sorted((f for f in fs.find(root) if is_audio_path(f) and not PurePosixPath(f).name.startswith(".")),
                           key=lambda f: _walk_order(f, root))
        except (OSError, ValueError, ImportError) as e:
            skipped.append((url, f"cannot list it: {str(e).splitlines()[0] if str(e) else type(e).__name__}"))
            continue
        if not found:
            skipped.append((url, "no audio files found (looked for .wav .flac .ogg .mp3)"))
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        out += [f if is_url(f) else f"{protocol}://{f}" for f in found]
    return out, skipped


def _walk_order(path: str, root: str) -> tuple[str, ...]:
    """A sort key giving a local folder's order (:func:`instrec.data.folder.find_audio`): a
    folder's files, sorted, before its sub-folders, each in turn."""
    parts = PurePosixPath(path).relative_to(PurePosixPath(root)).parts if path.startswith(root.rstrip("/") + "/") else (path,)
    return (*parts[:-1], "\0" + parts[-1])
