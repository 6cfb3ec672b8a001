"""A PyTorch port of musicnn (Pons & Serra 2019), loading the pretrained MSD/MTT weights.

musicnn==0.1.0 (PyPI, ISC licence, Jordi Pons) ships TF1 checkpoints. ``experiments/convert_musicnn.py``
(run once, in a throwaway TensorFlow venv) turns them into float32 safetensors; this module rebuilds
the network of ``musicnn/models.py::build_musicnn`` in PyTorch and loads them with
``safetensors.torch.load_file`` (no pickle). It is a research/benchmark helper, not part of instrec.

    from experiments.musicnn_port import Musicnn, log_mel, patches
    net = Musicnn.from_safetensors("/tmp/musicnn_weights/MSD_musicnn.safetensors")
    out = net(torch.from_numpy(patches(log_mel(audio_16k))))   # dict of tensors

Network (num_filt 1.6, 96 mel bands, 187-frame patches; TF is NHWC = (batch, time, mel, channel)):

front-end  input batch-norm (1 channel), then
           timbral: time pad 3+3, conv [7 x 38] and [7 x 67] 'valid', 204 filters each, ReLU, BN,
                    max over frequency
           temporal: conv [128 x 1], [64 x 1], [32 x 1] 'same' (TF pads (k-1)//2 before, the rest
                    after), 51 filters each, ReLU, BN, max over frequency
           -> 204+204+51+51+51 = 561 features per frame
mid-end    three conv layers over time (kernel 7 spanning all features, time pad 3+3, 64 filters,
           ReLU, BN), the 2nd and 3rd with residual connections; dense concatenation of
           [front-end, cnn1, cnn2, cnn3] -> 561+3*64 = 753 features per frame
back-end   max and mean over time, concatenated on a new last axis (B, 753, 2) and flattened, so
           the 1506-vector INTERLEAVES max_0, mean_0, max_1, mean_1, ...; BN, (dropout), dense 200
           ReLU, BN -> 'penultimate'; (dropout), dense 50 -> logits; sigmoid -> tag probabilities

Every batch norm is TF1 ``layers.batch_normalization`` evaluated with training=False: moving mean
and variance, epsilon 0.001.

Input pipeline (``musicnn/extractor.py``): ``librosa.load(sr=16000)``; ``melspectrogram(n_fft=512,
hop_length=256, n_mels=96)`` (power 2, librosa's Slaney mel); transpose to (time, mel); cast to
float16; ``log10(10000 * x + 1)``; non-overlapping 187-frame (3 s) patches. The original computes
``10000 * x`` in float16, which overflows to inf whenever a mel value exceeds 6.55 (loud notes do);
inf then turns into NaN inside the network. ``log_mel(..., exact_float16=False)`` (the default here)
returns the original's float16 values wherever they are finite and, only where they overflowed,
the same formula computed in float32 (float16 mel values, float32 log), so it stays finite.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SR = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
N_FRAMES = 187  # librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
BN_EPS = 1e-3

MTT_LABELS = ['guitar', 'classical', 'slow', 'techno', 'strings', 'drums', 'electronic', 'rock', 'fast', 'piano', 'ambient', 'beat', 'violin', 'vocal', 'synth', 'female', 'indian', 'opera', 'male', 'singing', 'vocals', 'no vocals', 'harpsichord', 'loud', 'quiet', 'flute', 'woman', 'male vocal', 'no vocal', 'pop', 'soft', 'sitar', 'solo', 'man', 'classic', 'choir', 'voice', 'new age', 'dance', 'male voice', 'female vocal', 'beats', 'harp', 'cello', 'no voice', 'weird', 'country', 'metal', 'female voice', 'choral']  # noqa: E501
MSD_LABELS = ['rock', 'pop', 'alternative', 'indie', 'electronic', 'female vocalists', 'dance', '00s', 'alternative rock', 'jazz', 'beautiful', 'metal', 'chillout', 'male vocalists', 'classic rock', 'soul', 'indie rock', 'Mellow', 'electronica', '80s', 'folk', '90s', 'chill', 'instrumental', 'punk', 'oldies', 'blues', 'hard rock', 'ambient', 'acoustic', 'experimental', 'female vocalist', 'guitar', 'Hip-Hop', '70s', 'party', 'country', 'easy listening', 'sexy', 'catchy', 'funk', 'electro', 'heavy metal', 'Progressive rock', '60s', 'rnb', 'indie pop', 'sad', 'House', 'happy']  # noqa: E501


# ----------------------------------------------------------------------------- input pipeline
def load_audio(path: str | Path, sr: int = SR) -> np.ndarray:
    """Mono float32 at 16 kHz, as musicnn's extractor reads it (``librosa.load(path, sr=16000)``)."""
    import librosa

    y, _ = librosa.load(str(path), sr=sr)
    return y.astype(np.float32)


def log_mel(y: np.ndarray, sr: int = SR, exact_float16: bool = False) -> np.ndarray:
    """(time, 96) log-compressed mel spectrogram, musicnn's ``batch_data`` step by step.

    exact_float16=True reproduces the original bit for bit (float16 result), including its
    overflow to inf for mel values above 6.55; False (default, float32 result) is the same except
    that the overflowed bins are recomputed in float32.
    """
    import librosa

    rep = librosa.feature.melspectrogram(y=y, sr=sr, hop_length=HOP, n_fft=N_FFT, n_mels=N_MELS).T
    rep = rep.astype(np.float16)
    with np.errstate(over="ignore"):
        exact = np.log10(10000 * rep + 1)  # float16 arithmetic, as the original
    if exact_float16:
        return exact
    safe = np.log10(10000 * rep.astype(np.float32) + 1)
    return np.where(np.isfinite(exact), exact.astype(np.float32), safe).astype(np.float32)


def patches(rep: np.ndarray, n_frames: int = N_FRAMES, hop: int | None = None) -> np.ndarray:
    """Split (time, mel) into (n_patches, n_frames, mel), as ``batch_data`` does (no padding:
    a spectrogram shorter than n_frames gives no patch, like the original)."""
    hop = hop or n_frames
    starts = range(0, rep.shape[0] - n_frames + 1, hop)
    return np.stack([rep[s:s + n_frames] for s in starts]).astype(np.float32) if len(starts) else \
        np.zeros((0, n_frames, rep.shape[1]), np.float32)


# ----------------------------------------------------------------------------- network
class Musicnn(torch.nn.Module):
    """musicnn (num_filt_midend=64, num_units_backend=200) with TF-named parameters as buffers."""

    def __init__(self, tensors: dict[str, torch.Tensor], labels: list[str] | None = None):
        super().__init__()
        self.labels = labels
        self._names = []
        for name, t in tensors.items():
            key = name.replace("/", "__")
            self.register_buffer(key, t.to(torch.float32).contiguous())
            self._names.append(name)

    @classmethod
    def from_safetensors(cls, path: str | Path) -> "Musicnn":
        from safetensors.torch import load_file

        path = Path(path)
        labels = MSD_LABELS if "MSD" in path.name else MTT_LABELS if "MTT" in path.name else None
        return cls(load_file(str(path)), labels).eval()

    # -- parameter access -------------------------------------------------------------------
    def _t(self, name: str) -> torch.Tensor:
        return getattr(self, name.replace("/", "__"))

    def _bn(self, x: torch.Tensor, i: int, channel_dim: int) -> torch.Tensor:
        """TF1 batch_normalization in inference mode: moving statistics, epsilon 0.001."""
        p = "batch_normalization" + (f"_{i}" if i else "")
        shape = [1] * x.dim()
        shape[channel_dim] = -1
        mean, var = self._t(p + "/moving_mean").view(shape), self._t(p + "/moving_variance").view(shape)
        gamma, beta = self._t(p + "/gamma").view(shape), self._t(p + "/beta").view(shape)
        return (x - mean) * torch.rsqrt(var + BN_EPS) * gamma + beta

    def _conv2d(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """conv2d_i, NCHW input; TF kernel HWIO -> torch OIHW; stride 1; no padding (pad first)."""
        p = "conv2d" + (f"_{i}" if i else "")
        w = self._t(p + "/kernel").permute(3, 2, 0, 1)
        return F.conv2d(x, w, self._t(p + "/bias"))

    def _conv_time(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Mid-end conv: TF conv2d over (time, features) with kernel [7, n_features, 1, 64] on a
        1-channel NHWC map == conv1d over time with n_features input channels. x: (B, C, T)."""
        p = f"conv2d_{i}"
        w = self._t(p + "/kernel")[:, :, 0, :].permute(2, 1, 0)  # (out, in, k)
        return F.conv1d(F.pad(x, (3, 3)), w, self._t(p + "/bias"))

    def _dense(self, x: torch.Tensor, i: int) -> torch.Tensor:
        p = "dense" + (f"_{i}" if i else "")
        return x @ self._t(p + "/kernel") + self._t(p + "/bias")

    # -- forward ----------------------------------------------------------------------------
    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, 187, 96) log-mel patches. Returns the extractor's features:
        taggram (B, 50), logits, timbral (B, T, 408), temporal (B, T, 153), cnn1/cnn2/cnn3
        (B, T, 64), mean_pool/max_pool (B, 753), penultimate (B, 200)."""
        x = x.to(torch.float32).unsqueeze(1)  # (B, 1, T, F) == TF (B, T, F, 1)
        x = self._bn(x, 0, 1)

        # front-end: timbral (time pad 3+3, 'valid'), then max over the frequency axis
        xp = F.pad(x, (0, 0, 3, 3))
        front = []
        for conv_i, bn_i in ((0, 1), (1, 2)):
            h = self._bn(F.relu(self._conv2d(xp, conv_i)), bn_i, 1)
            front.append(h.amax(dim=3))  # (B, 204, T)
        # front-end: temporal, TF 'same' for stride 1: (k-1)//2 before, k-1-(k-1)//2 after
        for conv_i, bn_i, k in ((2, 3, 128), (3, 4, 64), (4, 5, 32)):
            h = self._conv2d(F.pad(x, (0, 0, (k - 1) // 2, k - 1 - (k - 1) // 2)), conv_i)
            h = self._bn(F.relu(h), bn_i, 1)
            front.append(h.amax(dim=3))  # (B, 51, T)
        frontend = torch.cat(front, dim=1)  # (B, 561, T)

        # mid-end
        c1 = self._bn(F.relu(self._conv_time(frontend, 5)), 6, 1)
        c2 = self._bn(F.relu(self._conv_time(c1, 6)), 7, 1) + c1
        c3 = self._bn(F.relu(self._conv_time(c2, 7)), 8, 1) + c2
        mid = torch.cat([frontend, c1, c2, c3], dim=1)  # (B, 753, T)

        # back-end: [max, mean] interleaved per feature, as TF's concat(axis=2) + flatten gives
        max_pool, mean_pool = mid.amax(dim=2), mid.mean(dim=2)
        flat = torch.stack([max_pool, mean_pool], dim=2).reshape(x.shape[0], -1)  # (B, 1506)
        flat = self._bn(flat, 9, 1)
        penultimate = self._bn(F.relu(self._dense(flat, 0)), 10, 1)
        logits = self._dense(penultimate, 1)
        return {
            "taggram": torch.sigmoid(logits), "logits": logits,
            "timbral": torch.cat(front[:2], 1).transpose(1, 2), "temporal": torch.cat(front[2:], 1).transpose(1, 2),
            "cnn1": c1.transpose(1, 2), "cnn2": c2.transpose(1, 2), "cnn3": c3.transpose(1, 2),
            "mean_pool": mean_pool, "max_pool": max_pool, "penultimate": penultimate,
        }


def embed(net: Musicnn, y: np.ndarray, seconds: float = 3.0) -> dict[str, np.ndarray]:
    """Fixed-size embeddings of one clip: pad with zeros / trim to ``seconds`` at 16 kHz, one
    187-frame patch, the network's pooled features. Returns 1-D float32 arrays."""
    n = int(round(seconds * SR))
    y = np.pad(y[:n], (0, max(0, n - len(y))))
    rep = log_mel(y)[:N_FRAMES]
    out = net(torch.from_numpy(rep[None]))
    return {
        "taggram": out["taggram"][0].numpy(),
        "penultimate": out["penultimate"][0].numpy(),
        "mean_pool": out["mean_pool"][0].numpy(),
        "max_pool": out["max_pool"][0].numpy(),
    }
