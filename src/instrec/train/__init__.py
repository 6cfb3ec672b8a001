"""Training a network: the loop every recipe uses (:mod:`.loop`) and the checkpoints that let a
killed run resume (:mod:`.checkpoint`)."""

from .loop import fit_network, seed_everything

__all__ = ["fit_network", "seed_everything"]
