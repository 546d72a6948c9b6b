"""The learning hardware: digital potentiometers, capacitors, comparators, clock.

Frozen dataclasses. The potentiometer *position* is the one canonical learning
quantity; resistance and conductance are derived from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .checks import check_eta, positive
from .errors import ConfigError

__all__ = ["Potentiometer", "Comparator", "Hardware", "R0", "CAPACITANCE_MODELS", "RULES"]

#: Reference resistance of the scaled learning rate: gamma_p = 1 / (R0 c).
R0 = 10e3
CAPACITANCE_MODELS = ("per_edge", "global")
RULES = ("xor", "xor-legacy")


@dataclass(frozen=True)
class Potentiometer:
    """A digital potentiometer (AD5220-100k by default).

    ``R(k) = (k + 1) * r_ab / n_positions`` for position ``k`` in
    ``0 .. n_positions - 1``; steps past either end are ignored.
    """

    n_positions: int = 128
    r_ab: float = 100e3
    start: int = 63

    def __post_init__(self):
        if int(self.n_positions) != self.n_positions or self.n_positions < 2:
            raise ConfigError(f"`n_positions` must be an integer >= 2, got {self.n_positions!r}")
        positive("r_ab", self.r_ab)
        if int(self.start) != self.start or not 0 <= self.start < self.n_positions:
            raise ConfigError(f"`start` must be an integer in 0..{self.n_positions - 1}, got {self.start!r}")

    def resistance(self, position) -> np.ndarray:
        """Resistance in ohm of integer ``position`` (any shape)."""
        return (np.asarray(position) + 1.0) * (self.r_ab / self.n_positions)

    def conductance(self, position) -> np.ndarray:
        """Conductance in siemens of integer ``position`` (any shape)."""
        return 1.0 / self.resistance(position)

    def step(self, position: np.ndarray, up: np.ndarray) -> np.ndarray:
        """Move every pot one position up (``up`` true) or down, clipped to the range."""
        return np.clip(np.asarray(position) + np.where(up, 1, -1), 0, self.n_positions - 1)

    def check_positions(self, position, n_edges: int) -> np.ndarray:
        """Validate an array of positions of ``n_edges`` edges."""
        p = np.asarray(position)
        if p.shape != (n_edges,):
            raise ConfigError(f"`positions` must have shape ({n_edges},), got {p.shape}")
        if not np.all(np.isfinite(p)) or np.any(p != np.round(p)) or p.min() < 0 or p.max() >= self.n_positions:
            raise ConfigError(f"`positions` must be integers in 0..{self.n_positions - 1}, got range "
                              f"[{np.nanmin(p)}, {np.nanmax(p)}]")
        return p.astype(int)


@dataclass(frozen=True)
class Comparator:
    """The comparator pair of every edge: Gaussian noise ``noise`` (V rms) and an ``offset`` (V)."""

    noise: float = 0.0
    offset: float = 0.0

    def __post_init__(self):
        if not (math.isfinite(self.noise) and self.noise >= 0):
            raise ConfigError(f"`noise` must be finite and >= 0 volt, got {self.noise!r}")
        if not math.isfinite(self.offset):
            raise ConfigError(f"`offset` must be finite, got {self.offset!r}")


@dataclass(frozen=True)
class Hardware:
    """The learning board.

    Attributes
    ----------
    capacitance : float or tuple of float
        Capacitance in farad: one value, or one per edge (``per_edge`` model
        only). For ``global`` it is the capacitance of every node to ground.
    capacitance_model : {"per_edge", "global"}
    gamma_l : float
        Clock rate in Hz; a clock period is ``1 / gamma_l``.
    eta : float
        Nudge of the clamped targets, in (0, 1].
    rule : {"xor", "xor-legacy"}
    pot : Potentiometer
    comparator : Comparator
    """

    capacitance: float | tuple = 2.2e-6
    capacitance_model: str = "per_edge"
    gamma_l: float = field(default=1.0 / (R0 * 2.2e-6))
    eta: float = 0.5
    rule: str = "xor"
    pot: Potentiometer = field(default_factory=Potentiometer)
    comparator: Comparator = field(default_factory=Comparator)

    def __post_init__(self):
        if self.capacitance_model not in CAPACITANCE_MODELS:
            raise ConfigError(f"`capacitance_model` must be one of {CAPACITANCE_MODELS}, got {self.capacitance_model!r}")
        if np.ndim(self.capacitance) == 0:
            object.__setattr__(self, "capacitance", positive("capacitance", self.capacitance))
        else:
            if self.capacitance_model == "global":
                raise ConfigError("`capacitance` must be one value with the `global` model (one C per node to ground)")
            caps = tuple(positive("capacitance", c) for c in np.ravel(self.capacitance))
            object.__setattr__(self, "capacitance", caps)
        positive("gamma_l", self.gamma_l)
        check_eta(self.eta)
        if self.rule not in RULES:
            raise ConfigError(f"`rule` must be one of {RULES}, got {self.rule!r}")

    @classmethod
    def from_R(cls, R: float, capacitance: float | tuple = 2.2e-6, **kwargs) -> "Hardware":
        """Hardware whose clock gives the scaled learning rate ``R = R0 c gamma_l``."""
        R = positive("R", R)
        c = float(np.mean(capacitance)) if np.ndim(capacitance) else positive("capacitance", capacitance)
        return cls(capacitance=capacitance, gamma_l=R / (R0 * c), **kwargs)

    @property
    def typical_capacitance(self) -> float:
        """The capacitance c in ``gamma_p = 1 / (R0 c)``: the value, or the mean per-edge value."""
        return float(np.mean(self.capacitance))

    @property
    def gamma_p(self) -> float:
        """Typical physical relaxation rate ``1 / (R0 c)`` in Hz."""
        return 1.0 / (R0 * self.typical_capacitance)

    @property
    def R(self) -> float:
        """Scaled learning rate ``gamma_l / gamma_p``."""
        return self.gamma_l / self.gamma_p

    @property
    def period(self) -> float:
        """Clock period ``1 / gamma_l`` in seconds."""
        return 1.0 / self.gamma_l

    def edge_capacitance(self, n_edges: int) -> np.ndarray:
        """Per-edge capacitances, shape (E,) (``per_edge`` model)."""
        c = np.asarray(self.capacitance, dtype=float)
        if c.ndim == 0:
            return np.full(n_edges, float(c))
        if c.shape != (n_edges,):
            raise ConfigError(f"`capacitance` has {c.size} values but the network has {n_edges} edges")
        return c

    def attrs(self) -> dict:
        """Flat parameter dictionary for run-file attributes."""
        cap = self.capacitance
        return {
            "capacitance": cap if np.ndim(cap) == 0 else float(np.mean(cap)),
            "capacitance_per_edge": int(np.ndim(cap) > 0),
            "capacitance_model": self.capacitance_model,
            "gamma_l": self.gamma_l, "R": self.R, "eta": self.eta, "rule": self.rule,
            "pot_positions": self.pot.n_positions, "pot_r_ab": self.pot.r_ab, "pot_start": self.pot.start,
            "comparator_noise": self.comparator.noise, "comparator_offset": self.comparator.offset,
        }
