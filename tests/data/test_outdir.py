"""The output folders of render, render-music and mix (:mod:`instrec.data.outdir`)."""

import pytest

from instrec.data.outdir import out_path
from instrec.errors import ParameterError


def test_an_out_dir_under_a_file_is_a_usage_error(tmp_path):
    """``instrec render afile/sub`` failed at 'cannot write afile/sub/.instrec-run.json' (exit 1),
    after the command had started."""
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ParameterError, match=r"OUT_DIR: .*afile is a file, not a folder"):
        out_path(tmp_path / "afile" / "sub" / "deeper", "OUT_DIR")
    assert out_path(tmp_path / "new" / "sub", "OUT_DIR") == tmp_path / "new" / "sub"  # parents are made


def test_an_empty_out_dir_is_refused():
    with pytest.raises(ParameterError, match="OUT_DIR is empty"):
        out_path("  ", "OUT_DIR")
