"""``pip install instrec`` without extras predicts and evaluates through onnxruntime; a command
whose extra is missing says which one to install, in one line.

Each check runs in a fresh interpreter in which the optional packages cannot be imported (an
import hook refuses them), as in an environment where they were never installed.
"""

import json
import subprocess
import sys
import textwrap

from conftest import error_lines, tone, write

OPTIONAL = ("torch", "safetensors", "onnx", "fluidsynth", "fastapi", "uvicorn", "starlette", "multipart", "matplotlib")


def _without_extras(argv: list[str]) -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        import importlib.abc, sys
        BLOCKED = {OPTIONAL!r}
        class Refuse(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        sys.meta_path.insert(0, Refuse())
        from instrec.cli import main
        try:
            main({argv!r})
        finally:
            print("LOADED:" + ",".join(sorted(m for m in BLOCKED if m in sys.modules)), file=sys.stderr)
            print("SKLEARN:" + str("sklearn" in sys.modules), file=sys.stderr)
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_predict_with_the_shipped_model_needs_no_extra(tmp_path):
    clip = write(tmp_path / "a.wav", tone("saw", 440.0, seconds=2.0))
    r = _without_extras(["predict", str(clip), "--format", "json"])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out[0]["label"] in out[0]["probabilities"] and abs(sum(out[0]["probabilities"].values()) - 1) < 1e-4
    assert "LOADED:\n" in r.stderr + "\n"  # not one optional package was imported
    # review: predicting imported scikit-learn (1 of its 1.7 s start-up) through the training code
    assert "SKLEARN:False" in r.stderr


def test_evaluate_needs_no_extra_and_leaves_the_picture_out(tmp_path):
    for label, kind in (("cello", "saw"), ("flute", "sine")):
        for k, f in enumerate((220.0, 330.0)):
            write(tmp_path / "data" / label / f"{k}.wav", tone(kind, f, seconds=2.0))
    r = _without_extras(["evaluate", "shipped", str(tmp_path / "data"), "--out", str(tmp_path / "rep")])
    assert r.returncode == 0, r.stderr
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert metrics["n"] == 4 and "instrec[plot]" in metrics["context"]["confusion_matrix.png"]
    assert not (tmp_path / "rep" / "confusion_matrix.png").exists()
    # the reliability diagram too, with a line saying so; the figures are there all the same
    assert "instrec[plot]" in metrics["context"]["reliability.png"] and not (tmp_path / "rep" / "reliability.png").exists()
    assert metrics["ece"] is not None and metrics["family"]["n"] == 4
    assert "**reliability.png**: not drawn" in (tmp_path / "rep" / "report.md").read_text()


def test_a_command_whose_extra_is_missing_names_it(tmp_path):
    for argv, extra in ((["train", str(tmp_path), "--out", str(tmp_path / "m")], "train"),
                        (["render", str(tmp_path / "r"), "--per-class", "1"], "render"),
                        (["serve", "--port", "0"], "serve")):
        write(tmp_path / "cello" / "a.wav", tone("saw", 220.0, seconds=1.0))
        write(tmp_path / "flute" / "a.wav", tone("sine", 440.0, seconds=1.0))
        r = _without_extras(argv)
        lines = [l for l in error_lines(r.stderr) if not l.startswith(("LOADED:", "SKLEARN:"))]
        assert r.returncode == 1 and len(lines) == 1, (argv, r.stderr)
        assert f"pip install 'instrec[{extra}]'" in lines[0], lines[0]
