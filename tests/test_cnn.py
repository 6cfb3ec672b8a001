"""The cnn recipe: front end faithful to librosa, augmentation only in training, a real training run."""

from dataclasses import replace

import librosa
import numpy as np
import pytest
import torch

from instrec import models
from instrec.augment import SpecAugment, WaveAugment
from instrec.classifier import InstrumentClassifier
from instrec.errors import BundleError, ParameterError
from instrec.features import FeatureConfig, compute
from instrec.features.frontend import PCEN, LogMel, MelPCEN
from instrec.recipes import get_recipe
from instrec.train import resolve_device

from conftest import SR, labelled_features, tone


def test_logmel_matches_librosa():
    y = tone("saw", 330, seconds=2.0) + 0.2 * tone("square", 990, seconds=2.0)
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR, n_fft=2048, hop_length=512, n_mels=64, fmin=30.0),
                              ref=np.max, top_db=80.0)
    ours = LogMel(sr=SR, n_fft=2048, hop_length=512, n_mels=64, fmin=30.0)(torch.from_numpy(y)[None])[0].numpy()
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 0.05  # dB; float32 against float64


def test_pcen_matches_librosa():
    """librosa.pcen's formula and defaults, the smoother started at the first frame's steady state."""
    import scipy.signal

    y = tone("saw", 330, seconds=2.0) * np.linspace(0.05, 1.0, 2 * SR, dtype=np.float32)  # a crescendo
    front = MelPCEN(sr=SR, n_fft=2048, hop_length=512, n_mels=64, fmin=30.0)
    S = front.mel_power(torch.from_numpy(y)[None])[0].double().numpy() * 2.0 ** 31
    b = front.pcen.b
    ref = librosa.pcen(S, sr=SR, hop_length=512, zi=scipy.signal.lfilter_zi([b], [1, b - 1]) * S[:, :1])
    ours = front(torch.from_numpy(y)[None])[0].numpy()
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 1e-4 * np.abs(ref).max()


def test_pcen_divides_a_steady_background_away():
    """Gain control per band: a steady noise floor gives nearly the same output at any level, and a
    note's onset over it stands out; on the dB scale (re the clip's maximum) the floor sits wherever
    the note's level puts it."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, 2 * SR).astype(np.float32)
    note = np.concatenate([np.zeros(SR, np.float32), tone("saw", 440, seconds=1.0)])
    pcen = PCEN(sr=SR, hop_length=512)
    front = MelPCEN(sr=SR, n_fft=2048, hop_length=512, n_mels=64)
    db = LogMel(sr=SR, n_fft=2048, hop_length=512, n_mels=64)
    quiet, loud = (front(torch.from_numpy(a * noise)[None])[0] for a in (1e-3, 1e-1))
    # 40 dB on the floor moves PCEN by under a fifth (gain 0.98: not quite all of it is divided away)
    assert (quiet - loud).abs().mean() < 0.2 * loud.mean()
    mixed = front(torch.from_numpy(0.3 * note + 1e-2 * noise)[None])[0]
    onset = 1 + SR // 512
    # the note's strongest band at its onset, against the floor's strongest band in any frame before
    assert mixed[:, onset:onset + 2].amax(0).mean() > 3 * mixed[:, 5:onset - 5].amax(0).mean()
    # the dB scale (re the clip's maximum) moves the same floor by 40 dB with the note's level
    d1 = db(torch.from_numpy(0.3 * note + 1e-2 * noise)[None])[0]
    d2 = db(torch.from_numpy(0.003 * note + 1e-2 * noise)[None])[0]
    assert (d2[:, 5:onset - 5].mean() - d1[:, 5:onset - 5].mean()) > 30
    assert torch.allclose(pcen.smooth(torch.ones(1, 2, 7)), torch.ones(1, 2, 7), atol=1e-6)  # steady from frame 0


def test_pcen_cnn_config_round_trips_trains_and_exports(rendered_data, tmp_path):
    from instrec.onnx_export import OnnxEngine, export_onnx

    r = get_recipe("cnn")
    assert r.model.compression == "db" and isinstance(models.build(r.model, r.feature, 3).frontend, LogMel)
    with pytest.raises(ParameterError, match="compression"):
        replace(r.model, compression="log")
    r = replace(r, feature=replace(r.feature, seconds=1.5), model=replace(r.model, compression="pcen"),
                train=replace(r.train, epochs=2))
    assert models.ModelConfig.from_dict(r.model.to_dict()) == r.model
    X, y, _, _ = labelled_features(rendered_data, r.feature)
    clf = InstrumentClassifier(r, seed=0).fit(X, y)
    assert isinstance(clf.net_.frontend, MelPCEN)
    again = InstrumentClassifier.load(clf.save(tmp_path / "pcen"))
    assert isinstance(again.net_.frontend, MelPCEN) and again.recipe.model.compression == "pcen"
    p = again.predict_proba(X)
    assert np.allclose(p, clf.predict_proba(X), atol=1e-6)
    engine = OnnxEngine(export_onnx(tmp_path / "pcen", tmp_path / "pcen.onnx"))
    assert np.abs(engine.predict_proba(X) - p).max() < 1e-4
    from instrec.bundle import read_meta, validate_meta

    meta = read_meta(tmp_path / "pcen")
    meta["recipe"]["model"]["compression"] = "log"
    with pytest.raises(BundleError, match="compression"):
        validate_meta(meta, "model.json")


def test_logmel_feature_is_a_fixed_length_window():
    c = FeatureConfig(kind="logmel", seconds=1.0)
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


def test_vibrato_wobbles_pitch_by_the_asked_depth_and_rate():
    y = torch.sin(2 * torch.pi * 440 * torch.arange(3 * SR) / SR).repeat(2, 1)  # clean: zero crossings tell the pitch
    aug = WaveAugment(SR, p_vibrato=1.0, vibrato_hz=(5.0, 5.0), vibrato_cents=(40.0, 40.0), tremolo_db=0.0).train()
    torch.manual_seed(0)
    z = aug.vibrato(y)
    assert z.shape == y.shape
    cents = _cents_over_time(z[0].numpy(), 440.0)
    assert 38 < cents.max() < 42 and -42 < cents.min() < -38  # ±40 cents, every partial alike
    spectrum = np.abs(np.fft.rfft(cents - cents.mean()))
    rate = np.fft.rfftfreq(len(cents), d=1 / 440)[spectrum.argmax()]
    assert 4.8 < rate < 5.2
    # a still note stays still where the share is 0, and in eval mode nothing changes at all
    state = torch.get_rng_state()
    assert torch.equal(WaveAugment(SR, p_vibrato=0.0).train().vibrato(y), y)
    assert torch.equal(torch.get_rng_state(), state)  # and draws nothing: recipes without it train as before
    assert torch.equal(aug.eval()(y), y)


@pytest.mark.parametrize("share", ["vibrato", "rumble"])
def test_augmentation_share_goes_to_the_config_and_is_validated(share):
    r = get_recipe("cnn")
    attr = f"p_{share}"
    assert getattr(r.model, share) == 0.0 and getattr(models.build(r.model, r.feature, 6).augment, attr) == 0.0
    config = replace(r.model, **{share: 0.5})
    assert models.ModelConfig.from_dict(config.to_dict()) == config
    assert getattr(models.build(config, r.feature, 6).augment, attr) == 0.5
    for bad in (1.5, -0.1):
        with pytest.raises(ParameterError, match=share):
            replace(r.model, **{share: bad})
    from instrec.assets import SHIPPED_MODEL
    from instrec.bundle import read_meta, validate_meta

    meta = read_meta(SHIPPED_MODEL)
    meta["recipe"]["model"][share] = 0.5
    validate_meta(meta, "model.json")  # a bundle trained with it loads
    meta["recipe"]["model"][share] = 2
    with pytest.raises(BundleError, match=share):
        validate_meta(meta, "model.json")


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
    pred = again.predict_file(ds.clips[0].path)  # the file, read afresh: the row of X it made
    assert [pred.probabilities[c] for c in again.classes] == pytest.approx(p[0].tolist(), abs=1e-5)


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

    model = instrec.load_model()
    clf = model.engine.classifier
    fast = clf.net_.for_inference()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in clf.net_.modules())
    rng = np.random.default_rng(0)
    X = np.stack([compute(tone(k, 110.0 * (i + 1), seconds=3.0), model.feature)
                  for i, k in enumerate(("sine", "saw", "square", "saw"))])
    X[3] += (0.01 * rng.standard_normal(X.shape[1])).astype(np.float32)
    assert np.abs(clf.predict_proba(X, net=fast) - clf.predict_proba(X)).max() < 1e-5
    assert np.abs(model.predict_proba(X) - clf.predict_proba(X)).max() < 1e-5


def test_as_model_is_made_once_per_network():
    import instrec

    clf = instrec.load_model().engine.classifier
    assert clf.as_model() is clf.as_model()


def test_distillation_learns_what_the_teachers_say(rendered_data):
    """With distill_weight 1 the labels play no part: a student taught by a teacher that learned
    rotated labels (flute→cello→trumpet→flute) answers like the teacher, not like the labels."""
    r = get_recipe("cnn")
    r = replace(r, feature=replace(r.feature, seconds=1.0), model=replace(r.model, augment=False),
                train=replace(r.train, epochs=10, batch_size=4, val_fraction=0.0, patience=0, mixup=0.0))
    X, y, _, _ = labelled_features(rendered_data, r.feature)
    rotate = {"flute": "cello", "cello": "trumpet", "trumpet": "flute"}
    liar = InstrumentClassifier(r, seed=0).fit(X, [rotate[l] for l in y])
    told = liar.predict(X)
    assert np.mean([t == rotate[l] for t, l in zip(told, y)]) >= 0.9
    student = InstrumentClassifier(replace(r, train=replace(r.train, distill_weight=1.0)), seed=1).fit(X, y, teachers=[liar])
    assert np.mean([s == t for s, t in zip(student.predict(X), told)]) >= 0.9
    # a teacher must know the same classes and be trained
    two = [i for i, l in enumerate(y) if l != "trumpet"]
    duo = InstrumentClassifier(replace(r, train=replace(r.train, epochs=1)), seed=0).fit(X[two], [y[i] for i in two])
    with pytest.raises(ParameterError, match="teacher 1 knows cello, flute"):
        InstrumentClassifier(r).fit(X, y, teachers=[duo])
    with pytest.raises(ParameterError, match="not a trained"):
        InstrumentClassifier(r).fit(X, y, teachers=[InstrumentClassifier(r)])
    with pytest.raises(ParameterError, match="teacher 1 is not a trained"):
        InstrumentClassifier(r).fit(X, y, teachers=["a/model/folder"])  # a path, not a loaded model


def test_rumble_is_low_frequency_noise_at_the_asked_ratio():
    """Brown noise: nearly all its power below 200 Hz, at 15-45 dB below the clip, on the asked
    share of clips; off, it changes nothing and draws nothing."""
    y = 0.1 * torch.sin(2 * torch.pi * 440 * torch.arange(SR) / SR).repeat(200, 1)
    aug = WaveAugment(SR, p_rumble=0.5).train()
    torch.manual_seed(0)
    noise = aug.rumble(y) - y
    hit = noise.abs().amax(1) > 0
    assert 70 < int(hit.sum()) < 130  # about half of the 200 clips
    power = (torch.fft.rfft(noise[hit]).abs() ** 2).sum(0).numpy()
    f = np.fft.rfftfreq(SR, d=1 / SR)
    assert power[f < 200].sum() / power.sum() > 0.9 and power[f > 2000].sum() / power.sum() < 0.01
    snr = 10 * torch.log10(y[hit].square().mean(1) / noise[hit].square().mean(1))
    assert 14.9 < float(snr.min()) and float(snr.max()) < 45.1 and float(snr.max() - snr.min()) > 20
    state = torch.get_rng_state()
    assert torch.equal(WaveAugment(SR).train().rumble(y), y)
    assert torch.equal(torch.get_rng_state(), state)  # recipes without it train as before
