"""Progress reports of the pipeline's steps: a factory ``progress(description, total) -> update(done, total)``.

Apart from :mod:`instrec.pipeline.common` so that predicting imports no training code (scikit-learn
alone takes a second to import)."""

from __future__ import annotations

from typing import Callable

Progress = Callable[[str, int], Callable[[int, int], None]]


def bar(progress: Progress | None, text: str, total: int):
    """``progress(text, total)``, or None without a progress factory."""
    return progress(text, total) if progress else None
