"""Where clips come from: folders of audio, manifests, and FluidSynth renders."""

from .folder import Clip, Dataset, load_dataset

__all__ = ["Clip", "Dataset", "load_dataset"]
