"""The activity table (who plays when) read back as the manifest's labels are."""

from __future__ import annotations

from instrec.data import activity as A


def test_activity_labels_and_paths_are_read_as_the_manifests(tmp_path):
    """A hand-written activity.csv spelling 'Cello', 'sax' or 'French Horn', or a Windows path, names
    the manifest's classes and clips: frame scores had silently lost those instruments."""
    (tmp_path / "activity.csv").write_text("path,label,start,end\n"
                                           "sub\\a.wav,Cello,0,1\n"
                                           "sub\\a.wav,sax,0.5,2\n"
                                           "b.wav,French Horn,0,1\n"
                                           "b.wav,french_horn,1,2\n")
    spans = A.read_activity(tmp_path / "activity.csv")
    assert spans == {"sub/a.wav": {"cello": [(0.0, 1.0)], "saxophone": [(0.5, 2.0)]},
                     "b.wav": {"french-horn": [(0.0, 2.0)]}}
    # the data's aliases apply as they do to its manifest
    assert A.read_activity(tmp_path / "activity.csv", {"french horn": "horn"})["b.wav"] == {"horn": [(0.0, 2.0)]}
