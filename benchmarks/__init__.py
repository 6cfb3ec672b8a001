"""The benchmarks behind instrec's standing claims (README.md, benchmarks/RESULTS.md).

A package so that scripts share code by import, not through ``sys.path``: run each from the
repository root as ``python -m benchmarks.NAME [ARGS]``.
"""
