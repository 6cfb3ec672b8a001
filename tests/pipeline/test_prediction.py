"""predict_paths on several processes and the results files (--out): the same answers as one process."""

from __future__ import annotations

import json

import pytest

from instrec.inference import load_model
from instrec.pipeline import predict_paths, write_results
from tests.conftest import run_cli


def test_a_pool_answers_as_one_process(tone_data, tmp_path):
    model = load_model()
    (tmp_path / "bad.wav").write_bytes(b"RIFF junk")
    paths = [tone_data, tmp_path / "bad.wav", tmp_path / "absent.wav"]
    one, skipped_one = predict_paths(model, paths)
    two, skipped_two = predict_paths(model, paths, jobs=2)
    assert [r.to_dict() for r in one] == [r.to_dict() for r in two]
    assert sorted(skipped_one) == sorted(skipped_two) and len(skipped_one) == 2


def test_results_files(tone_data, tmp_path):
    results, _ = predict_paths(load_model(), [tone_data])
    jl = write_results(results, tmp_path / "r.jsonl")
    assert [json.loads(l) for l in jl.read_text().splitlines()] == [r.to_row(3) for r in results]
    pq = pytest.importorskip("pyarrow.parquet", reason="Parquet needs pyarrow ([cluster] extra)")
    rows = pq.read_table(write_results(results, tmp_path / "r.parquet")).to_pylist()
    assert [(d["path"], d["label"], d["probabilities"]) for d in rows] == [(r.path, r.label, r.probabilities) for r in results]
    assert not list(tmp_path.glob(".*part*"))  # atomic: no temporary file left


def test_cli_jobs_and_out(tone_data, tmp_path):
    one = run_cli("predict", tone_data, "--format", "json")
    two = run_cli("predict", tone_data, "--format", "json", "--jobs", "2", "--out", tmp_path / "r.jsonl")
    assert one.returncode == two.returncode == 0, two.stderr
    assert one.stdout == two.stdout
    assert [json.loads(l) for l in (tmp_path / "r.jsonl").read_text().splitlines()] == json.loads(one.stdout)
    bad = run_cli("predict", tone_data, "--out", tmp_path / "r.txt")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and ".jsonl or .parquet" in bad.stderr
