"""The cnn recipe: front end faithful to librosa, augmentation only in training, a real training run."""

from dataclasses import replace

import librosa
import numpy as np
import pytest
import torch

from instrec import models
from instrec.augment import SpecAugment, WaveAugment
from instrec.classifier import InstrumentClassifier
from instrec.devices import resolve_device
from instrec.errors import ParameterError
from instrec.features import FeatureConfig, compute
from instrec.models.frontend import LogMel
from instrec.recipes import Recipe, get_recipe


from conftest import SR, labelled_features, tone


def test_logmel_matches_librosa():
    y = tone("saw", 330, seconds=2.0) + 0.2 * tone("square", 990, seconds=2.0)
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR, n_fft=2048, hop_length=512, n_mels=64, fmin=30.0),
                              ref=np.max, top_db=80.0)
    ours = LogMel(sr=SR, n_fft=2048, hop_length=512, n_mels=64, fmin=30.0)(torch.from_numpy(y)[None])[0].numpy()
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 0.05  # dB; float32 against float64


def test_old_bundle_options_load_at_their_off_value_and_are_refused_otherwise():
    """Bundles written before the rejected options were removed name them (vibrato, rumble,
    compression; distillation and the source adversary): at the value that meant "off" they load,
    otherwise the one-line error says the option was removed."""
    r = get_recipe("cnn").to_dict()
    old = {**r, "feature": {**r["feature"], "kind": "logmel"},
           "model": {**r["model"], "vibrato": 0.0, "rumble": 0.0, "compression": "db"},
           "train": {**r["train"], "distill_weight": 0.5, "distill_temperature": 2.0, "adversary": 0.0}}
    assert Recipe.from_dict(old) == get_recipe("cnn")
    for section, name, value in (("model", "vibrato", 0.3), ("model", "compression", "pcen"), ("train", "adversary", 1.0)):
        bad = {**old, section: {**old[section], name: value}}
        with pytest.raises(ParameterError, match=f"{name}={value!r} was removed"):
            Recipe.from_dict(bad)


def test_waveform_feature_is_a_fixed_length_window():
    c = FeatureConfig(kind="waveform", seconds=1.0)
    y = tone("saw", 220.0, seconds=3.0)
    assert compute(y[:100], c).shape == (SR,)
    assert compute(y, c).shape == (SR,)


def test_augmentation_only_in_training_and_reproducible():
    y = torch.from_numpy(np.stack([tone("saw", 220 * (i + 1), seconds=1.0) for i in range(4)]))
    aug = WaveAugment(SR)
    aug.eval()
    assert torch.equal(aug(y), y)
    aug.train()
    torch.manual_seed(3)
    a = aug(y)
    torch.manual_seed(3)
    b = aug(y)
    assert torch.equal(a, b) and a.shape == y.shape and torch.isfinite(a).all()
    assert not torch.allclose(a, y)

    x = torch.randn(4, 64, 100) + 5
    sa = SpecAugment(freq_masks=1, freq_width=10, time_masks=1, time_width=10)
    assert torch.equal(sa.eval()(x), x)
    masked = sa.train()(x)
    assert (masked == 0).any() and masked.shape == x.shape


def test_cut_ends_recordings_early_with_a_fade():
    """The cut keeps at least min_keep samples, then fades out over 10 ms and leaves silence."""
    y = torch.ones(400, SR)
    aug = WaveAugment(SR, p_cut=0.5, min_keep_s=0.2).train()
    torch.manual_seed(0)
    z = aug.cut(y)
    kept = (z > 0).sum(1)
    assert kept.min() >= int(0.2 * SR) and (kept == SR).sum() > 100 and (kept < SR).sum() > 100
    cut = z[kept < SR - int(0.01 * SR)]
    assert torch.all(cut[:, 1:] <= cut[:, :-1] + 1e-6)  # never rises again: a fade, then zeros
    ramp = ((cut > 0) & (cut < 1)).sum(1)
    assert ramp.float().mean() > 0.8 * 0.01 * SR and ramp.max() <= 0.01 * SR + 1
    assert torch.equal(WaveAugment(SR, p_cut=0.0).train().cut(y), y)


def _cents_over_time(z: np.ndarray, f0: float) -> np.ndarray:
    """Instantaneous pitch of a sine, in cents from f0, from its interpolated upward zero crossings."""
    zc = np.where((z[:-1] < 0) & (z[1:] >= 0))[0]
    at = zc + (-z[zc]) / (z[zc + 1] - z[zc])
    return 1200 * np.log2(SR / np.diff(at) / f0)


def test_cnn_size_and_pooling_shape():
    r = get_recipe("cnn")
    net = models.build(r.model, r.feature, 6)
    assert sum(p.numel() for p in net.parameters()) <= 2_000_000
    net.eval()
    with torch.no_grad():
        # any window length works: global pooling removes the time axis
        assert net(torch.randn(2, SR)).shape == (2, 6)
        assert net(torch.randn(1, 3 * SR)).shape == (1, 6)


def test_cnn_trains_saves_and_reloads(rendered_data, tmp_path):
    r = get_recipe("cnn")
    r = replace(r, feature=replace(r.feature, seconds=1.5), train=replace(r.train, epochs=6, patience=3))
    X, y, skipped, ds = labelled_features(rendered_data, r.feature)
    assert not skipped and X.shape == (24, int(1.5 * SR))
    clf = InstrumentClassifier(r, seed=0).fit(X, y)
    h = clf.history_
    assert 1 <= h["best_epoch"] <= h["epochs_run"] <= 6 and len(h["val_accuracy"]) == h["epochs_run"]
    assert h["loss"][-1] < h["loss"][0]
    p = clf.predict_proba(X)
    assert p.shape == (24, 3) and np.allclose(p.sum(1), 1, atol=1e-5)
    again = InstrumentClassifier.load(clf.save(tmp_path / "cnn"))
    assert np.allclose(again.predict_proba(X), p, atol=1e-6)
    import instrec

    from instrec.calibration import calibrate

    pred = instrec.load_model(tmp_path / "cnn", engine="torch").predict_file(ds.clips[0].path)  # read afresh: X's row
    # the model answers at the temperature fitted on the loop's validation rows
    assert again.temperature_ == clf.temperature_ and clf.calibration_["validation_rows"] > 0
    want = calibrate(p[:1], again.temperature_)[0]
    assert [pred.probabilities[c] for c in again.classes] == pytest.approx(want.tolist(), abs=1e-5)


def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="CUDA"):
            resolve_device("cuda")
    with pytest.raises(ParameterError):
        resolve_device("tpu")


def test_same_seed_same_cnn(rendered_data):
    r = get_recipe("cnn")
    r = replace(r, feature=replace(r.feature, seconds=1.0), train=replace(r.train, epochs=2, val_fraction=0.25))
    X, y, _, _ = labelled_features(rendered_data, r.feature, limit=12)
    p1 = InstrumentClassifier(r, seed=5).fit(X, y).predict_proba(X)
    p2 = InstrumentClassifier(r, seed=5).fit(X, y).predict_proba(X)
    p3 = InstrumentClassifier(r, seed=6).fit(X, y).predict_proba(X)
    assert np.array_equal(p1, p2) and not np.allclose(p1, p3)


def test_inference_copy_folds_batch_norm_and_agrees():
    """The prediction copy (batch norm folded, channels-last) gives the network's probabilities and
    leaves the original, still trainable network untouched."""
    import instrec
    from instrec.features import compute

    model = instrec.load_model(engine="torch")
    clf = model.engine.classifier
    fast = clf.net_.for_inference()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in clf.net_.modules())
    rng = np.random.default_rng(0)
    X = np.stack([compute(tone(k, 110.0 * (i + 1), seconds=3.0), model.feature)
                  for i, k in enumerate(("sine", "saw", "square", "saw"))])
    X[3] += (0.01 * rng.standard_normal(X.shape[1])).astype(np.float32)
    assert np.abs(clf.predict_proba(X, net=fast) - clf.predict_proba(X)).max() < 1e-5
    # the model serves the network's probabilities with the bundle's calibration temperature
    from instrec.calibration import calibrate

    assert np.abs(model.predict_proba(X) - calibrate(clf.predict_proba(X), clf.temperature_)).max() < 1e-5


