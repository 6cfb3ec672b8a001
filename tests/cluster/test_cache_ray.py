"""The feature cache filled on a real Ray cluster (``fill_cache_on_ray``): the entries the workers
write are those a local run writes, byte for byte, so a local extraction afterwards only reads
them and returns the rows of a run without Ray; a bad file is reported, never stops the fill.

The fill runs in a process of its own, as a user's script would: this one imported Ray before the
``ray_cluster`` fixture said the cluster stays on 127.0.0.1, which Ray reads once, on import."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray", reason="Ray is instrec's [cluster] extra")

from instrec.features import FeatureConfig, extract  # noqa: E402
from instrec.features.cache import FeatureCache  # noqa: E402


def _fill(paths, config, cache: Path, address: str, runs: int = 1) -> list[dict]:
    """``fill_cache_on_ray`` ``runs`` times in a fresh interpreter: each run's summary, with its
    progress calls."""
    code = textwrap.dedent(f"""
        import dataclasses, json
        from instrec.cluster.tasks import fill_cache_on_ray
        from instrec.features import FeatureConfig
        for _ in range({runs}):
            calls = []
            s = fill_cache_on_ray({[str(p) for p in paths]!r}, FeatureConfig.from_dict({config.to_dict()!r}),
                                  cache={str(cache)!r}, address={address!r}, progress=lambda d, n: calls.append((d, n)))
            print(json.dumps({{**dataclasses.asdict(s), "progress": calls}}))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return [json.loads(line) for line in r.stdout.splitlines()[-runs:]]


def _entries(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.feat"))}


def test_fill_on_ray_then_local_extraction_reads_the_same_rows(ray_cluster, tone_data, tmp_path):
    paths = [*sorted(tone_data.rglob("*_0[0-2].wav"))]  # 3 kinds x 3 files
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00not audio at all")
    paths.insert(4, broken)
    config = FeatureConfig("mfcc", stats="mean+std")
    # a second fill, in the same process (a Ray connection costs seconds), has nothing left to do but the bad file
    summary, again = _fill(paths, config, tmp_path / "ray-cache", ray_cluster, runs=2)
    assert [summary[k] for k in ("files", "computed", "cached", "errors")] == [10, 9, 0, 0]
    assert summary["tasks"] >= 2 and summary["progress"][-1] == [10, 10]
    ((bad, why),) = summary["skipped"]
    assert bad == str(broken) and why and "\n" not in why

    ray_cache, fresh = FeatureCache(tmp_path / "ray-cache"), FeatureCache(tmp_path / "fresh")
    X, ok, skipped = extract(paths, config, jobs=1, cache=ray_cache)
    assert (ray_cache.hits, ray_cache.stored) == (9, 0)  # only the bad file is tried again
    X0, ok0, skipped0 = extract(paths, config, jobs=1, cache=fresh)
    assert fresh.stored == 9
    assert X.dtype == X0.dtype and X.tobytes() == X0.tobytes() and np.array_equal(ok, ok0)
    assert skipped == skipped0 == [(bad, why)]
    assert _entries(ray_cache.root) == _entries(fresh.root) and len(_entries(fresh.root)) == 9
    assert [again[k] for k in ("computed", "cached", "skipped")] == [0, 9, summary["skipped"]]


def test_train_and_evaluate_with_ray_fill_the_cache_there_and_train_the_same_model(ray_cluster, tone_data, tmp_path):
    from safetensors.numpy import load_file

    from conftest import run_cli

    # two training processes (one is the CLI's own path, less common to both): the launcher fills
    # the cache on Ray once, before they start; they read it
    env = {"INSTREC_CACHE": str(tmp_path / "cache")}  # empty: every feature is the cluster's to compute
    args = ["--recipe", "seed-mfcc", "--epochs", "20", "--seed", "3"]
    r = run_cli("train", tone_data, *args, "--out", tmp_path / "ray", "--ray", ray_cluster, "--nproc", "2", process=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.count("features on Ray: 30 computed in") == 1 and "0 already cached" in r.stderr
    assert len(_entries(tmp_path / "cache")) == 30
    local = run_cli("train", tone_data, *args, "--out", tmp_path / "local", "--no-cache")
    assert local.returncode == 0, local.stderr
    w_ray, w_local = load_file(tmp_path / "ray" / "model.safetensors"), load_file(tmp_path / "local" / "model.safetensors")
    assert w_ray.keys() == w_local.keys()
    for k in w_ray:  # the same rows, the same seed: the same network (up to MKL's rounding under load)
        np.testing.assert_allclose(w_ray[k], w_local[k], atol=1e-5)

    # one process (the fill inside the extraction), on an empty cache: the test split's features,
    # computed on Ray, are the entries the training stored, byte for byte
    r = run_cli("evaluate", tmp_path / "ray", tone_data, "--out", tmp_path / "report", "--ray", ray_cluster, process=True,
                env={"INSTREC_CACHE": str(tmp_path / "cache2")})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "features on Ray: 6 computed in" in r.stderr and "0 already cached" in r.stderr  # 20% of 30 clips
    evaluated, trained = _entries(tmp_path / "cache2"), _entries(tmp_path / "cache")
    assert len(evaluated) == 6 and all(trained[k] == v for k, v in evaluated.items())

    r = run_cli("train", tone_data, "--out", tmp_path / "m", "--ray", "local", "--no-cache")
    assert r.returncode == 2 and "leave out --no-cache" in r.stderr
