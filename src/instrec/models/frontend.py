"""The CNN's feature front end as ``nn.Module``s (torchaudio.transforms style).

They sit inside the network, so training, export and serving compute log-mel spectrograms by one
code path, and a model can never be fed features computed differently from its training. The
ONNX export (:mod:`instrec.export`) keeps them inside the graph too (the STFT as matrix
products, :meth:`LogMel.mel_by_matmul`), so an exported cnn takes the raw waveform window as well.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


class LogMel(nn.Module):
    """Waveform ``(batch, samples)`` → log-mel ``(batch, n_mels, frames)`` in dB relative to each
    clip's maximum, floored at ``-top_db`` (``librosa.power_to_db(S, ref=np.max)``).

    The STFT matches librosa's defaults: periodic Hann window, centred frames, zero padding.
    Referencing each clip to its own maximum makes the feature indifferent to recording level.
    """

    def __init__(self, *, sr: int, n_fft: int, hop_length: int, n_mels: int, fmin: float = 0.0,
                 fmax: float | None = None, top_db: float = 80.0):
        super().__init__()
        import librosa

        self.n_fft, self.hop_length, self.top_db = n_fft, hop_length, float(top_db)
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)
        fb = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        self.register_buffer("mel_basis", torch.from_numpy(fb).float(), persistent=False)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        db = 10.0 * torch.log10(torch.clamp(self.mel_power(y), min=1e-10))
        db = db - db.amax(dim=(1, 2), keepdim=True)
        return torch.clamp(db, min=-self.top_db)

    def mel_power(self, y: torch.Tensor) -> torch.Tensor:
        """The mel power spectrogram ``(batch, n_mels, frames)``, before the dB scale."""
        if torch.jit.is_tracing():  # ONNX export (instrec.onnx_export); eager code never comes here
            return self.mel_by_matmul(y)
        y = y.to(self.window.dtype)  # float64 input: the window and filters are float32
        spec = torch.stft(y, self.n_fft, self.hop_length, window=self.window, center=True,
                          pad_mode="constant", return_complex=True)
        return torch.matmul(self.mel_basis, spec.real.square() + spec.imag.square())

    def mel_by_matmul(self, y: torch.Tensor) -> torch.Tensor:
        """The mel power spectrogram ``mel_basis @ |STFT(y)|²`` from real matrix products only.

        The export's formulation: the graph gets no complex numbers and no STFT operator, just
        framing (slices), a two-factor Cooley-Tukey DFT (``n_fft = A·B``: a DFT of size A as one
        matrix product, twiddle factors, a DFT of size B as another) and the mel matrix with its rows
        put in the order the DFT leaves the bins in. onnxruntime runs it about twice as fast as
        its STFT operator; it agrees with ``torch.stft`` to float32 rounding (about 3e-7 of the
        clip's maximum). Constants are computed in float64 numpy, so they are graph constants.
        """
        n, hop = self.n_fft, self.hop_length
        a, b, k2 = _dft_factors(n)
        batch, length = y.shape
        pad, frames = n // 2, 1 + length // hop
        if n % hop == 0:  # frames are runs of n // hop consecutive hop-sized blocks: slices only
            blocks = -(-(length + 2 * pad) // hop)
            x = torch.nn.functional.pad(y, (pad, pad + blocks * hop - (length + 2 * pad)))
            x = x.reshape(batch, blocks, hop)
            x = torch.cat([x[:, i : i + frames] for i in range(n // hop)], dim=2)
        else:
            index = np.arange(frames)[:, None] * hop + np.arange(n)[None]
            x = torch.nn.functional.pad(y, (pad, pad))[:, torch.from_numpy(index)]
        # sample m = b*n1 + n2 of a frame; bin k = k1 + a*kk2 (k1 < a, kk2 < k2)
        x = (x * self.window).reshape(batch, frames, a, b).transpose(2, 3)  # (.., n2, n1)
        c1 = np.arange(a)
        ang = 2 * np.pi * np.outer(c1, c1) / a  # [n1, k1]
        y1 = torch.matmul(x, _const(np.concatenate([np.cos(ang), -np.sin(ang)], axis=1)))  # (.., n2, 2a)
        re, im = y1[..., :a], y1[..., a:]
        tw = 2 * np.pi * np.outer(np.arange(b), c1) / n  # [n2, k1]: W_n^(n2 k1)
        cos, sin = _const(np.cos(tw)), _const(np.sin(tw))
        z = torch.cat([re * cos + im * sin, im * cos - re * sin], dim=2).transpose(2, 3)  # (.., k1, 2b)
        ang = 2 * np.pi * np.outer(np.arange(b), np.arange(k2)) / b  # [n2, kk2]
        cos, sin = np.cos(ang), np.sin(ang)
        y2 = torch.matmul(z, _const(np.block([[cos, -sin], [sin, cos]])))  # (.., k1, 2*k2)
        power = y2.square()
        power = (power[..., :k2] + power[..., k2:]).reshape(batch, frames, a * k2)
        # mel rows in the (k1, kk2) order of ``power``; bins past n // 2 get zero weight
        basis = self.mel_basis.detach().cpu().numpy().astype(np.float64).T  # (bins, n_mels)
        k = (np.arange(a)[:, None] + a * np.arange(k2)[None]).reshape(-1)
        rows = np.zeros((a * k2, basis.shape[1]))
        rows[k < basis.shape[0]] = basis[k[k < basis.shape[0]]]
        return torch.matmul(power, _const(rows)).transpose(1, 2)  # (batch, n_mels, frames)


class MfccMean(nn.Module):
    """Waveforms ``(batch, samples)`` and their ``lengths`` → each clip's MFCCs averaged over its
    frames, ``(batch, n_mfcc)``: :func:`instrec.features.mfcc.mfcc_mean` (``librosa.feature.mfcc``:
    ``power_to_db(mel, ref=1.0, top_db)``, orthonormal DCT-II) as a batched module, for a GPU.

    Clips of different lengths come zero-padded to the longest. With centred frames and zero
    padding, a clip's own ``1 + length // hop_length`` frames see the same samples however much
    padding follows; the frames past them are left out of its ``top_db`` floor and its mean.
    """

    def __init__(self, *, sr: int, n_mfcc: int, n_fft: int, hop_length: int, n_mels: int, fmin: float = 0.0,
                 fmax: float | None = None, top_db: float | None = 80.0):
        super().__init__()
        from ..features.mel import hann_window, mel_filters
        from ..features.mfcc import dct_matrix

        self.n_fft, self.hop_length = n_fft, hop_length
        self.top_db = None if top_db is None else float(top_db)
        self.register_buffer("window", _const(hann_window(n_fft)), persistent=False)
        self.register_buffer("mel_basis", _const(mel_filters(sr, n_fft, n_mels, fmin, fmax)), persistent=False)
        self.register_buffer("dct", _const(dct_matrix(n_mfcc, n_mels)), persistent=False)

    def forward(self, y: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        y = y.to(self.window.dtype)  # float64 input: the window and filters are float32
        spec = torch.stft(y, self.n_fft, self.hop_length, window=self.window, center=True, pad_mode="constant",
                          return_complex=True)
        mel = torch.matmul(self.mel_basis, spec.real.square() + spec.imag.square())  # (batch, n_mels, frames)
        db = 10.0 * torch.log10(torch.clamp(mel, min=1e-10))
        frames = 1 + torch.div(lengths, self.hop_length, rounding_mode="floor")
        valid = (torch.arange(db.shape[-1], device=db.device)[None, :] < frames[:, None])[:, None, :]
        if self.top_db is not None:
            peak = db.masked_fill(~valid, float("-inf")).amax(dim=(1, 2), keepdim=True)
            db = torch.maximum(db, peak - self.top_db)
        mean = (db * valid).sum(dim=-1) / frames[:, None].to(db.dtype)  # (batch, n_mels)
        return mean @ self.dct.T


def _dft_factors(n: int) -> tuple[int, int, int]:
    """``(a, b, k2)``: ``n = a·b`` with ``a >= b`` as close as can be, and the number of second-stage
    bins ``k2`` needed to reach bin ``n // 2``."""
    b = next(d for d in range(math.isqrt(n), 0, -1) if n % d == 0)
    a = n // b
    return a, b, b // 2 + 1


def _const(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array.astype(np.float32))


class BandNorm(nn.Module):
    """Per-frequency normalisation: each mel band standardised with training-set statistics."""

    def __init__(self, n_mels: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_mels, 1))
        self.register_buffer("std", torch.ones(n_mels, 1))

    @torch.no_grad()
    def fit(self, logmels: torch.Tensor) -> None:
        """``logmels``: ``(batch, n_mels, frames)`` of training clips."""
        self.mean.copy_(logmels.mean(dim=(0, 2)).unsqueeze(1))
        self.std.copy_(logmels.std(dim=(0, 2)).clamp(min=1e-3).unsqueeze(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
