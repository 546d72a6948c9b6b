"""The design of the learning hardware: digital potentiometers, capacitors, comparators, clock.

Frozen dataclasses of nominal values; :mod:`spicelearn.model.board` realises them part by part. The potentiometer *position* is the one canonical learning
quantity; resistance and conductance are derived from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..checks import check_eta, positive
from ..errors import ConfigError

__all__ = ["Potentiometer", "Comparator", "Hardware", "R0", "CAPACITANCE_MODELS", "RULES", "DEFAULT_CAPACITANCE"]

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
        if p.dtype.kind not in "iuf":
            raise ConfigError(f"`positions` must be integers in 0..{self.n_positions - 1}, got dtype {p.dtype}")
        integral = p.dtype.kind in "iu" or (np.all(np.isfinite(p)) and np.all(p == np.round(p)))
        if not integral or p.min() < 0 or p.max() >= self.n_positions:
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


#: Capacitance of every edge (farad) where neither the hardware nor the graph gives one.
DEFAULT_CAPACITANCE = 2.2e-6


@dataclass(frozen=True)
class Hardware:
    """The design of a learning board: nominal part values (one realisation is a :class:`Board`).

    Attributes
    ----------
    capacitance : float or None
        Nominal capacitance in farad: of every edge (``per_edge``) or of every
        node to ground (``global``). None (the default): the graph's per-edge
        ``capacitance`` attributes where it has them (``per_edge`` only), else
        ``DEFAULT_CAPACITANCE`` = 2.2 uF. A value given here wins over the graph's.
    capacitance_model : {"per_edge", "global"}
    R, gamma_l : float or None
        The clock: the scaled learning rate ``R = R0 c gamma_l`` or the clock
        rate ``gamma_l`` in Hz; give one, not both (neither: ``R = 1``). The one
        given is kept; the other is derived on a network from the capacitance
        actually used there (``c`` = the mean edge capacitance of the board).
    eta : float
        Nudge of the clamped targets, in (0, 1].
    rule : {"xor", "xor-legacy"}
    pot : Potentiometer
    comparator : Comparator
    """

    capacitance: float | None = None
    capacitance_model: str = "per_edge"
    R: float | None = None
    gamma_l: float | None = None
    eta: float = 0.5
    rule: str = "xor"
    pot: Potentiometer = field(default_factory=Potentiometer)
    comparator: Comparator = field(default_factory=Comparator)

    def __post_init__(self):
        if self.capacitance_model not in CAPACITANCE_MODELS:
            raise ConfigError(f"`capacitance_model` must be one of {CAPACITANCE_MODELS}, got {self.capacitance_model!r}")
        if self.capacitance is not None:
            if np.ndim(self.capacitance) != 0:
                raise ConfigError("`capacitance` must be one value in farad (the nominal part); per-edge values "
                                  "go on the graph's edges (`capacitance` attributes) or into a Board")
            object.__setattr__(self, "capacitance", positive("capacitance", self.capacitance))
        if self.R is not None and self.gamma_l is not None:
            raise ConfigError("give either `R` or `gamma_l`, not both")
        if self.gamma_l is not None:
            object.__setattr__(self, "gamma_l", positive("gamma_l", self.gamma_l))
        else:
            object.__setattr__(self, "R", positive("R", 1.0 if self.R is None else self.R))
        check_eta(self.eta)
        if self.rule not in RULES:
            raise ConfigError(f"`rule` must be one of {RULES}, got {self.rule!r}")

    @classmethod
    def from_R(cls, R: float, capacitance: float | None = None, **kwargs) -> "Hardware":
        """Hardware whose clock gives the scaled learning rate ``R = R0 c gamma_l``."""
        return cls(capacitance=capacitance, R=R, **kwargs)

    def clock(self, capacitance: float) -> tuple[float, float]:
        """``(gamma_l, R)`` with typical capacitance ``capacitance``: the one given kept, the other derived."""
        c = positive("capacitance", capacitance)
        if self.gamma_l is not None:
            return self.gamma_l, R0 * c * self.gamma_l
        return self.R / (R0 * c), self.R

    @property
    def nominal_capacitance(self) -> float:
        """The capacitance given, else ``DEFAULT_CAPACITANCE`` (what a board without graph values uses)."""
        return DEFAULT_CAPACITANCE if self.capacitance is None else self.capacitance

    @property
    def period(self) -> float:
        """Clock period ``1 / gamma_l`` in seconds at the nominal capacitance."""
        return 1.0 / self.clock(self.nominal_capacitance)[0]

    @property
    def gamma_p(self) -> float:
        """Typical physical relaxation rate ``1 / (R0 c)`` in Hz at the nominal capacitance."""
        return 1.0 / (R0 * self.nominal_capacitance)

    def attrs(self) -> dict:
        """Flat dictionary of the design for run-file attributes (the clock is the board's)."""
        return {
            "capacitance_nominal": -1.0 if self.capacitance is None else self.capacitance,
            "capacitance_model": self.capacitance_model, "clock_given": "R" if self.gamma_l is None else "gamma_l",
            "eta": self.eta, "rule": self.rule,
            "pot_positions": self.pot.n_positions, "pot_r_ab": self.pot.r_ab, "pot_start": self.pot.start,
            "comparator_noise": self.comparator.noise, "comparator_offset": self.comparator.offset,
        }

    @classmethod
    def from_attrs(cls, attrs) -> "Hardware":
        """The design recorded by :meth:`attrs` (run files of older versions: their resolved values)."""
        a = attrs
        cap = float(a.get("capacitance_nominal", a.get("capacitance", -1.0)))
        clock = {"gamma_l": float(a["gamma_l"])} if a.get("clock_given", "gamma_l") == "gamma_l" \
            else {"R": float(a["R"])}
        return cls(capacitance=None if cap < 0 else cap, capacitance_model=str(a["capacitance_model"]),
                   eta=float(a["eta"]), rule=str(a["rule"]),
                   pot=Potentiometer(int(a["pot_positions"]), float(a["pot_r_ab"]), int(a["pot_start"])),
                   comparator=Comparator(float(a["comparator_noise"]), float(a["comparator_offset"])), **clock)
