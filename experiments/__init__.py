"""Finished experiments: each answered one question (experiments/README.md; the narrative in
experiments/LOG.md). Kept so that an answer can be re-checked, not maintained as benchmarks are.

A package so that scripts share code by import, not through ``sys.path``: run each from the
repository root as ``python -m experiments.NAME [ARGS]``.
"""
