"""A seed out of range, given to train_model, cross_validate or the command line's train: one line
(instrec.data.splits.check_seed's), before any data is read, never a numpy or scikit-learn traceback."""

import pytest

from conftest import error_lines, run_cli
from instrec.errors import ParameterError
from instrec.pipeline import KFold, LeaveOneSourceOut, cross_validate, train_model

LINE = "seed must be an integer from 0 to 4294967295, got {}"


@pytest.mark.parametrize("bad", [-1, 2**32, True])
def test_train_model_and_cross_validate_check_the_seed_first(bad, tmp_path):
    """Review item 1: train_model(seed=-1) and cross_validate(seed=-1 / KFold(3, seed=-1)) raised
    scikit-learn's and numpy's errors, after computing every feature. The data here does not exist:
    the seed is refused before it is looked for."""
    missing = tmp_path / "no such folder"
    with pytest.raises(ParameterError, match=f"^{LINE.format(bad)}$"):
        train_model(missing, recipe="mfcc-linear", seed=bad)
    for cv in (3, LeaveOneSourceOut()):
        with pytest.raises(ParameterError, match=f"^{LINE.format(bad)}$"):
            cross_validate(missing, recipe="mfcc-linear", cv=cv, seed=bad)
    with pytest.raises(ParameterError, match=f"^{LINE.format(bad)}$"):
        cross_validate(missing, recipe="mfcc-linear", cv=KFold(3, seed=bad))


@pytest.mark.parametrize("args, shown", [(("--epochs", "1", "--seed", "-1", "--out", "mg"), "-1"),
                                         (("--cv", "3", "--seed", "99999999999"), "99999999999"),
                                         (("--cv", "3", "--seed", "-1"), "-1")])
def test_train_on_the_command_line_says_one_line(args, shown, tone_data, tmp_path):
    r = run_cli("train", tone_data, "--recipe", "mfcc-linear", *args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert error_lines(r.stderr) == [f"instrec: error: {LINE.format(shown)}"], r.stderr
    assert not (tmp_path / "mg").exists()
