"""ONNX export and the onnxruntime engine: same probabilities as torch, self-describing files,
no torch at prediction time, one-line errors for bad files."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from instrec import export as onnx_export
from instrec.assets import shipped_model_path
from instrec.classifier import InstrumentClassifier
from instrec.data import load_dataset
from instrec.errors import BundleError, ParameterError
from instrec.features import compute, compute_file, extract
from instrec.models.frontend import LogMel
from instrec.engines.onnx_engine import EXPORT_KEY, META_KEY, OnnxEngine
from instrec.export import ensure_onnx, export_onnx, is_up_to_date, onnx_path_for
from instrec.recipes import get_recipe

from conftest import SR, real_data_or_skip, tone

# max abs difference of probabilities, torch vs onnxruntime: 1e-6 to 1e-5 on a quiet machine; a
# CI run under load saw up to 7e-4 for the cnn (torch's kernels vary with the threads it gets)
TOL = 1e-3


@pytest.fixture(scope="module")
def shipped():
    """The shipped cnn in both engines; the .onnx is the one in the package."""
    return InstrumentClassifier.load(shipped_model_path()), OnnxEngine(onnx_path_for(shipped_model_path()))


@pytest.fixture(scope="module")
def mfcc_bundle(tone_data, tmp_path_factory):
    """A seed-mfcc model (standardisation inside) trained briefly on the tone clips, saved as a bundle."""
    recipe = get_recipe("seed-mfcc").with_overrides(epochs=40)
    ds = load_dataset(tone_data)
    X, ok, _ = extract([c.path for c in ds.clips], recipe.feature)
    clf = InstrumentClassifier(recipe, seed=0).fit(X, [ds.clips[i].label for i in ok])
    return clf.save(tmp_path_factory.mktemp("mfcc") / "bundle"), X


def _max_diff(a, b) -> float:
    assert a.shape == b.shape
    return float(np.abs(a - b).max())


# -- the same probabilities ------------------------------------------------------------------
@pytest.mark.realdata
def test_cnn_agrees_on_philharmonia_clips(shipped):
    root = real_data_or_skip()
    clf, engine = shipped
    files = [f for d in sorted(p for p in root.iterdir() if p.is_dir()) for f in sorted(d.glob("*.mp3"))[:10]]
    assert len(files) >= 50
    X = np.stack([compute_file(f, engine.feature) for f in files])
    p_torch, p_onnx = clf.predict_proba(X), engine.predict_proba(X)
    assert _max_diff(p_torch, p_onnx) < TOL
    assert np.mean(p_torch.argmax(1) == p_onnx.argmax(1)) >= 0.98  # the same answers
    assert np.allclose(p_onnx.sum(1), 1, atol=1e-5)


def test_cnn_agrees_on_rendered_clips(shipped, rendered_data):
    clf, engine = shipped
    ds = load_dataset(rendered_data)
    X, ok, skipped = extract([c.path for c in ds.clips], engine.feature)
    assert not skipped and len(X) == 24
    assert _max_diff(clf.predict_proba(X), engine.predict_proba(X)) < TOL


def test_dynamic_batch(shipped):
    clf, engine = shipped
    rng = np.random.default_rng(7)
    X = np.stack([compute(tone(kind, float(rng.uniform(100, 1000)), seconds=float(rng.uniform(0.5, 4)), seed=i),
                          engine.feature) for i, kind in enumerate(["sine", "square", "saw"] * 24)])
    many = engine.predict_proba(X)  # 72 rows: more than one slice of the engine's batches
    assert many.shape == (72, len(engine.classes)) and many.dtype == np.float32
    assert _max_diff(many, clf.predict_proba(X)) < TOL
    for i in (0, 35, 71):
        assert _max_diff(engine.predict_proba(X[i : i + 1]), many[i : i + 1]) < 1e-5
    assert _max_diff(engine.predict_proba(X[5]), many[5:6]) < 1e-5  # one row without a batch axis
    assert engine.predict_proba(X[:0]).shape == (0, len(engine.classes))
    with pytest.raises(ParameterError, match=str(engine.feature.dim)):
        engine.predict_proba(X[:, :1000])


def test_mfcc_model_exported_and_compared(mfcc_bundle, tmp_path):
    bundle, X = mfcc_bundle
    clf = InstrumentClassifier.load(bundle)
    out = export_onnx(bundle, tmp_path / "sub" / "mfcc.onnx")
    engine = OnnxEngine(out)
    assert engine.name == "onnx" and engine.classes == clf.classes and engine.feature == clf.recipe.feature
    assert engine.feature.kind == "mfcc" and engine.feature.dim == 40
    assert _max_diff(clf.predict_proba(X), engine.predict_proba(X)) < TOL
    # a classifier object exports the same way (no bundle: no weights hash)
    from_object = OnnxEngine(export_onnx(clf, tmp_path / "obj.onnx"))
    assert _max_diff(from_object.predict_proba(X), engine.predict_proba(X)) < 1e-6
    assert from_object.export_info["weights_sha256"] is None


def test_logmel_matmul_formulation_matches_torch_stft():
    """The export's STFT (matrix products) against torch.stft, for sizes that factor well or not."""
    y = torch.from_numpy(np.stack([tone("saw", 330, seconds=1.5), 0.01 * tone("square", 97, seconds=1.5)]))
    for n_fft, hop in ((2048, 512), (1024, 300), (1000, 256), (2047, 512)):
        lm = LogMel(sr=SR, n_fft=n_fft, hop_length=hop, n_mels=40)
        spec = torch.stft(y, n_fft, hop, window=lm.window, center=True, pad_mode="constant", return_complex=True)
        ref = lm.mel_basis @ spec.abs().square()
        got = lm.mel_by_matmul(y)
        assert got.shape == ref.shape
        assert ((got - ref).abs() / ref.amax(dim=(1, 2), keepdim=True)).max() < 1e-5, (n_fft, hop)


# -- the file ---------------------------------------------------------------------------------
def test_export_is_self_describing_and_quiet(shipped, tmp_path, capfd, recwarn):
    clf, _ = shipped
    out = export_onnx(shipped_model_path(), tmp_path / "cnn.onnx")
    assert capfd.readouterr() == ("", "") and not [str(w.message) for w in recwarn]
    assert 0.5e6 < out.stat().st_size < 3e6
    assert not list(tmp_path.glob(".*part*"))  # the atomic write left nothing behind
    model = onnx.load(str(out))
    props = {p.key: p.value for p in model.metadata_props}
    meta, info = json.loads(props[META_KEY]), json.loads(props[EXPORT_KEY])
    assert meta == json.loads((shipped_model_path() / "model.json").read_text())
    assert info["input"]["name"] == "features" and info["output"]["columns"] == clf.classes
    (inp,), (outp,) = model.graph.input, model.graph.output
    assert (inp.name, outp.name) == ("features", "probabilities")
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", clf.recipe.feature.dim]
    assert not {n.op_type for n in model.graph.node} & {"STFT", "DFT"}  # the front end is matrix products


def test_shipped_onnx_is_up_to_date(monkeypatch):
    bundle = shipped_model_path()
    path = onnx_path_for(bundle)
    assert path.is_file(), "export it: python -c 'from instrec.export import ensure_onnx; from instrec.assets import shipped_model_path as s; ensure_onnx(s())'"
    assert is_up_to_date(path, bundle), "src/instrec/assets/model/model.onnx is stale: export it again"
    assert path.stat().st_size < 3 * 2**20
    monkeypatch.setattr(onnx_export, "_export_bytes", _no_export)
    assert ensure_onnx(bundle) == path


def _no_export(*a, **k):
    raise AssertionError("exported although the file was up to date")


def test_ensure_onnx_exports_once_and_again_when_weights_change(mfcc_bundle, tmp_path, monkeypatch):
    bundle, X = mfcc_bundle
    copy = tmp_path / "bundle"
    clf = InstrumentClassifier.load(bundle)
    clf.save(copy)
    first = ensure_onnx(copy)
    assert first == copy / "model.onnx" and is_up_to_date(first, copy)
    with monkeypatch.context() as m:
        m.setattr(onnx_export, "_export_bytes", _no_export)
        assert ensure_onnx(copy) == first
    # new weights (save replaces the folder; put the old export back): stale, exported again
    old = first.read_bytes()
    with torch.no_grad():
        clf.net_.net[-1].bias += 1.0
    clf.save(copy)
    stale = copy / "model.onnx"
    stale.write_bytes(old)
    assert not is_up_to_date(stale, copy)
    again = ensure_onnx(copy)
    assert is_up_to_date(again, copy)
    assert _max_diff(OnnxEngine(again).predict_proba(X), clf.predict_proba(X)) < TOL


def test_ensure_onnx_falls_back_to_a_cache_when_the_folder_is_read_only(mfcc_bundle, tmp_path, monkeypatch):
    bundle, X = mfcc_bundle
    copy = InstrumentClassifier.load(bundle).save(tmp_path / "ro")
    write = onnx_export._write

    def refuse_bundle(path, data):
        if path.parent == copy:
            raise PermissionError(13, "Permission denied", str(path))
        return write(path, data)

    monkeypatch.setattr(onnx_export, "_write", refuse_bundle)
    monkeypatch.setattr(onnx_export.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    got = ensure_onnx(copy)
    assert got.parent.parent == tmp_path / "tmp" and not (copy / "model.onnx").exists()
    assert is_up_to_date(got, copy)
    monkeypatch.setattr(onnx_export, "_export_bytes", _no_export)
    assert ensure_onnx(copy) == got  # made once


def test_onnx_engine_imports_no_torch(shipped, mfcc_bundle):
    bundle, _ = mfcc_bundle
    ensure_onnx(bundle)
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from instrec.engines.onnx_engine import OnnxEngine
        from instrec.export import ensure_onnx
        from instrec.features import compute
        t = np.arange(22050 * 2) / 22050
        y = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for path in (ensure_onnx({str(shipped_model_path())!r}), ensure_onnx({str(bundle)!r})):
            e = OnnxEngine(path)
            p = e.predict_proba(compute(y, e.feature))
            assert p.shape == (1, len(e.classes)) and abs(p.sum() - 1) < 1e-5
        bad = [m for m in ("torch", "onnx") if m in sys.modules]
        assert not bad, bad
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


# -- bad files ----------------------------------------------------------------------------------
def _foreign_onnx(path, props=None):
    node = helper.make_node("Identity", ["features"], ["probabilities"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 2])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in (props or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, str(path))
    return path


def test_bad_onnx_files_are_one_line_bundle_errors(shipped, tmp_path):
    good = onnx_path_for(shipped_model_path()).read_bytes()
    cases = {
        "missing.onnx": None,
        "garbage.onnx": b"this is not a protobuf at all" * 10,
        "truncated.onnx": good[: len(good) // 3],
        "empty.onnx": b"",
    }
    for name, data in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(BundleError) as e:
            OnnxEngine(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value), name

    foreign = _foreign_onnx(tmp_path / "foreign.onnx")
    with pytest.raises(BundleError, match="not an instrec model") as e:
        OnnxEngine(foreign)
    assert str(foreign) in str(e.value)
    for props, words in (({META_KEY: "{not json"}, "not valid JSON"),
                         ({META_KEY: json.dumps({"format": "other"})}, "not an instrec model description"),
                         ({META_KEY: json.dumps({"format": "instrec-model"}), EXPORT_KEY: json.dumps({"format_version": 99})},
                          "format 99 is not supported"),
                         ({META_KEY: json.dumps({"format": "instrec-model", "classes": ["a", "b"]}),
                           EXPORT_KEY: json.dumps({"format_version": 1})}, "does not match the model schema")):
        path = _foreign_onnx(tmp_path / "meta.onnx", props)
        with pytest.raises(BundleError, match=words) as e:
            OnnxEngine(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)

    with pytest.raises(BundleError, match="has no exported model.onnx"):
        OnnxEngine(tmp_path)  # a folder without model.onnx


def test_export_argument_errors(mfcc_bundle, tmp_path):
    bundle, _ = mfcc_bundle
    with pytest.raises(ParameterError, match="opset"):
        export_onnx(bundle, tmp_path / "x.onnx", opset=9)
    with pytest.raises(ParameterError, match="model folder or an InstrumentClassifier"):
        export_onnx(42, tmp_path / "x.onnx")
    with pytest.raises(BundleError, match="no such model folder"):
        export_onnx(tmp_path / "nope", tmp_path / "x.onnx")
    with pytest.raises(ParameterError, match="not trained"):
        export_onnx(InstrumentClassifier("seed-mfcc"), tmp_path / "x.onnx")
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*"))


def test_cli_export_and_predict_with_the_onnx_engine(mfcc_bundle, tone_data, tmp_path):
    """`instrec export` writes a file that `predict --model x.onnx` and `--engine onnx` run, with the
    probabilities of the torch engine."""
    from conftest import run_cli

    mfcc_bundle = mfcc_bundle[0]
    out = tmp_path / "m.onnx"
    r = run_cli("export", mfcc_bundle, "--onnx", out)
    assert r.returncode == 0, r.stderr
    assert "exported" in r.stdout and out.is_file()
    clips = sorted(tone_data.rglob("*.wav"))[::7]
    runs = {}
    for name, args in {"torch": (), "onnx-file": ("--model", out), "onnx-engine": ("--model", mfcc_bundle, "--engine", "onnx")}.items():
        if name == "torch":
            args = ("--model", mfcc_bundle)
        r = run_cli("predict", *args, *clips, "--format", "json")
        assert r.returncode == 0, r.stderr
        runs[name] = json.loads(r.stdout)
    for name in ("onnx-file", "onnx-engine"):
        assert len(runs[name]) == len(runs["torch"]) == len(clips)  # none skipped by one engine only
        for a, b in zip(runs["torch"], runs[name]):
            assert a["path"] == b["path"] and a["label"] == b["label"]
            assert max(abs(a["probabilities"][c] - b["probabilities"][c]) for c in a["probabilities"]) < 1e-4
    bad = run_cli("export", tmp_path / "nope", "--onnx", out)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1


# -- where an export may be written ----------------------------------------------------------
def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_export_refuses_outputs_that_would_damage_a_model_or_a_file(mfcc_bundle, tmp_path):
    """Never over the bundle's own model.json or weights, nor into the shipped model's folder,
    another model's folder, a folder, or a file that is not an instrec export; an earlier export
    and the bundle's own model.onnx are replaced as before."""
    import shutil

    from instrec.assets import SHIPPED_MODEL

    bundle = tmp_path / "m1"
    shutil.copytree(mfcc_bundle[0], bundle)
    other = tmp_path / "m2"
    shutil.copytree(mfcc_bundle[0], other)
    before, shipped_before = _snapshot(bundle), _snapshot(SHIPPED_MODEL)
    text = tmp_path / "afile"
    text.write_text("my notes\n")
    foreign = _foreign_onnx(tmp_path / "foreign.onnx")
    foreign_bytes = foreign.read_bytes()
    refused = {
        bundle / "model.json": "inside the model folder", bundle / "model.safetensors": "inside the model folder",
        bundle / "other.onnx": "inside the model folder", bundle / "sub" / "x.onnx": "inside the model folder",
        bundle: "is a folder", tmp_path: "is a folder",
        SHIPPED_MODEL / "model.onnx": "shipped model", SHIPPED_MODEL / "x.onnx": "shipped model",
        other / "model.onnx": "another model folder", other / "model.json": "another model folder",
        text: "not an instrec ONNX export", foreign: "not an instrec ONNX export",
    }
    for out, words in refused.items():
        with pytest.raises(ParameterError, match=words) as e:
            export_onnx(bundle, out)
        assert str(out) in str(e.value) and "\n" not in str(e.value), out
    with pytest.raises(ParameterError, match="shipped model"):
        export_onnx(shipped_model_path(), onnx_path_for(shipped_model_path()))
    # review: an export to x.txt was written (and read back as a folder); an export exported again
    # said "no such model folder"
    with pytest.raises(ParameterError, match="name the export FILE.onnx"):
        export_onnx(bundle, tmp_path / "x.txt")
    assert not (tmp_path / "x.txt").exists()
    onnx = export_onnx(bundle, tmp_path / "first.onnx")
    with pytest.raises(ParameterError, match="is an ONNX export already"):
        export_onnx(onnx, tmp_path / "second.onnx")
    with pytest.raises(ParameterError, match="another model folder"):  # a classifier's export into a model folder
        export_onnx(InstrumentClassifier.load(bundle), other / "model.onnx")
    assert _snapshot(bundle) == before and _snapshot(other) == before and _snapshot(SHIPPED_MODEL) == shipped_before
    assert text.read_text() == "my notes\n" and foreign.read_bytes() == foreign_bytes
    # what is allowed: the bundle's own model.onnx, an earlier export replaced, an empty file
    assert export_onnx(bundle, bundle / "model.onnx") == bundle / "model.onnx" and is_up_to_date(bundle / "model.onnx", bundle)
    out = export_onnx(bundle, tmp_path / "m.onnx")
    assert export_onnx(bundle, out) == out and OnnxEngine(out).classes == ["saw", "sine", "square"]
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    assert export_onnx(bundle, empty) == empty and empty.stat().st_size > 0


def test_cli_export_over_the_bundle_is_one_line_exit_2(mfcc_bundle, tmp_path):
    import shutil

    from conftest import error_lines, run_cli

    bundle = tmp_path / "m1"
    shutil.copytree(mfcc_bundle[0], bundle)
    before = _snapshot(bundle)
    for out in (bundle / "model.json", bundle / "model.safetensors", bundle):
        r = run_cli("export", bundle, "--onnx", out)
        assert r.returncode == 2 and "exported" not in r.stdout, r.stdout
        lines = error_lines(r.stderr)
        assert len(lines) == 1 and str(out) in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert _snapshot(bundle) == before
    r = run_cli("export", "shipped", "--onnx", onnx_path_for(shipped_model_path()))
    assert r.returncode == 2 and "shipped model's own folder" in r.stderr


def test_export_carries_the_held_back_split(tone_data, tmp_path):
    """An export of a model folder carries its split.json: evaluating the .onnx (as a path or a
    loaded Model) on the training folder scores the same held-back clips as the folder."""
    from instrec import load_model
    from instrec.export import HELD_BACK_KEY
    from instrec.pipeline import evaluate_model, train_model

    result = train_model(tone_data, recipe=get_recipe("seed-mfcc").with_overrides(epochs=40), out=tmp_path / "m", seed=0)
    split = json.loads((tmp_path / "m" / "split.json").read_text())
    out = export_onnx(tmp_path / "m", tmp_path / "m.onnx")
    assert OnnxEngine(out).export_info[HELD_BACK_KEY] == {"roots": split["roots"], "test": split["test"]}
    folder, _ = evaluate_model(tmp_path / "m", tone_data)
    assert folder["n"] == len(split["test"]) == 6 and "training_clips" not in folder
    for model in (out, load_model(out), load_model(tmp_path / "m", engine="onnx")):
        m, _ = evaluate_model(model, tone_data, out=tmp_path / "rep")
        assert m["n"] == 6 and m["accuracy"] == folder["accuracy"] and "training_clips" not in m, model
        context = json.loads((tmp_path / "rep" / "metrics.json").read_text())["context"]
        assert context["evaluated on"].startswith("held-back test split")
    # an export without the record (from the classifier in memory) says the figures include training clips
    bare = export_onnx(result.model, tmp_path / "bare.onnx")
    assert HELD_BACK_KEY not in OnnxEngine(bare).export_info
    m, _ = evaluate_model(bare, tone_data, out=tmp_path / "rep2")
    assert m["n"] == 30 and m["training_clips"] == {"n": 30, "of": 30, "held_back_record": False}
    context = json.loads((tmp_path / "rep2" / "metrics.json").read_text())["context"]
    assert "the figures include training clips" in context["evaluated on"]


def test_torch_engine_on_an_onnx_file_is_refused_in_one_line():
    """An exported graph has no torch weights: ``engine="torch"`` on it once ran onnxruntime silently."""
    from instrec.errors import ParameterError
    from instrec.inference import load_model

    onnx = onnx_path_for(shipped_model_path())
    with pytest.raises(ParameterError, match=r"^an \.onnx file runs on onnxruntime; use --engine onnx or auto, "
                                             r"or give the model folder for torch$"):
        load_model(onnx, engine="torch")
    assert load_model(onnx, engine="onnx").engine.name == load_model(onnx).engine.name == "onnx"
