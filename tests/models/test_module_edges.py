"""Edge cases of the networks, the front end and the augmentation that their main tests miss."""

import numpy as np
import torch

from instrec.augment import WaveAugment
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
