"""A board: one realisation of a :class:`~spicelearn.model.hardware.Hardware` design, a value per part.

The design gives nominal values; a board holds the value of every part actually
fitted: the end-to-end resistance R_AB of each potentiometer of each twin, the
capacitance of every edge (``per_edge``) or node (``global``), and the input
offset of each of the two comparators of every edge. Engines simulate boards,
so an edge's free and clamped twins may differ and every edge may have its own
capacitor. :meth:`Board.nominal` is the ideal board of a design on a network.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import ConfigError
from .hardware import R0, Hardware
from .network import CompiledNetwork

__all__ = ["Board", "TWINS", "COMPARATORS"]

#: Order of the twin axis of per-twin arrays.
TWINS = ("free", "clamped")
#: The two comparators of an edge: ``dv_F - dv_C`` and ``dv_F + dv_C`` (``xor``) or ``dv_C`` (``xor-legacy``).
COMPARATORS = ("difference", "second")


@dataclass(frozen=True, eq=False)
class Board:
    """Part values of one board.

    Attributes
    ----------
    hardware : Hardware
        The design it realises (eta, rule, pot law, comparator noise, model).
    gamma_l : float
        Clock rate in Hz: as the design gives it, or derived from ``R`` with the
        board's typical capacitance.
    r_ab : ndarray, shape (2, E)
        End-to-end resistance (ohm) of every pot, rows free and clamped twin.
    capacitance : ndarray, shape (E,) for ``per_edge``, (N,) for ``global``
        Capacitance in farad of every edge capacitor, or of every node to ground.
    offset : ndarray, shape (2, E)
        Input offset (volt) of the two comparators of every edge.
    """

    hardware: Hardware
    gamma_l: float
    r_ab: np.ndarray
    capacitance: np.ndarray
    offset: np.ndarray

    def __post_init__(self):
        r_ab = np.asarray(self.r_ab, dtype=float)
        offset = np.asarray(self.offset, dtype=float)
        cap = np.asarray(self.capacitance, dtype=float)
        E = r_ab.shape[-1] if r_ab.ndim == 2 else -1
        if r_ab.ndim != 2 or r_ab.shape[0] != 2 or not np.all(np.isfinite(r_ab) & (r_ab > 0)):
            raise ConfigError(f"board `r_ab` must be finite and > 0 ohm with shape (2, E), got shape {r_ab.shape}")
        if offset.shape != (2, E) or not np.all(np.isfinite(offset)):
            raise ConfigError(f"board `offset` must be finite volts with shape (2, {E}), got shape {offset.shape}")
        if cap.ndim != 1 or not np.all(np.isfinite(cap) & (cap > 0)):
            raise ConfigError(f"board `capacitance` must be finite and > 0 farad, one per "
                              f"{'edge' if self.hardware.capacitance_model == 'per_edge' else 'node'}, "
                              f"got shape {cap.shape}")
        if self.hardware.capacitance_model == "per_edge" and cap.shape != (E,):
            raise ConfigError(f"board `capacitance` must have one value per edge, shape ({E},), got {cap.shape}")
        if not (np.isfinite(self.gamma_l) and self.gamma_l > 0):
            raise ConfigError(f"board `gamma_l` must be finite and > 0 Hz, got {self.gamma_l!r}")
        for name, value in (("r_ab", r_ab), ("offset", offset), ("capacitance", cap)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "gamma_l", float(self.gamma_l))

    @classmethod
    def nominal(cls, network: CompiledNetwork, hardware: Hardware) -> "Board":
        """The ideal board of ``hardware`` on ``network``: every part at its nominal value.

        Edge capacitances: the design's value when it gives one, else the graph's
        per-edge ``capacitance`` attributes (``per_edge``), else 2.2 uF. The clock
        the design gives (R or gamma_l) is kept and the other derived from the
        board's typical capacitance (:attr:`typical_capacitance`).
        """
        E = network.n_edges
        if hardware.capacitance_model == "per_edge":
            if hardware.capacitance is None and network.capacitance is not None:
                cap = np.array(network.capacitance, dtype=float)
            else:
                cap = np.full(E, hardware.nominal_capacitance)
        else:
            cap = np.full(network.n_nodes, hardware.nominal_capacitance)
        gamma_l, _ = hardware.clock(_typical(cap))
        return cls(hardware=hardware, gamma_l=gamma_l, r_ab=np.full((2, E), float(hardware.pot.r_ab)),
                   capacitance=cap, offset=np.full((2, E), float(hardware.comparator.offset)))

    def replace(self, **changes) -> "Board":
        """A copy with some part values changed (``dataclasses.replace``); the clock stays as it is."""
        return replace(self, **changes)

    @property
    def n_edges(self) -> int:
        return self.r_ab.shape[1]

    @property
    def typical_capacitance(self) -> float:
        """The capacitance c of ``gamma_p = 1 / (R0 c)``: the mean edge (or node) capacitance."""
        return _typical(self.capacitance)

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

    @property
    def twins_identical(self) -> bool:
        """Whether both twins of every edge have the same resistance at every position."""
        return bool(np.array_equal(self.r_ab[0], self.r_ab[1]))

    def resistance(self, positions, twin: int | None = None) -> np.ndarray:
        """Resistance in ohm of every pot at integer ``positions`` (E,): shape (2, E) (free, clamped), or
        (E,) of one ``twin`` (0 free, 1 clamped)."""
        r_ab = self.r_ab if twin is None else self.r_ab[twin]
        return (np.asarray(positions) + 1.0) * (r_ab / self.hardware.pot.n_positions)

    def conductance(self, positions, twin: int | None = None) -> np.ndarray:
        """Conductance in siemens, shape (2, E) or (E,) of one ``twin`` (see :meth:`resistance`)."""
        return 1.0 / self.resistance(positions, twin)

    def capacitance_matrix(self, network: CompiledNetwork) -> np.ndarray:
        """The capacitance matrix L_C, shape (N, N): edge-weighted Laplacian, or the diagonal of node capacitors."""
        if self.hardware.capacitance_model == "global":
            return np.diag(self.capacitance)
        return network.laplacian(self.capacitance)

    def is_nominal(self, network: CompiledNetwork) -> bool:
        """Whether every part is at the value :meth:`nominal` gives."""
        ref = Board.nominal(network, self.hardware)
        return all(np.array_equal(getattr(self, k), getattr(ref, k)) for k in ("r_ab", "capacitance", "offset"))

    def check(self, network: CompiledNetwork) -> "Board":
        """``self``, after checking that its arrays fit ``network``."""
        n = network.n_edges if self.hardware.capacitance_model == "per_edge" else network.n_nodes
        if self.n_edges != network.n_edges or self.capacitance.shape != (n,):
            raise ConfigError(f"the board has {self.n_edges} pots per twin and {self.capacitance.size} capacitors; "
                              f"network {network.name!r} has {network.n_edges} edges and {network.n_nodes} nodes")
        return self


def _typical(capacitance: np.ndarray) -> float:
    """The one value of equal capacitors (exactly), else their mean."""
    c = np.asarray(capacitance, dtype=float)
    return float(c[0]) if np.all(c == c[0]) else float(np.mean(c))
