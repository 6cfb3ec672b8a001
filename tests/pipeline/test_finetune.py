"""Fine-tuning a trained model on new data (``fit(init=...)``, ``instrec train --from``): it starts
from the model's weights and input statistics, maps the output rows by class name, and learns."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from instrec.classifier import InstrumentClassifier
from instrec.errors import ParameterError
from instrec.recipes import finetuning, get_recipe

from conftest import error_lines, run_cli


def blobs(classes, n=40, shift=0.0, seed=0, moved=0.0):
    """Feature rows of 40 MFCC-sized values: one Gaussian blob per class, all moved by ``shift``.
    ``moved``: 'another source', where each class's centre lies that share of the way to the next
    class's (cyclically)."""
    rng = np.random.default_rng(seed)
    centres = [np.random.default_rng(sum(map(ord, c))).normal(0, 3, 40) for c in classes]
    centres = [(1 - moved) * c + moved * centres[(i + 1) % len(centres)] for i, c in enumerate(centres)]
    X = np.concatenate([c + shift + rng.normal(0, 1, (n, 40)) for c in centres]).astype(np.float32)
    return X, [c for c in classes for _ in range(n)]


@pytest.fixture(scope="module")
def base():
    recipe = replace(get_recipe("seed-mfcc"), train=replace(get_recipe("seed-mfcc").train, epochs=30))
    return InstrumentClassifier(recipe, seed=0).fit(*blobs(["flute", "oboe", "viola"]))


def test_finetuning_recipe_keeps_features_and_network():
    base = get_recipe("cnn")
    r = finetuning(base)
    # a plain warm start: the base recipe's features, network and schedule (see finetuning's docstring)
    assert (r.name, r.feature, r.model) == (base.name, base.feature, base.model)
    assert r.train == replace(base.train, min_val_per_class=5)  # the one change: no split on a handful of clips
    assert r.description.endswith("fine-tuned from a trained model")
    head = finetuning(base, trainable="output")  # the output layer alone, on its own schedule
    assert head.train == replace(r.train, trainable="output", lr=1e-2, epochs=200)
    with pytest.raises(ParameterError, match="trainable must be all or output"):
        finetuning(base, trainable="head")


@pytest.mark.parametrize("n, held_out", [(10, 0), (40, 18)])
def test_fine_tuning_holds_out_a_validation_split_only_with_enough_clips(base, n, held_out):
    """15% of 3 x 10 rows is 4.5, fewer than 5 a class: no split, every epoch trained, the last
    weights kept. 15% of 3 x 40 is 18, 6 a class: the split and early stopping as in the recipe."""
    r = finetuning(replace(base.recipe, train=replace(base.recipe.train, epochs=8, val_fraction=0.15, patience=3)))
    clf = InstrumentClassifier(r, seed=0).fit(*blobs(["flute", "oboe", "viola"], n=n, seed=6), init=base)
    h = clf.history_
    assert h["validation_rows"] == held_out and len(h["val_accuracy"]) == (h["epochs_run"] if held_out else 0)
    if not held_out:
        assert h["epochs_run"] == h["best_epoch"] == 8


def test_starts_from_the_base_weights_rows_mapped_by_class(base):
    # lr so small that one epoch leaves every weight where fine-tuning put it
    r = finetuning(base.recipe)
    r = replace(r, train=replace(r.train, epochs=1, lr=1e-12))
    X, y = blobs(["oboe", "viola", "horn"], shift=5.0, seed=1)  # new data, other statistics
    clf = InstrumentClassifier(r, seed=3).fit(X, y, init=base)
    assert clf.classes == ["horn", "oboe", "viola"]
    old, new = base.net_.state_dict(), clf.net_.state_dict()
    # the input standardisation is the base model's, not refitted on the new rows
    assert torch.equal(new["scale.mean"], old["scale.mean"]) and torch.equal(new["scale.std"], old["scale.std"])
    out = "net.6"
    for k in old:
        if not k.startswith(out):
            assert torch.allclose(new[k], old[k], atol=1e-9), k
    for c in ("oboe", "viola"):  # known classes keep their rows
        i, j = clf.classes.index(c), base.classes.index(c)
        assert torch.allclose(new[f"{out}.weight"][i], old[f"{out}.weight"][j], atol=1e-9)
        assert torch.allclose(new[f"{out}.bias"][i], old[f"{out}.bias"][j], atol=1e-9)
    h = clf.classes.index("horn")  # a new class starts from a fresh row, no copy of any other
    assert all(not torch.allclose(new[f"{out}.weight"][h], old[f"{out}.weight"][j]) for j in range(3))
    # and so the fine-tuned network answers for the old classes as the base did
    Xo, _ = blobs(["oboe", "viola"], seed=2)
    pb = base.predict_proba(Xo)[:, [base.classes.index("oboe"), base.classes.index("viola")]]
    pc = clf.predict_proba(Xo)[:, [clf.classes.index("oboe"), clf.classes.index("viola")]]
    assert (pb.argmax(1) == pc.argmax(1)).mean() == 1.0


def test_fine_tuning_learns_a_shifted_task_from_few_rows(base):
    """Ten rows a class of the base's classes from 'another source' (each class's centre moved):
    the base model misnames many of them; fine-tuned on ten rows a class, it names them."""
    X, y = blobs(["flute", "oboe", "viola"], n=10, seed=4, moved=0.5)
    Xt, yt = blobs(["flute", "oboe", "viola"], n=50, seed=5, moved=0.5)
    r = finetuning(base.recipe)
    clf = InstrumentClassifier(replace(r, train=replace(r.train, epochs=60)), seed=0).fit(X, y, init=base)
    before = np.mean(np.array(base.predict(Xt)) == yt)
    after = np.mean(np.array(clf.predict(Xt)) == yt)
    assert before < 0.5 and after >= 0.95, (before, after)


@pytest.mark.parametrize("trainable", ["all", "output"])
def test_keep_classes_holds_the_rows_of_classes_without_data(base, trainable):
    """``keep_classes``: the classes are the base's and the data's; a base class without rows keeps
    its output row bit for bit (weight decay included), the others learn. Training only the output
    layer, the base's answers on its kept classes' logits are then the base's (to rounding)."""
    r = finetuning(base.recipe, trainable=trainable)
    r = replace(r, train=replace(r.train, epochs=20, weight_decay=1e-3))
    X, y = blobs(["oboe", "horn"], seed=1)
    clf = InstrumentClassifier(r, seed=0).fit(X, y, init=base, keep_classes=True)
    assert clf.classes == ["flute", "horn", "oboe", "viola"]
    old, new = base.net_.state_dict(), clf.net_.state_dict()
    out = "net.6"
    for c in ("flute", "viola"):  # no data: held
        i, j = clf.classes.index(c), base.classes.index(c)
        assert torch.equal(new[f"{out}.weight"][i], old[f"{out}.weight"][j])
        assert torch.equal(new[f"{out}.bias"][i], old[f"{out}.bias"][j])
    i, j = clf.classes.index("oboe"), base.classes.index("oboe")
    assert not torch.equal(new[f"{out}.weight"][i], old[f"{out}.weight"][j])  # data: it learnt
    assert not clf.net_.output()._forward_pre_hooks and not clf.net_.output().weight._backward_hooks  # the hold is gone
    if trainable == "output":
        with torch.no_grad():
            Xf = torch.from_numpy(blobs(["flute", "viola"], seed=3)[0])
            kept = [clf.classes.index(c) for c in ("flute", "viola")]
            # the same weights; only float rounding may differ (a matrix product's blocking depends
            # on the layer's other rows)
            torch.testing.assert_close(clf.net_(Xf)[:, kept], base.net_(Xf)[:, [base.classes.index(c) for c in ("flute", "viola")]],
                                       rtol=1e-6, atol=1e-6)
    # and without keep_classes they are dropped, as before
    plain = InstrumentClassifier(r, seed=0).fit(X, y, init=base)
    assert plain.classes == ["horn", "oboe"]


def test_keep_classes_with_lbfgs_and_without_init():
    lin = InstrumentClassifier("mfcc-linear", seed=0).fit(np.random.default_rng(0).normal(size=(60, 87)).astype(np.float32),
                                                          ["a", "b", "c"] * 20)
    clf = InstrumentClassifier(finetuning(lin.recipe), seed=0).fit(
        np.random.default_rng(1).normal(size=(40, 87)).astype(np.float32), ["a", "d"] * 20, init=lin, keep_classes=True)
    assert clf.classes == ["a", "b", "c", "d"]
    old, new = lin.net_.state_dict(), clf.net_.state_dict()
    for c in ("b", "c"):
        assert torch.equal(new["net.0.weight"][clf.classes.index(c)], old["net.0.weight"][lin.classes.index(c)])
    with pytest.raises(ParameterError, match="keep_classes"):
        InstrumentClassifier("seed-mfcc").fit(*blobs(["flute", "oboe"]), keep_classes=True)


def test_init_must_match_features_and_network(base):
    X, y = blobs(["flute", "oboe"])
    with pytest.raises(ParameterError, match="other features or another network"):
        InstrumentClassifier("mfcc-stats").fit(np.zeros((80, 87), np.float32), y, init=base)
    with pytest.raises(ParameterError, match="trained InstrumentClassifier"):
        InstrumentClassifier("seed-mfcc").fit(X, y, init=InstrumentClassifier("seed-mfcc"))


def test_fine_tunes_the_shipped_cnn(rendered_data):
    """The shipped cnn, fine-tuned for one epoch on renders of three of its classes: band
    statistics kept, output rows mapped, and it still names the clips it was tuned on."""
    from instrec.assets import shipped_model_path

    from conftest import labelled_features

    shipped = InstrumentClassifier.load(shipped_model_path())
    X, y, skipped, _ = labelled_features(rendered_data, shipped.recipe.feature, cache=False)
    assert not skipped
    r = finetuning(shipped.recipe)
    clf = InstrumentClassifier(replace(r, train=replace(r.train, epochs=1)), seed=0).fit(X, y, init=shipped)
    assert clf.classes == ["cello", "flute", "trumpet"]
    old, new = shipped.net_.state_dict(), clf.net_.state_dict()
    assert torch.equal(new["norm.mean"], old["norm.mean"]) and torch.equal(new["norm.std"], old["norm.std"])
    assert not torch.equal(new["body.0.0.weight"], old["body.0.0.weight"])  # it did train
    assert np.mean(np.array(clf.predict(X)) == y) >= 0.9


def test_the_shipped_single_label_cnn_starts_a_multilabel_one(rendered_data):
    """cnn-multi is the cnn with sigmoid outputs: the shipped (softmax) cnn starts it, its rows
    mapped by class; after one epoch it names the instruments of the clips it was tuned on."""
    from instrec.assets import shipped_model_path

    from conftest import labelled_features

    shipped = InstrumentClassifier.load(shipped_model_path())
    X, y, _, _ = labelled_features(rendered_data, shipped.recipe.feature, cache=False)
    r = finetuning(get_recipe("cnn-multi"))
    clf = InstrumentClassifier(replace(r, train=replace(r.train, epochs=1)), seed=0).fit(X, y, init=shipped)
    assert clf.multilabel and clf.classes == ["cello", "flute", "trumpet"]
    assert torch.equal(clf.net_.state_dict()["norm.mean"], shipped.net_.state_dict()["norm.mean"])
    P = clf.predict_proba(X)
    assert not np.allclose(P.sum(axis=1), 1.0)  # a sigmoid per instrument, not a softmax
    assert np.mean(np.array(clf.classes)[P.argmax(axis=1)] == np.array(y)) >= 0.9
    with pytest.raises(ParameterError, match="other features or another network"):
        InstrumentClassifier(replace(r, model=replace(r.model, channels=(8, 16, 32, 64)))).fit(X, y, init=shipped)


def test_a_recipe_named_with_a_model_to_start_from_is_fine_tuned_and_checked():
    from instrec.assets import shipped_model_path
    from instrec.pipeline import resolve_recipe

    shipped = InstrumentClassifier.load(shipped_model_path())
    r = resolve_recipe("cnn-multi", shipped)
    assert r.model.output == "sigmoid" and r.train == finetuning(get_recipe("cnn-multi")).train
    assert resolve_recipe("cnn-multi", shipped, trainable="output").train.trainable == "output"
    with pytest.raises(ParameterError, match="trained with cnn, whose features or network differ from seed-mfcc"):
        resolve_recipe("seed-mfcc", shipped)
    assert resolve_recipe(get_recipe("cnn-multi"), shipped) == get_recipe("cnn-multi")  # a Recipe: as it is


def test_output_only_fine_tuning_moves_the_output_layer_alone(rendered_data):
    """``trainable="output"``: the shipped cnn tuned on renders of three of its classes keeps every
    other weight and every batch-norm statistic bit for bit, and its output layer learns."""
    from instrec.assets import shipped_model_path

    from conftest import labelled_features

    shipped = InstrumentClassifier.load(shipped_model_path())
    X, y, _, _ = labelled_features(rendered_data, shipped.recipe.feature, cache=False)
    r = finetuning(shipped.recipe)
    r = replace(r, train=replace(r.train, epochs=3, lr=1e-2, trainable="output"))
    clf = InstrumentClassifier(r, seed=0).fit(X, y, init=shipped)
    old, new = shipped.net_.state_dict(), clf.net_.state_dict()
    out = "head.1."
    assert any(k.endswith("running_mean") for k in new)
    for k in old:
        if not k.startswith(out):
            assert torch.equal(new[k], old[k]), k
    rows = [shipped.classes.index(c) for c in clf.classes]  # the rows fine-tuning started from
    assert not torch.allclose(new[out + "weight"], old[out + "weight"][rows])
    assert all(p.requires_grad for p in clf.net_.parameters())  # nothing stays frozen afterwards
    assert np.mean(np.array(clf.predict(X)) == y) >= 0.9


def test_output_only_needs_an_output_layer(base):
    with pytest.raises(ParameterError, match="trainable must be all or output"):
        replace(base.recipe.train, trainable="body")
    from instrec.train import fit_network

    with pytest.raises(ParameterError, match="needs a network with an output layer"):
        fit_network(torch.nn.Linear(40, 3), *blobs(["flute", "oboe", "viola"], n=4)[:1], np.repeat([0, 1, 2], 4),
                    replace(base.recipe.train, epochs=1, trainable="output"))


def test_cli_train_from_shipped(rendered_data, tmp_path):
    model = tmp_path / "tuned"
    r = run_cli("train", rendered_data, "--from", "shipped", "--epochs", "1", "--out", model, "--jobs", "1")
    assert r.returncode == 0, r.stderr
    assert "cnn (epochs 1): test accuracy" in r.stdout  # the recipe with its overridden epochs
    meta = json.loads((model / "model.json").read_text())
    assert meta["classes"] == ["cello", "flute", "trumpet"]
    ft = meta["training"]["fine_tuned_from"]
    assert ft["model"].endswith("model") and len(ft["weights_sha256"]) == 64 and "violin" in ft["classes"]
    # the shipped model's other classes are dropped, and train says which, in one line
    others = sorted(set(ft["classes"]) - {"cello", "flute", "trumpet"})
    assert ft["dropped_classes"] == others and {"oboe", "viola", "unknown"} <= set(others)
    assert (f"dropped the classes of the model it started from that the training data lacks: {', '.join(others)} "
            "(--keep-classes keeps them)") in error_lines(r.stderr)
    assert meta["recipe"]["train"]["epochs"] == 1 and meta["recipe"]["train"]["lr"] == pytest.approx(2e-3)
    # the shipped model knows all three classes: it is scored on every test clip, and the CLI says so
    assert ft["test_split"]["n"] == meta["metrics"]["test_split"]["n"] and 0 <= ft["test_split"]["accuracy"] <= 1
    assert f"the model it started from: accuracy {100 * ft['test_split']['accuracy']:.2f}%" in r.stdout
    # 19 training clips of 3 classes: a 15% split would hold one a class, too few to choose an epoch on
    assert meta["training"]["validation_rows"] == 0 and "validation: none: too few clips" in r.stdout
    p = run_cli("predict", "--model", model, "--format", "json", next(rendered_data.rglob("*.wav")))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)[0]["label"] in meta["classes"]


def test_cli_train_from_shipped_output_layer_only(rendered_data, tmp_path):
    """``--trainable output``: the head-only schedule (lr 1e-2, here 2 epochs), recorded in
    model.json; the saved model differs from the shipped one in its output layer alone."""
    from safetensors.torch import load_file

    from instrec.assets import shipped_model_path

    model = tmp_path / "tuned"
    r = run_cli("train", rendered_data, "--from", "shipped", "--trainable", "output", "--epochs", "2",
                "--out", model, "--jobs", "1")
    assert r.returncode == 0, r.stderr
    meta = json.loads((model / "model.json").read_text())
    train = meta["recipe"]["train"]
    assert (train["trainable"], train["lr"], train["epochs"]) == ("output", pytest.approx(1e-2), 2)
    assert meta["recipe"]["description"].endswith("output layer only")
    old, new = load_file(shipped_model_path() / "model.safetensors"), load_file(model / "model.safetensors")
    assert set(old) == set(new)
    changed = {k for k in old if old[k].shape != new[k].shape or not torch.equal(old[k], new[k])}
    assert changed == {"head.1.weight", "head.1.bias"}


def test_cli_train_from_shipped_keeping_its_classes(rendered_data, tmp_path):
    """``--keep-classes``: the tuned model knows the shipped model's classes; those the renders lack
    keep the shipped model's output rows bit for bit."""
    from safetensors.torch import load_file

    from instrec.assets import shipped_model_path

    model = tmp_path / "tuned"
    r = run_cli("train", rendered_data, "--from", "shipped", "--keep-classes", "--trainable", "output", "--epochs", "1",
                "--out", model, "--jobs", "1")
    assert r.returncode == 0, r.stderr
    meta = json.loads((model / "model.json").read_text())
    shipped = json.loads((shipped_model_path() / "model.json").read_text())["classes"]
    others = sorted(set(shipped) - {"cello", "flute", "trumpet"})
    assert meta["classes"] == shipped and meta["training"]["fine_tuned_from"]["kept_classes"] == others
    assert ("kept the classes of the model it started from that the training data lacks, their output rows as they were: "
            f"{', '.join(others)}") in r.stdout and "dropped" not in r.stderr
    old, new = load_file(shipped_model_path() / "model.safetensors"), load_file(model / "model.safetensors")
    for c in ("oboe", "saxophone", "viola", "violin"):
        assert torch.equal(new["head.1.weight"][meta["classes"].index(c)], old["head.1.weight"][shipped.index(c)])
    assert not torch.equal(new["head.1.weight"][meta["classes"].index("flute")], old["head.1.weight"][shipped.index("flute")])


@pytest.mark.parametrize("extra, code, words", [
    (["--from", "{tmp}/nomodel"], 2, ["nomodel"]),  # no model there: 2, as any bad argument; a damaged bundle: 1
    (["--from", "shipped", "--recipe", "seed-mfcc"], 2, ["cnn", "seed-mfcc", "network"]),
    (["--from", "{tmp}/m.onnx"], 2, ["ONNX"]),
    (["--trainable", "output"], 2, ["--trainable", "--from"]),
    (["--keep-classes"], 2, ["--keep-classes", "--from"]),
], ids=["missing-model", "with-recipe", "onnx", "trainable-without-from", "keep-classes-without-from"])
def test_cli_from_errors_are_one_line(rendered_data, tmp_path, extra, code, words):
    (tmp_path / "m.onnx").write_bytes(b"not really")
    r = run_cli("train", rendered_data, "--out", tmp_path / "out", *[a.format(tmp=tmp_path) for a in extra])
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr and len(error_lines(r.stderr)) == 1
    for w in words:
        assert w in r.stderr
    assert not (tmp_path / "out").exists()


def test_train_model_fine_tunes_a_saved_model(rendered_data, tmp_path):
    """The Python API: ``train_model(..., init=folder)`` takes the saved model's recipe and weights,
    and model.json names the model it started from."""
    from instrec.classifier import fingerprint as _fingerprint
    from instrec.pipeline import load_base_model, train_model

    first = train_model(rendered_data, recipe="seed-mfcc", out=tmp_path / "first", split="stratified", seed=2)
    assert first.model.recipe.name == "seed-mfcc"
    second = train_model(rendered_data, init=tmp_path / "first", out=tmp_path / "second", split="stratified", seed=2)
    assert second.model.recipe.train == replace(first.model.recipe.train, min_val_per_class=5)
    ft = json.loads((tmp_path / "second" / "model.json").read_text())["training"]["fine_tuned_from"]
    assert ft["model"] == str((tmp_path / "first").resolve())
    assert ft["weights_sha256"] == _fingerprint(first.model.net_)
    assert second.context["fine-tuned from"] == ft["model"]
    # the same split, so the start is scored on the very clips the first model was
    assert (ft["test_split"]["accuracy"], ft["test_split"]["n"]) == (first.metrics["accuracy"], first.metrics["n"])
    assert ft["test_split"]["accuracy_new"] == second.metrics["accuracy"]  # every class known to both: as scored
    # the same split, and a start that already knew the clips: no worse than the first model
    assert second.metrics["accuracy"] >= first.metrics["accuracy"]
    with pytest.raises(ParameterError, match="ONNX"):
        load_base_model(tmp_path / "m.onnx")


def test_the_start_is_scored_on_the_classes_it_knows(base):
    """The start and the new model are scored alike: on the test clips of the classes both know,
    each choosing among those alone; fewer than two such classes: no score at all."""
    from instrec.pipeline.training import _score_start, start_words

    new = InstrumentClassifier(get_recipe("seed-mfcc").with_overrides(epochs=5), seed=0).fit(
        *blobs(["flute", "oboe", "horn", "tuba"], n=10, seed=5))
    X, y = blobs(["flute", "oboe", "horn"], n=20, seed=6)
    te = np.arange(len(y))
    got = _score_start(base, new, X, y, te)
    known = [i for i in te if y[i] != "horn"]

    def expect(model):
        P = model.predict_proba(X[known])[:, [model.classes.index("flute"), model.classes.index("oboe")]]
        return np.mean(np.array(["flute", "oboe"])[P.argmax(1)] == np.array(y)[known])

    assert got == {"accuracy": pytest.approx(expect(base)), "accuracy_new": pytest.approx(expect(new)), "n": 40,
                   "classes": ["flute", "oboe"]}
    assert "on the 40 test clips of the 2 classes both know, each choosing among those alone (flute, oboe)" in start_words(got)
    X2, y2 = blobs(["flute", "horn", "tuba"], n=5, seed=7)
    assert _score_start(base, new, X2, y2, np.arange(15)) is None


def test_fine_tuning_keeps_the_base_training_clips_out_of_the_test_split(rendered_data, tmp_path):
    """The clips the model it starts from trained on stay on the training side (a plain split with
    another seed puts some of them in the test split), and model.json and the summary say so."""
    from instrec.data import load_dataset
    from instrec.pipeline import train_model
    from instrec.pipeline.heldback import held_back_record, training_clips

    recipe = get_recipe("seed-mfcc").with_overrides(epochs=3)
    first = train_model(rendered_data, recipe=recipe, out=tmp_path / "first", seed=2)
    trained = {str(c.path.resolve()) for c in training_clips(load_dataset(rendered_data).clips, first.model.info,
                                                             held_back_record(tmp_path / "first"))}
    second = train_model(rendered_data, init=tmp_path / "first", out=tmp_path / "second", seed=5,
                         report_dir=tmp_path / "report")
    test = set(json.loads((tmp_path / "second" / "split.json").read_text())["test"])
    assert test and not test & trained
    split = second.model.info["training"]["split"]
    assert split["base_training_kept_in_training"] == len(trained) and split["n_test"] == first.metrics["n"]
    assert "kept on the training side" in second.context["split"]
    assert "kept on the training side" in (tmp_path / "report" / "report.md").read_text()
    # the overridden epochs are named in the summary, model.json and the report
    assert first.context["recipe"] == "seed-mfcc (epochs 3)" == first.model.info["training"]["recipe_label"]
    assert second.context["recipe"] == "seed-mfcc (epochs 3)"
    assert (tmp_path / "report" / "report.md").read_text().startswith("# seed-mfcc (epochs 3): evaluation")


def test_cross_validation_from_a_model_tests_none_of_its_training_clips(rendered_data, tmp_path):
    """--cv --from: every fold's test clips are ones the starting model did not train on; evaluate's
    report names the recipe with its overridden settings."""
    from instrec.data import load_dataset
    from instrec.pipeline import KFold, cross_validate, evaluate_model, train_model
    from instrec.pipeline.heldback import held_back_record, training_clips

    recipe = get_recipe("seed-mfcc").with_overrides(epochs=2)
    first = train_model(rendered_data, recipe=recipe, out=tmp_path / "first", seed=2)
    clips = load_dataset(rendered_data).clips
    trained = training_clips(clips, first.model.info, held_back_record(tmp_path / "first"))
    res = cross_validate(rendered_data, init=tmp_path / "first", cv=KFold(3, seed=0), seed=0)
    assert sum(f["n_test"] for f in res["folds"]) == len(clips) - len(trained) == first.metrics["n"]
    assert res["context"]["kept out of every test side"].startswith(f"{len(trained)} clips")
    evaluate_model(tmp_path / "first", rendered_data, out=tmp_path / "ev")
    assert (tmp_path / "ev" / "report.md").read_text().startswith("# seed-mfcc (epochs 2): evaluation")


def test_a_split_that_cannot_avoid_the_base_training_clips_says_so():
    """Every group holds a clip the base trained on: the plain split, and the count of them."""
    from instrec.pipeline.training import _split_around_base

    y, groups = ["a", "b"] * 10, [str(i % 5) for i in range(20)]
    tr, te, record = _split_around_base(y, "group", 0.2, 0, groups, [0, 1, 2, 3, 4])
    assert len(tr) + len(te) == 20 and record["base_training_in_test"] == len({0, 1, 2, 3, 4} & set(te.tolist()))
    assert "every clip" in record["why"]
    tr, te, record = _split_around_base(y, "random", 0.2, 0, None, list(range(12)))
    assert set(te.tolist()) <= set(range(12, 20)) and len(te) == 4 and record["drawn_from"] == 8


def test_keep_classes_inherits_the_base_thresholds_and_families():
    """Fine-tuning keeps the base's decision settings: a kept class's threshold (its output row is
    the base's too), and the base's family table unless another is given."""
    from instrec.pipeline.common import fit_and_score

    r = get_recipe("seed-mfcc").with_overrides(epochs=5)
    ml = replace(r, model=replace(r.model, output="sigmoid"))
    X, y = blobs(["flute", "oboe", "viola"], n=20)
    base = InstrumentClassifier(ml, seed=0, families={"winds": ["flute", "oboe"]}).fit(X, y)
    base.thresholds_ = {"flute": 0.3, "oboe": 0.6, "viola": 0.42}
    X2, y2 = blobs(["flute", "oboe"], n=20, seed=3)
    clf, _ = fit_and_score(finetuning(ml), 0, X2, y2, np.arange(30), np.arange(30, 40), init=base, keep_classes=True)
    assert clf.classes == ["flute", "oboe", "viola"] and clf.thresholds_["viola"] == 0.42
    assert clf.families_ == {"winds": ["flute", "oboe"], "viola": ["viola"]}
    X3, y3 = blobs(["flute", "oboe", "horn"], n=10, seed=4)
    clf, _ = fit_and_score(finetuning(ml), 0, X3, y3, np.arange(30), np.arange(0), init=base)
    assert clf.families_ == {"winds": ["flute", "oboe"], "brass": ["horn"]}  # a new class: its default family
    clf, _ = fit_and_score(finetuning(ml), 0, X3, y3, np.arange(30), np.arange(0), init=base, families={"x": ["horn"]})
    assert clf.families_ == {"x": ["horn"], "flute": ["flute"], "oboe": ["oboe"]}


@pytest.mark.parametrize("extra, words", [
    (["--hidden", "16"], "--hidden: fine-tuning keeps the network of the model it starts from (hidden 64,32,16)"),
    (["--hidden", "none"], "--hidden: fine-tuning keeps"),
    (["--activation", "selu"], "--activation: fine-tuning keeps the network of the model it starts from (activation relu)"),
])
def test_network_overrides_with_from_are_refused_up_front(base, tmp_path, extra, words):
    from instrec.pipeline import train_model

    base.save(tmp_path / "m1")
    (tmp_path / "nodata").mkdir()  # there, but holding no audio: the options are checked before the data
    r = run_cli("train", tmp_path / "nodata", "--from", tmp_path / "m1", *extra, "--out", tmp_path / "out")
    assert r.returncode == 2 and words in r.stderr and len(error_lines(r.stderr)) == 1, r.stderr
    with pytest.raises(ParameterError, match="--hidden: fine-tuning keeps"):  # the API too, before any feature
        train_model(tmp_path / "nodata", init=base, recipe=finetuning(base.recipe).with_overrides(hidden=(16,)))


def test_keep_classes_of_an_integer_labelled_model_keeps_its_integers():
    """review: a model trained on integer labels, fine-tuned with keep_classes, ordered its classes
    as strings ("10" before "2") and answered strings, its label values lost."""
    X, y = blobs(["1", "2", "10"], n=30)
    r = get_recipe("seed-mfcc").with_overrides(epochs=10)
    base = InstrumentClassifier(r, seed=0).fit(X, [int(v) for v in y])
    X2, y2 = blobs(["2", "3"], n=30, seed=1)
    clf = InstrumentClassifier(finetuning(r), seed=0).fit(X2, [int(v) for v in y2], init=base, keep_classes=True)
    assert clf.classes == ["1", "2", "3", "10"]
    assert clf.label_values_.tolist() == [1, 2, 3, 10]
    assert all(isinstance(p, (int, np.integer)) for p in clf.predict(X[:3]))


def test_keep_classes_refuses_a_start_of_another_output_in_fit_too(base):
    """review: the pipeline refused keep_classes from a multi-label model into a single-label one
    (and back), fit() accepted it: frozen sigmoid rows inside a softmax."""
    ml = replace(base.recipe, model=replace(base.recipe.model, output="sigmoid"))
    X, y = blobs(["flute", "oboe", "viola"], n=20)
    multi = InstrumentClassifier(ml, seed=0).fit(X, y)
    X2, y2 = blobs(["oboe", "horn"], n=20, seed=1)
    with pytest.raises(ParameterError, match="keep_classes keeps output rows as they were, and a sigmoid"):
        InstrumentClassifier(finetuning(base.recipe), seed=0).fit(X2, y2, init=multi, keep_classes=True)
    with pytest.raises(ParameterError, match="a softmax model's rows mean nothing to a sigmoid one"):
        InstrumentClassifier(finetuning(ml), seed=0).fit(X2, y2, init=base, keep_classes=True)
    assert InstrumentClassifier(finetuning(ml), seed=0).fit(X2, y2, init=base).classes == ["horn", "oboe"]  # without: fine


@pytest.mark.parametrize("init, words", [
    (42, "init must be a trained InstrumentClassifier, a model folder or 'shipped'; got int"),
    (b"m1", "got bytes"),
    (["m1"], "got list"),
    ("", "is an empty name"),
])
def test_a_start_that_names_no_model_is_one_parameter_error(init, words):
    """review: ``init=42`` (or bytes, a list) reached pathlib's TypeError; ``''`` was read as '.'."""
    from instrec.pipeline import load_base_model

    with pytest.raises(ParameterError, match=words):
        load_base_model(init)


def test_cli_from_an_empty_name_is_a_usage_error(tmp_path):
    (tmp_path / "d").mkdir()
    r = run_cli("train", tmp_path / "d", "--from", "", "--out", tmp_path / "m")
    assert r.returncode == 2 and "is an empty name" in r.stderr and len(error_lines(r.stderr)) == 1, r.stderr


def test_the_folder_fine_tuning_starts_from_is_not_its_out(base, tmp_path):
    """``train DATA --from m --out m`` replaced the start model with the new one, silently."""
    base.save(tmp_path / "m1")
    before = (tmp_path / "m1" / "model.safetensors").read_bytes()
    (tmp_path / "nodata").mkdir()
    r = run_cli("train", tmp_path / "nodata", "--from", tmp_path / "m1", "--out", tmp_path / "." / "m1")
    assert r.returncode == 2 and "is the model training starts from" in r.stderr and len(error_lines(r.stderr)) == 1, r.stderr
    assert (tmp_path / "m1" / "model.safetensors").read_bytes() == before
