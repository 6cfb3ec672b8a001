"""Rendering and the feature cache's fill step on Ray: ``instrec render OUT --ray ADDRESS``,
``instrec render-music OUT --ray ADDRESS``, :func:`render_on_ray`, :func:`render_music_on_ray` and
:func:`fill_cache_on_ray`.

Both hand instrec's own functions to Ray tasks (one CPU each), so a cluster writes what one
process would, byte for byte:

* rendering: :func:`instrec.data.render.render` with each unit of its work (the clips of one
  instrument from one library, or the negatives of one origin; :class:`~instrec.data.render.RenderUnit`)
  run by :func:`~instrec.data.render.render_unit` in a task. A unit's clips depend on nothing but
  the unit (its own random generator, its own synthesizer), so the files are those of a local run;
  this process readies the folders, numbers and merges, and writes the manifests.
* music: :func:`instrec.data.music.render_music` with its excerpts drawn and played by actors, one
  per CPU, each holding its libraries open and its scores read (an excerpt has a generator of its
  own, so any actor plays what a local run would); the audio comes back and this process writes
  the excerpts, the tables and the stamp, in order: the workers need not see the output folder.
* the feature cache: this process hashes the files and looks up their entries; the files whose
  entries are missing go to tasks, a batch each, which compute and store them with
  :func:`instrec.features.parallel.fill_entry`, what a local ``extract`` does for a miss. A later
  ``extract`` then finds every entry, and its rows are those of a run without Ray.

Files are shared, not shipped: the workers read and write the driver's paths (the libraries, the
output folder, the audio, the cache folder). That is one machine, or a cluster whose nodes mount
the same disk at the same path (NFS...) and have instrec (and FluidSynth, the SoundFonts) installed
alike. Relative paths are made absolute here.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

from ..errors import InstrecError, ParameterError
from ..features.cache import FeatureCache, config_digest
from ..features.config import FeatureConfig
from ..features.parallel import fill_entry, resolve_cache
from . import cluster_cpus, ray_session

__all__ = ["render_on_ray", "render_music_on_ray", "fill_cache_on_ray", "ray_map", "actor_map", "FillSummary"]

MAX_BATCH = 64  # files a fill task, at most: a task costs ~10 ms, a file's feature a few ms to 100s of ms
BATCHES_PER_CPU = 4  # at least, where there are enough files: the cluster's CPUs stay balanced


def ray_map(fn: Callable, items: Iterable, *, num_cpus: float = 1) -> Iterator:
    """``map(fn, items)`` with each call a Ray task of ``num_cpus`` CPUs (a connected Ray needed).

    All the tasks are submitted at once; the results come back in the order of ``items``. A
    task's instrec error is raised as itself (one line at the command line), and the tasks not
    yet done are cancelled when the caller stops early or a task fails."""
    import ray

    remote = ray.remote(num_cpus=num_cpus)(fn)
    refs = [remote.remote(item) for item in items]
    done = 0
    try:
        for ref in refs:
            yield _get(ref)
            done += 1
    finally:
        for ref in refs[done + 1:]:
            try:
                ray.cancel(ref)
            except Exception:  # finished meanwhile, or the connection is gone
                pass


def actor_map(factory: Callable, args: tuple, items: Iterable, *, actors: int | None = None) -> Iterator:
    """``factory(*args)(item)`` for each item, in order, on ``actors`` Ray actors of one CPU (default:
    one per CPU of the cluster, at most one per item), each made once with ``factory(*args)``.
    An actor is handed an item as it finishes one; an instrec error is raised as itself."""
    import ray
    from ray.util import ActorPool

    items = list(items)
    if actors is not None and (isinstance(actors, bool) or not isinstance(actors, int) or actors < 1):
        raise ParameterError(f"actors must be a positive number; got {actors!r}")
    n = max(1, min(actors or cluster_cpus(), len(items)))
    holder = ray.remote(num_cpus=1)(_Holder)
    pool = ActorPool([holder.remote(factory, args) for _ in range(n)])
    try:
        for result in pool.map(lambda actor, item: actor.call.remote(item), items):
            yield result
    except ray.exceptions.RayTaskError as e:
        _raise_cause(e)


class _Holder:
    """An actor's state: ``factory(*args)``, called on each item it is handed."""

    def __init__(self, factory: Callable, args: tuple):
        self.state = factory(*args)

    def call(self, item):
        return self.state(item)


def render_music_on_ray(out_dir, *, address: str | None = None, actors: int | None = None, **render_kwargs):
    """:func:`instrec.data.music.render_music` with its excerpts drawn and played by Ray actors
    (``actors``, default one per CPU) on the cluster at ``address`` (:func:`instrec.cluster.ray_session`):
    the same files, tables and report; this process writes them."""
    from ..data.music import render_music

    def on_ray(factory, args, indices):  # connects once the arguments have passed render_music's checks
        with ray_session(address):
            yield from actor_map(factory, args, indices, actors=actors)

    return render_music(out_dir, map_excerpts=on_ray, **render_kwargs)


def _get(ref):
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        _raise_cause(e)


def _raise_cause(e: Exception):
    """A task's instrec error raised as itself (what a local run would say); anything else as Ray's."""
    if isinstance(getattr(e, "cause", None), InstrecError):
        raise e.cause from None
    raise e


def render_on_ray(out_dir, *, address: str | None = None, **render_kwargs):
    """:func:`instrec.data.render.render` with its units of work as Ray tasks on the cluster at
    ``address`` (see :func:`instrec.cluster.ray_session`): the same files, manifests and report.
    ``progress`` (in ``render_kwargs``) moves on as units come back, in order."""
    from ..data.render import render

    def on_ray(fn, units):  # connects once the arguments have passed render's checks
        with ray_session(address):
            yield from ray_map(fn, units)

    return render(out_dir, map_units=on_ray, **render_kwargs)


@dataclass
class FillSummary:
    """What :func:`fill_cache_on_ray` did.

    Attributes
    ----------
    files : int
        Paths given.
    computed : int
        Entries computed and stored by the workers.
    cached : int
        Files whose entry was there already (or is another file's, with the same bytes).
    skipped : list of (path, problem)
        Files that cannot be used (missing, not audio...), one line each; they stopped nothing.
    errors : int
        Entries computed but not written (the cache folder not writable, full).
    tasks : int
        Ray tasks run.
    elapsed : float
        Seconds.
    """

    files: int = 0
    computed: int = 0
    cached: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    errors: int = 0
    tasks: int = 0
    elapsed: float = 0.0


def fill_cache_on_ray(paths: Sequence[str | os.PathLike], config: FeatureConfig, *, cache=None,
                      address: str | None = None, progress: Callable[[int, int], None] | None = None) -> FillSummary:
    """Compute the feature-cache entries of ``paths`` for ``config`` that are missing, in Ray tasks.

    ``cache``: a :class:`~instrec.features.cache.FeatureCache` or its folder (default: the default
    cache, ``$INSTREC_CACHE``...), which every worker must see at the same path. The files are
    hashed here (their digests remembered, as a local run does); the files without an entry go to
    the workers in batches. A file that cannot be used is reported in the summary's ``skipped``.
    An entry found damaged later is recomputed by the ``extract`` that finds it, as always.
    ``progress(done, total)``: files done, as batches finish.
    """
    started = time.perf_counter()
    store = resolve_cache(True if cache is None else cache)
    if store is None:
        raise ParameterError("fill_cache_on_ray fills a cache: give a FeatureCache or a folder, not False")
    root, key = os.path.abspath(store.root), config_digest(config)
    summary = FillSummary(files=len(paths))
    given: dict[str, tuple[int, str]] = {}  # absolute path -> (first index, as given)
    todo: dict[str, tuple[str, str | None]] = {}  # digest -> (path, digest) of the files to compute
    try:
        for i, p in enumerate(paths):
            path = os.path.abspath(p)
            given.setdefault(path, (i, os.fspath(p)))
            digest = store.file_key(path)
            if digest is not None and os.path.isfile(store.entry_name(key, digest)):
                summary.cached += 1
            elif digest is None or digest not in todo:  # an unreadable file: each one reported, as extract does
                todo[digest or f"\0{i}"] = (path, digest)
            else:  # the same bytes as a file already on its way: one entry for both
                summary.cached += 1
    finally:
        store.save_digests()
    work = list(todo.values())
    if not work:
        summary.elapsed = time.perf_counter() - started
        return summary
    with ray_session(address) as ray:
        n_batches = max(math.ceil(len(work) / MAX_BATCH), min(len(work), cluster_cpus() * BATCHES_PER_CPU))
        size = math.ceil(len(work) / n_batches)
        batches = [work[s : s + size] for s in range(0, len(work), size)]
        remote = ray.remote(num_cpus=1)(_fill_batch)
        cfg = config.to_dict()
        pending = {remote.remote(batch, cfg, root): len(batch) for batch in batches}
        summary.tasks, done = len(pending), summary.cached
        if progress:
            progress(done, summary.files)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    n = pending.pop(ref)
                    stats, skipped = _get(ref)
                    summary.computed += stats.get("stored", 0)
                    summary.errors += stats.get("errors", 0)
                    summary.skipped += skipped
                    done += n
                    if progress:
                        progress(done, summary.files)
        finally:
            for ref in pending:
                try:
                    ray.cancel(ref)
                except Exception:
                    pass
    # in the order of ``paths``, named as there
    summary.skipped = [(given.get(p, (0, p))[1], why) for p, why in
                       sorted(summary.skipped, key=lambda s: given.get(s[0], (len(paths),))[0])]
    summary.elapsed = time.perf_counter() - started
    return summary


def _fill_batch(batch: list[tuple[str, str | None]], cfg: dict, root: str) -> tuple[dict, list[tuple[str, str]]]:
    """A task: the entries of ``batch``'s files (``(path, digest)``) in the cache at ``root``; the
    cache's counters and the files that could not be used."""
    config = FeatureConfig.from_dict(cfg)
    store = FeatureCache(root)
    skipped = [skip for path, digest in batch if (skip := fill_entry(path, config, store, digest)) is not None]
    return store.stats, skipped
