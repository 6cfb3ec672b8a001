"""Fuzz targets of instrec, shared by ``tests/test_fuzz.py`` (short, reproducible) and
``python -m fuzz.fuzz_audio`` (the long run); run both from the repository root.

A target is a hypothesis strategy that draws a *case* (a dict of JSON-able values and bytes, so a
case is its own reproducer) and a ``check(case, ctx)`` that runs instrec on it and raises
:class:`~fuzz.harness.PropertyViolation` when instrec answered but broke the target's property,
or lets escape whatever instrec raised that is not an :class:`~instrec.errors.InstrecError` (a
crash). An InstrecError with a clear one-line message is a correct refusal.

Modules: ``harness`` (Context, Target, case files), ``generators`` (seed files, mutations,
signals), one ``*_targets`` module per thing fuzzed (audio, inference, feature, bundle, manifest,
service), ``targets`` (the registry), ``fuzz_audio`` (the long run).
"""
