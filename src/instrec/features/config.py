"""``FeatureConfig``: everything needed to recompute a feature exactly; a model bundle stores it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..errors import ParameterError

# image: the tutorial's spectrogram picture; mfcc: MFCC summaries; waveform: a fixed-length window
# of the waveform, whose log-mel spectrogram the network computes itself (models.frontend.LogMel).
FEATURE_KINDS = ("image", "mfcc", "waveform")
# what bundles written before 2026-12-05 called a kind
_OLD_KIND_NAMES = {"logmel": "waveform"}
IMAGE_MODES = ("gray", "rgb")
# mfcc: what summarises the MFCC matrix over time, joined by "+" ("mean": the tutorial's 40
# values; "mean+std+contrast": their means and standard deviations plus librosa's spectral
# contrast, 7 octave bands, averaged over time)
MFCC_STATS = ("mean", "std", "contrast")
CONTRAST_BANDS = 7  # librosa.feature.spectral_contrast's n_bands=6 gives 6 + 1 rows


@dataclass(frozen=True)
class FeatureConfig:
    """Parameters of a feature, named as librosa names them."""

    kind: str = "mfcc"
    sr: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    top_db: float = 80.0
    n_mfcc: int = 40
    width: int = 640
    height: int = 480
    image_mode: str = "gray"
    seconds: float = 3.0  # waveform: window length; shorter clips are padded with silence
    fmin: float = 0.0
    fmax: float | None = None
    stats: str = "mean"  # mfcc: see MFCC_STATS
    # semitones the audio is shifted by before the feature is computed: training makes
    # pitch-shifted copies of its clips with it (TrainConfig.pitch_shifts); a model is always
    # served with 0
    pitch_shift: float = 0.0

    def __post_init__(self):
        if self.kind not in FEATURE_KINDS:
            raise ParameterError(f"feature kind must be one of {', '.join(FEATURE_KINDS)}; got {self.kind!r}")
        if self.image_mode not in IMAGE_MODES:
            raise ParameterError(f"image_mode must be gray or rgb; got {self.image_mode!r}")
        for name in ("sr", "n_fft", "hop_length", "n_mels", "n_mfcc", "width", "height"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ParameterError(f"{name} must be a positive integer; got {v!r}")
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, (int, float)) or not 0.05 <= self.seconds <= 600:
            raise ParameterError(f"seconds must be between 0.05 and 600; got {self.seconds!r}")
        parts = self.stat_names if isinstance(self.stats, str) else []
        if not parts or any(p not in MFCC_STATS for p in parts) or len(set(parts)) != len(parts):
            raise ParameterError(f"stats must join some of {', '.join(MFCC_STATS)} with '+', e.g. mean+std; got {self.stats!r}")
        if "contrast" in parts and self.sr <= 12800:  # the top octave band starts at 6,400 Hz
            raise ParameterError(f"spectral contrast needs sr above 12800; got {self.sr}")
        if isinstance(self.pitch_shift, bool) or not isinstance(self.pitch_shift, (int, float)) or not abs(self.pitch_shift) <= 12:
            raise ParameterError(f"pitch_shift must be between -12 and 12 semitones; got {self.pitch_shift!r}")
        for name, v in (("top_db", self.top_db), ("fmin", self.fmin), ("fmax", self.fmax)):  # review: unchecked
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ParameterError(f"{name} must be a number; got {v!r}")
        if self.top_db is not None and not 0 < self.top_db <= 400:  # model.schema.json's bounds
            raise ParameterError(f"top_db must be a positive number of decibels (at most 400); got {self.top_db!r}")
        if not 0 <= self.fmin < (self.sr / 2 if self.fmax is None else self.fmax) <= self.sr / 2:
            raise ParameterError(f"fmin and fmax must satisfy 0 <= fmin < fmax <= sr / 2 = {self.sr / 2:g} (fmax None: "
                                 f"sr / 2); got fmin {self.fmin!r}, fmax {self.fmax!r}")
        for name in ("seconds", "top_db", "fmin", "fmax", "pitch_shift"):  # 3 and 3.0: one feature, one cache key
            v = getattr(self, name)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                object.__setattr__(self, name, float(v))
        # more than 2,000 frames a second is no spectrogram but a memory bomb (hop_length 1: a
        # 3-s window would need half a gigabyte)
        if self.hop_length * 2000 < self.sr:
            raise ParameterError(f"hop_length must be at least sr / 2000 = {-(-self.sr // 2000)}; got {self.hop_length}")
        if self.kind == "waveform":  # a fixed window: bound the spectrogram one clip makes (about 200 MB)
            cells = (1 + self.dim // self.hop_length) * (self.n_fft // 2 + 1)
            if cells > 50_000_000:
                raise ParameterError(f"a waveform window of {self.seconds:g} s with n_fft {self.n_fft} and hop_length "
                                     f"{self.hop_length} makes {cells:,} spectrogram cells; at most 50,000,000")

    @property
    def stat_names(self) -> list[str]:
        """``stats`` split into its parts: ``"mean+std"`` → ``["mean", "std"]``."""
        return self.stats.split("+")

    @property
    def dim(self) -> int:
        """Length of the flat feature vector."""
        if self.kind == "image":
            return self.width * self.height * (3 if self.image_mode == "rgb" else 1)
        if self.kind == "waveform":
            return int(round(self.seconds * self.sr))
        parts = self.stat_names
        return self.n_mfcc * (("mean" in parts) + ("std" in parts)) + CONTRAST_BANDS * ("contrast" in parts)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
        if isinstance(d, dict) and d.get("kind") in _OLD_KIND_NAMES:
            d = {**d, "kind": _OLD_KIND_NAMES[d["kind"]]}
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ParameterError(f"unknown feature parameters: {', '.join(sorted(unknown))}")
        return cls(**d)
