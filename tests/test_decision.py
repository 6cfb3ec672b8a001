"""Families and the answer rule (instrec.decision)."""

import numpy as np
import pytest

from instrec.decision import (UNKNOWN, decide, default_families, family_lookup, family_matrix, read_families_csv,
                              resolve_families)
from instrec.errors import DataError, ParameterError

SHIPPED = ["cello", "flute", "oboe", "saxophone", "trumpet", "viola", "violin"]


def test_default_families_restrict_the_table_and_give_other_classes_their_own():
    assert default_families(SHIPPED) == {"bowed-strings": ["cello", "viola", "violin"],
                                         "woodwinds": ["flute", "oboe", "saxophone"], "brass": ["trumpet"]}
    fams = default_families(["kazoo", "sax", UNKNOWN, "contrabass"])  # aliases count: sax, contrabass
    assert fams == {"kazoo": ["kazoo"], "woodwinds": ["sax"], UNKNOWN: [UNKNOWN], "bowed-strings": ["contrabass"]}


def test_a_table_of_ones_own():
    fams = resolve_families(SHIPPED, {"Strings": ["Cello", "viola", "violin", "banjo"], "winds": ["flute", "oboe"]})
    # names normalised, members matched as labels, non-classes left out, the rest their own families
    assert fams == {"strings": ["cello", "viola", "violin"], "winds": ["flute", "oboe"],
                    "saxophone": ["saxophone"], "trumpet": ["trumpet"]}
    with pytest.raises(ParameterError, match="'cello' is in two families"):
        resolve_families(SHIPPED, {"a": ["cello"], "b": ["cello"]})
    with pytest.raises(ParameterError, match="reserved"):
        resolve_families(SHIPPED, {"unknown": ["cello"]})
    with pytest.raises(ParameterError, match="family of its own"):
        resolve_families(["a", UNKNOWN], {"noise": [UNKNOWN, "a"]})


def test_family_matrix_sums_member_probabilities():
    fams = default_families(SHIPPED)
    names, M = family_matrix(SHIPPED, fams)
    P = np.random.default_rng(0).dirichlet(np.ones(len(SHIPPED)), size=5)
    F = P @ M
    assert np.allclose(F.sum(axis=1), 1)
    assert np.allclose(F[:, names.index("bowed-strings")], P[:, [0, 5, 6]].sum(axis=1))
    assert family_lookup(fams)["viola"] == "bowed-strings" and family_lookup(fams)[UNKNOWN] == UNKNOWN


def test_decide():
    p = {"cello": 0.55, "flute": 0.45}
    assert decide(p) == "cello" and decide(p, 0.5) == "cello"
    assert decide(p, 0.6) == UNKNOWN  # in doubt
    assert decide(p, 0.0) == "cello"  # 0: never for doubt
    assert decide({"cello": 0.2, UNKNOWN: 0.7, "flute": 0.1}) == UNKNOWN  # the unknown class wins
    assert decide({"cello": 0.9, UNKNOWN: 0.1}, 0.95) == UNKNOWN


def test_read_families_csv(tmp_path):
    f = tmp_path / "families.csv"
    f.write_text("instrument,family\n# my taxonomy\nCello,low strings\n\ndouble bass,low strings\nflute,winds\n")
    assert read_families_csv(f) == {"low-strings": ["cello", "double-bass"], "winds": ["flute"]}
    for text, words in (("cello\n", "two fields"), ("cello,a\ncello,b\n", "two families"), ("# nothing\n", "no instrument")):
        f.write_text(text)
        with pytest.raises(DataError, match=words):
            read_families_csv(f)
    with pytest.raises(DataError, match="no such families file"):
        read_families_csv(tmp_path / "none.csv")
