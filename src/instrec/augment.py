"""Training-time augmentation, as modules that act only in ``train()`` mode.

They sit in the network before and after the front end, so the training loop stays one loop and
an exported or served model (``eval()`` mode) carries no augmentation. What they simulate is what
differs between recording sources: level, timing, tuning, noise floor, microphone and room colour
(EQ), reverberation; SpecAugment masks keep the network from relying on any one band or moment.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _chance(p: float, n: int, device) -> torch.Tensor:
    return torch.rand(n, device=device) < p


class WaveAugment(nn.Module):
    """Random gain, cut, time shift, pitch shift, noise, EQ and reverb on ``(batch, samples)``.

    ``keep_all``: the clips' labels say what sounds anywhere in them (several instruments, each from
    its own onset), so nothing heard may be lost: no cut, and the time shift wraps the clip's end
    round to its start instead of dropping it (the pitch shift's stretch still drops at most the
    last 6%). A note's label survives a cut; a late entry's does not.
    """

    def __init__(self, sr: int, *, p_cut: float = 0.5, min_keep_s: float = 0.2, max_shift_s: float = 0.25, max_semitones: float = 1.0,
                 p_noise: float = 0.5, snr_db: tuple[float, float] = (15.0, 45.0), p_eq: float = 0.8,
                 eq_db: float = 8.0, p_reverb: float = 0.5, rt60_s: tuple[float, float] = (0.1, 1.2),
                 keep_all: bool = False):
        super().__init__()
        self.sr = sr
        self.keep_all = keep_all
        self.p_cut, self.min_keep = (0.0 if keep_all else p_cut), int(min_keep_s * sr)
        self.max_shift = int(max_shift_s * sr)
        self.max_semitones = max_semitones
        self.p_noise, self.snr_db = p_noise, snr_db
        self.p_eq, self.eq_db = p_eq, eq_db
        self.p_reverb, self.rt60_s = p_reverb, rt60_s

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return y
        y = self.pitch_shift(y)
        y = self.cut(y)
        y = self.time_shift(y)
        y = self.colour(y)
        y = self.noise(y)
        gain_db = torch.empty(len(y), 1, device=y.device).uniform_(-12, 12)
        return y * 10 ** (gain_db / 20)

    def pitch_shift(self, y: torch.Tensor) -> torch.Tensor:
        """Resample by up to ±``max_semitones`` (tempo changes with pitch, like a tape)."""
        if self.max_semitones <= 0:
            return y
        n = y.shape[1]
        out = torch.empty_like(y)
        for i, s in enumerate(torch.empty(len(y)).uniform_(-self.max_semitones, self.max_semitones).tolist()):
            ratio = 2 ** (s / 12)
            m = max(2, int(round(n / ratio)))
            z = nn.functional.interpolate(y[i].view(1, 1, -1), size=m, mode="linear", align_corners=False).view(-1)
            out[i] = z[:n] if m >= n else nn.functional.pad(z, (0, n - m))
        return out

    def cut(self, y: torch.Tensor) -> torch.Tensor:
        """End the recording early, at a random point after ``min_keep`` samples (10-ms fade).

        Recordings come cut at any length: a note's release may be missing, or the note itself
        cut short. Rendered clips always hold the whole note and release, then digital silence;
        the network should not learn to expect that."""
        b, n = y.shape
        if self.p_cut <= 0 or n <= self.min_keep:
            return y
        use = _chance(self.p_cut, b, y.device)
        end = torch.empty(b, 1, device=y.device).uniform_(self.min_keep, n)
        end = torch.where(use.unsqueeze(1), end, torch.full_like(end, float(n) + 1e9))
        fade = max(1.0, 0.01 * self.sr)
        t = torch.arange(n, device=y.device, dtype=y.dtype).unsqueeze(0)
        return y * ((end - t) / fade).clamp(0.0, 1.0)

    def time_shift(self, y: torch.Tensor) -> torch.Tensor:
        """Delay the onset by up to ``max_shift`` samples: the clip's end falls off, or with
        ``keep_all`` comes round to its start."""
        if self.max_shift <= 0:
            return y
        n = y.shape[1]
        out = torch.zeros_like(y)
        for i, d in enumerate(torch.randint(0, self.max_shift + 1, (len(y),)).tolist()):
            if self.keep_all:
                out[i] = torch.roll(y[i], d)
            elif d < n:  # a delay past the clip's end leaves silence
                out[i, d:] = y[i, : n - d]
        return out

    def colour(self, y: torch.Tensor) -> torch.Tensor:
        """A smooth random EQ curve and a synthetic room, applied together in one FFT."""
        b, n = y.shape
        ir_len = int(self.rt60_s[1] * self.sr)
        nfft = 1 << math.ceil(math.log2(n + ir_len))
        Y = torch.fft.rfft(y, n=nfft)
        freqs = torch.linspace(0, 1, Y.shape[1], device=y.device)
        eq = self._eq_curves(b, freqs) * _chance(self.p_eq, b, y.device).unsqueeze(1)
        Y = Y * (10 ** (eq / 20))
        rev = _chance(self.p_reverb, b, y.device)
        if rev.any():
            Y[rev] = Y[rev] * torch.fft.rfft(self._impulse_responses(int(rev.sum()), ir_len, y.device), n=nfft)
        return torch.fft.irfft(Y, n=nfft)[:, :n]

    def _eq_curves(self, b: int, freqs: torch.Tensor) -> torch.Tensor:
        # A few cosines over log-frequency: broad tilts and bumps like a microphone or a room.
        logf = torch.log2(1 + 1000 * freqs) / math.log2(1001)
        k = torch.arange(1, 5, device=freqs.device).view(1, -1, 1)
        amp = torch.empty(b, 4, 1, device=freqs.device).uniform_(-1, 1) / k
        phase = torch.empty(b, 4, 1, device=freqs.device).uniform_(0, 2 * math.pi)
        curve = (amp * torch.cos(math.pi * k * logf.view(1, 1, -1) + phase)).sum(1)
        return self.eq_db * curve / curve.abs().amax(1, keepdim=True).clamp(min=1e-6)

    def _impulse_responses(self, b: int, n: int, device) -> torch.Tensor:
        # Exponentially decaying noise with a random RT60 and a random wet/dry balance.
        t = torch.arange(n, device=device) / self.sr
        rt60 = torch.empty(b, 1, device=device).uniform_(*self.rt60_s)
        tail = torch.randn(b, n, device=device) * torch.exp(-6.9 * t / rt60)
        tail = tail / tail.norm(dim=1, keepdim=True).clamp(min=1e-9)
        wet = torch.empty(b, 1, device=device).uniform_(0.1, 0.6)
        ir = tail * wet
        ir[:, 0] += 1.0 - wet.squeeze(1)
        return ir

    def noise(self, y: torch.Tensor) -> torch.Tensor:
        """White or pink-ish noise at a random signal-to-noise ratio."""
        b, n = y.shape
        use = _chance(self.p_noise, b, y.device)
        if not use.any():
            return y
        noise = torch.randn(b, n, device=y.device)
        pink = _chance(0.5, b, y.device)
        if pink.any():  # a one-pole low-pass turns white noise reddish, cheaply, in the FFT domain
            N = torch.fft.rfft(noise[pink])
            f = torch.linspace(1.0 / N.shape[1], 1, N.shape[1], device=y.device)
            noise[pink] = torch.fft.irfft(N / f.sqrt(), n=n)
        return self._add_at_snr(y, noise, use)

    def _add_at_snr(self, y: torch.Tensor, noise: torch.Tensor, use: torch.Tensor) -> torch.Tensor:
        """``y`` plus ``noise`` scaled to a random signal-to-noise ratio from ``snr_db``, on the clips in ``use``."""
        snr = torch.empty(len(y), 1, device=y.device).uniform_(*self.snr_db)
        p_sig = y.square().mean(1, keepdim=True).clamp(min=1e-12)
        p_noise = noise.square().mean(1, keepdim=True).clamp(min=1e-12)
        scale = torch.sqrt(p_sig / p_noise / 10 ** (snr / 10)) * use.unsqueeze(1)
        return y + noise * scale


class SpecAugment(nn.Module):
    """Frequency and time masks on ``(batch, bands, frames)`` (Park et al., 2019), set to 0."""

    def __init__(self, *, freq_masks: int = 2, freq_width: int = 12, time_masks: int = 2, time_width: int = 20):
        super().__init__()
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        x = x.clone()
        b, f, t = x.shape
        for axis, count, width, size in ((1, self.freq_masks, self.freq_width, f), (2, self.time_masks, self.time_width, t)):
            for _ in range(count):
                w = torch.randint(0, min(width, size) + 1, (b,))
                # any start from 0 to size - w: a mask can cover the last band or frame
                start = (torch.rand(b) * (size - w + 1)).long().clamp(max=size - w)
                idx = torch.arange(size).view(1, -1)
                mask = (idx >= start.view(-1, 1)) & (idx < (start + w).view(-1, 1))
                mask = mask.to(x.device)
                x = x.masked_fill(mask.unsqueeze(2) if axis == 1 else mask.unsqueeze(1), 0.0)
        return x
