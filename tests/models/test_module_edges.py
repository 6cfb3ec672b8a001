"""Edge cases of the networks, the front end and the augmentation that their main tests miss."""

import numpy as np
import torch

from instrec.augment import SpecAugment, WaveAugment
from instrec.models import ModelConfig, build
from instrec.features import FeatureConfig, extract
from instrec.models.frontend import LogMel, MfccMean
from instrec.models.mlp import MLP

from conftest import SR, tone, write


def test_mlp_wants_prepare_only_when_it_standardises():
    # the training loop reads it as a flag: a method would always be truthy
    assert MLP(4, (8,), 3).wants_prepare is False
    assert MLP(4, (8,), 3, standardize=True).wants_prepare is True
    net = MLP(4, (8,), 3, standardize=True)
    net.prepare(torch.randn(10, 4, requires_grad=True))
    assert net.scale.mean.grad_fn is None and not net.scale.mean.requires_grad


def test_time_shift_on_clips_shorter_than_the_shift():
    aug = WaveAugment(SR, max_shift_s=0.25).train()
    y = torch.randn(16, 3000)  # 0.14 s: most delays exceed the clip
    for seed in range(4):
        torch.manual_seed(seed)
        z = aug.time_shift(y)
        assert z.shape == y.shape and torch.isfinite(z).all()
        torch.manual_seed(seed)
        z = aug(y)
        assert z.shape == y.shape and torch.isfinite(z).all()


def test_spec_masks_reach_the_last_band_and_frame():
    # starts were drawn below size - width: the top band and the last frame were never masked
    x = torch.ones(3000, 8, 6)
    for axis, sa in ((1, SpecAugment(freq_masks=1, freq_width=3, time_masks=0)),
                     (2, SpecAugment(freq_masks=0, time_masks=1, time_width=3))):
        torch.manual_seed(0)
        z = sa.train()(x)
        zeros = (z == 0).all(2 if axis == 1 else 1)  # (rows, bands) or (rows, frames) fully masked
        assert zeros[:, -1].any() and zeros[:, 0].any()
        width = zeros.sum(1)
        assert width.max() <= 3 and (width == 0).any()
    # a width wider than the axis masks at most all of it
    z = SpecAugment(freq_masks=1, freq_width=50, time_masks=1, time_width=50).train()(torch.ones(64, 8, 6))
    assert z.shape == (64, 8, 6)


def test_multilabel_augmentation_loses_no_late_entry():
    """With several labels a clip, an instrument entering late must still sound after the cut and
    the time shift (its label stays): no cut, and the shift wraps round."""
    y = torch.zeros(64, SR)
    y[:, -int(0.1 * SR):] = 1.0  # an entry in the last 0.1 s
    keep = WaveAugment(SR, p_cut=1.0, keep_all=True).train()
    torch.manual_seed(0)
    z = keep.time_shift(keep.cut(y))
    assert torch.allclose(z.sum(1), y.sum(1))
    drop = WaveAugment(SR, p_cut=1.0).train()  # single labels: a note's label survives a cut
    torch.manual_seed(0)
    assert (drop.time_shift(drop.cut(y)).sum(1) == 0).any()
    multi = build(ModelConfig(arch="cnn", output="sigmoid"), FeatureConfig(kind="waveform"), 3)
    single = build(ModelConfig(arch="cnn"), FeatureConfig(kind="waveform"), 3)
    assert multi.augment.keep_all and multi.augment.p_cut == 0 and not single.augment.keep_all


def test_front_end_takes_float64_waveforms():
    y = tone("saw", 330, seconds=1.0)
    lm = LogMel(sr=SR, n_fft=2048, hop_length=512, n_mels=64)
    want = lm(torch.from_numpy(y.astype(np.float32))[None])
    got = lm(torch.from_numpy(y.astype(np.float64))[None])
    assert got.dtype == torch.float32 and (got - want).abs().max() < 1e-3
    mm = MfccMean(sr=SR, n_mfcc=20, n_fft=2048, hop_length=512, n_mels=64)
    n = torch.tensor([len(y)])
    want = mm(torch.from_numpy(y.astype(np.float32))[None], n)
    got = mm(torch.from_numpy(y.astype(np.float64))[None], n)
    assert (got - want).abs().max() < 1e-3 * want.abs().max()


def test_device_route_computes_what_the_cpu_route_does_for_any_top_db(tmp_path):
    """The two routes share cache entries, so they must agree whatever the config says."""
    from instrec.models.device_features import extract_on_device

    config = FeatureConfig(kind="mfcc", n_mfcc=20, top_db=40.0)
    # a loud onset then a long quiet tail: frames below the floor, where top_db matters
    y = np.concatenate([tone("saw", 220.0, seconds=0.2), 1e-4 * tone("sine", 440.0, seconds=0.8)])
    files = [write(tmp_path / "a.wav", y)]
    ref, _, _ = extract(files, config, jobs=1)
    X, _, _ = extract_on_device(files, config, device="cpu", threads=1)
    assert np.abs(X - ref).max() <= 1e-4 * (ref.max() - ref.min())


def test_memory_helpers_do_nothing_where_ctypes_is_missing(monkeypatch):
    import sys

    from instrec import memory

    monkeypatch.setattr(memory, "_libc", None)
    monkeypatch.setitem(sys.modules, "ctypes", None)  # a Python built without ctypes: import fails
    assert memory.limit_arenas() is False
    memory.keep_heap()
    memory.give_back()
