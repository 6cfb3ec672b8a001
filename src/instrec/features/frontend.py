"""The CNN's feature front end as ``nn.Module``s (torchaudio.transforms style).

They sit inside the network, so training, export and serving compute log-mel spectrograms by one
code path, and a model can never be fed features computed differently from its training.
"""

from __future__ import annotations

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
        spec = torch.stft(y, self.n_fft, self.hop_length, window=self.window, center=True,
                          pad_mode="constant", return_complex=True)
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(self.mel_basis, power)
        db = 10.0 * torch.log10(torch.clamp(mel, min=1e-10))
        db = db - db.amax(dim=(1, 2), keepdim=True)
        return torch.clamp(db, min=-self.top_db)


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
