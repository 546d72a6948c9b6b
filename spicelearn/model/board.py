"""A board: one realisation of a :class:`~spicelearn.model.hardware.Hardware` design, a value per part.

The design gives nominal values; a board holds the value of every part actually
fitted: the end-to-end resistance R_AB and the wiper resistance of each
potentiometer of each twin, the capacitance of every edge (``per_edge``) or node
(``global``), shared by the twins or one per twin, the leakage resistance of
every edge capacitor, and the input offset of each of the two comparators of
every edge. Engines simulate boards, so an edge's free and clamped twins may
differ and every part may have its own value. :meth:`Board.nominal` is the
ideal board of a design on a network; :meth:`Board.draw` draws one board from
the design's tolerances.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..checks import positive, show
from ..errors import ConfigError
from .hardware import R0, Hardware
from .network import CompiledNetwork

__all__ = ["Board", "TWINS", "COMPARATORS"]

#: Order of the twin axis of per-twin arrays.
TWINS = ("free", "clamped")
#: The two comparators of an edge: ``dv_F - dv_C`` and ``dv_F + dv_C`` (``xor``) or ``dv_C`` (``xor-legacy``).
COMPARATORS = ("difference", "second")


def _check_design(network, hardware) -> None:
    """A compiled network and a Hardware, as a board is made for or checked against."""
    if not isinstance(network, CompiledNetwork):
        raise ConfigError(f"`network` must be a compiled network (load_network), got {type(network).__name__}")
    if not isinstance(hardware, Hardware):
        raise ConfigError(f"`hardware` must be a spicelearn Hardware, got {type(hardware).__name__}")


def _part_values(name: str, value) -> np.ndarray:
    """A board's part values as a new float array (the caller's array is neither kept nor made read-only); numbers
    only: not text, booleans or complex numbers."""
    a = np.asarray(value)
    if a.dtype.kind not in "iuf":
        raise ConfigError(f"board `{name}` must be an array of numbers, got dtype {a.dtype}")
    return np.array(a, dtype=float)


def _check_part(name: str, values: np.ndarray, shape: tuple, valid: np.ndarray, rule: str) -> None:
    """A board's part values of ``shape`` where ``valid`` (their elementwise check) holds; else one error with the
    shape, or the first value at fault and its index."""
    if values.shape != shape:
        raise ConfigError(f"board `{name}` must have shape {shape}, got shape {values.shape}")
    if not np.all(valid):
        i = tuple(int(k) for k in np.argwhere(~valid)[0])
        raise ConfigError(f"board `{name}` must be {rule}, got {show(values[i])} at {list(i)} "
                          f"({int(np.count_nonzero(~valid))} of {values.size} values)")


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
    capacitance : ndarray, shape (E,) or (2, E) for ``per_edge``, (N,) or (2, N) for ``global``
        Capacitance in farad of every edge capacitor, or of every node to ground:
        one value shared by both twins, or a row per twin.
    offset : ndarray, shape (2, E)
        Input offset (volt) of the two comparators of every edge.
    wiper : ndarray, shape (2, E), optional
        Wiper resistance (ohm) in series with every pot (default 0).
    leakage : ndarray, shape (2, E), optional
        Leakage resistance (ohm) in parallel with every edge capacitor of each twin
        (default inf: none; ``per_edge`` only).
    """

    hardware: Hardware
    gamma_l: float
    r_ab: np.ndarray
    capacitance: np.ndarray
    offset: np.ndarray
    wiper: np.ndarray | None = None
    leakage: np.ndarray | None = None

    def __post_init__(self):
        if not isinstance(self.hardware, Hardware):
            raise ConfigError(f"board `hardware` must be a spicelearn Hardware, got {type(self.hardware).__name__}")
        r_ab, offset, cap = (_part_values(name, getattr(self, name)) for name in ("r_ab", "offset", "capacitance"))
        E = r_ab.shape[-1] if r_ab.ndim == 2 else -1
        wiper = np.zeros((2, max(E, 0))) if self.wiper is None else _part_values("wiper", self.wiper)
        leakage = np.full((2, max(E, 0)), np.inf) if self.leakage is None else _part_values("leakage", self.leakage)
        if r_ab.ndim != 2 or r_ab.shape[0] != 2:
            raise ConfigError(f"board `r_ab` must have shape (2, E), a row per twin, got shape {r_ab.shape}")
        _check_part("r_ab", r_ab, (2, E), np.isfinite(r_ab) & (r_ab > 0), "finite and > 0 ohm")
        _check_part("offset", offset, (2, E), np.isfinite(offset), "finite volts")
        _check_part("wiper", wiper, (2, E), np.isfinite(wiper) & (wiper >= 0), "finite and >= 0 ohm")
        _check_part("leakage", leakage, (2, E), leakage > 0, "> 0 ohm (inf: none)")
        per_edge = self.hardware.capacitance_model == "per_edge"
        if not per_edge and np.any(np.isfinite(leakage)):
            raise ConfigError("board `leakage` is modelled for per-edge capacitors only (global model: give none)")
        if cap.ndim not in (1, 2) or (cap.ndim == 2 and cap.shape[0] != 2):
            raise ConfigError(f"board `capacitance` must have one value per {'edge' if per_edge else 'node'} (or "
                              f"a row of them per twin), got shape {cap.shape}")
        _check_part("capacitance", cap, cap.shape, np.isfinite(cap) & (cap > 0), "finite and > 0 farad")
        if per_edge and cap.shape[-1] != E:
            raise ConfigError(f"board `capacitance` must have one value per edge, shape ({E},) or (2, {E}), "
                              f"got {cap.shape}")
        gamma_l = positive("gamma_l", self.gamma_l)
        for name, value in (("r_ab", r_ab), ("offset", offset), ("capacitance", cap), ("wiper", wiper),
                            ("leakage", leakage)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "gamma_l", gamma_l)

    @classmethod
    def nominal(cls, network: CompiledNetwork, hardware: Hardware) -> "Board":
        """The ideal board of ``hardware`` on ``network``: every part at its nominal value.

        Edge capacitances: the design's value when it gives one, else the graph's
        per-edge ``capacitance`` attributes (``per_edge``), else 2.2 uF. The clock
        the design gives (R or gamma_l) is kept and the other derived from the
        board's typical capacitance (:attr:`typical_capacitance`).
        """
        _check_design(network, hardware)
        parts = _nominal_parts(network, hardware)
        gamma_l, _ = hardware.clock(_typical(parts["capacitance"]))
        return cls(hardware=hardware, gamma_l=gamma_l, **parts)

    @classmethod
    def draw(cls, network: CompiledNetwork, hardware: Hardware, rng) -> "Board":
        """One board of ``hardware`` on ``network`` with its part values drawn from the design's tolerances.

        Each pot pair's R_AB is drawn once (``Potentiometer.tolerance``), then split between the
        twins by ``twin_mismatch``; every capacitor of each twin (``Capacitor.tolerance``) and every
        comparator's offset (``Comparator.offset_sigma``) is drawn on its own. Wiper and leakage
        resistances are the design's. The clock is the nominal board's: a crystal does not know the
        capacitors. With no spread in the design, the nominal board, whatever ``rng``.

        Parameters
        ----------
        network : CompiledNetwork
        hardware : Hardware
        rng : numpy.random.Generator
            The board's own stream (draws in a fixed order: pots, mismatch, capacitors, offsets).
        """
        if not isinstance(rng, np.random.Generator):
            raise ConfigError(f"`rng` must be a numpy.random.Generator (np.random.default_rng(seed)), got "
                              f"{type(rng).__name__}")
        board = cls.nominal(network, hardware)
        pot, capacitor, comp = hardware.pot, hardware.capacitor, hardware.comparator
        E = network.n_edges
        changes = {}
        if hardware.has_spread:
            r_ab = board.r_ab[0] * _spread(rng, pot.tolerance, pot.distribution, E)
            split = 0.5 * pot.twin_mismatch * rng.standard_normal(E)
            changes["r_ab"] = np.stack([r_ab * (1 + split), r_ab * (1 - split)])
            cap = board.capacitance
            spread = _spread(rng, capacitor.tolerance, capacitor.distribution, (2, cap.size))
            changes["capacitance"] = cap * spread if capacitor.tolerance else cap
            changes["offset"] = board.offset + comp.offset_sigma * rng.standard_normal((2, E))
        return board.replace(**changes) if changes else board

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
        """Whether both twins of every edge have the same parts (resistance at every position, capacitors)."""
        return bool(all(np.array_equal(a[0], a[1]) for a in (self.r_ab, self.wiper, self.leakage))
                    and (self.capacitance.ndim == 1 or np.array_equal(self.capacitance[0], self.capacitance[1])))

    @property
    def capacitors_identical(self) -> bool:
        """Whether both twins have the same capacitors."""
        return self.capacitance.ndim == 1 or bool(np.array_equal(self.capacitance[0], self.capacitance[1]))

    @property
    def has_leakage(self) -> bool:
        return bool(np.any(np.isfinite(self.leakage)))

    def twin_capacitance(self, twin: int) -> np.ndarray:
        """Capacitances of one twin (0 free, 1 clamped), shape (E,) or (N,)."""
        return self.capacitance if self.capacitance.ndim == 1 else self.capacitance[twin]

    def resistance(self, positions, twin: int | None = None) -> np.ndarray:
        """Resistance in ohm of every pot (wiper included) at integer ``positions`` (E,): shape (2, E)
        (free, clamped), or (E,) of one ``twin`` (0 free, 1 clamped). Leakage not included."""
        r_ab, wiper = (self.r_ab, self.wiper) if twin is None else (self.r_ab[twin], self.wiper[twin])
        return (np.asarray(positions) + 1.0) * (r_ab / self.hardware.pot.n_positions) + wiper

    def conductance(self, positions, twin: int | None = None) -> np.ndarray:
        """Conductance in siemens of every edge, pot and capacitor leakage in parallel: shape (2, E), or (E,)
        of one ``twin`` (see :meth:`resistance`)."""
        leakage = self.leakage if twin is None else self.leakage[twin]
        return 1.0 / self.resistance(positions, twin) + 1.0 / leakage

    def capacitance_matrix(self, network: CompiledNetwork, twin: int = 0) -> np.ndarray:
        """The capacitance matrix L_C of one twin, shape (N, N): edge-weighted Laplacian, or the diagonal of
        node capacitors."""
        c = self.twin_capacitance(twin)
        if self.hardware.capacitance_model == "global":
            return np.diag(c)
        return network.laplacian(c)

    def is_nominal(self, network: CompiledNetwork) -> bool:
        """Whether every part is at the value :meth:`nominal` gives (kept per network: the board's arrays are
        read-only, and a batch's runs of one design share one board and ask for each of their run files)."""
        known = self.__dict__.setdefault("_nominal_on", {})
        key = network.content_hash()
        if key not in known:
            known[key] = all(np.array_equal(getattr(self, k), v)
                             for k, v in _nominal_parts(network, self.hardware).items())
        return known[key]

    def check(self, network: CompiledNetwork) -> "Board":
        """``self``, after checking that its arrays fit ``network``."""
        _check_design(network, self.hardware)
        n = network.n_edges if self.hardware.capacitance_model == "per_edge" else network.n_nodes
        if self.n_edges != network.n_edges or self.capacitance.shape[-1] != n:
            raise ConfigError(f"the board has {self.n_edges} pots per twin and {self.capacitance.size} capacitors; "
                              f"network {network.name!r} has {network.n_edges} edges and {network.n_nodes} nodes")
        return self


def _nominal_parts(network: CompiledNetwork, hardware: Hardware) -> dict:
    """The part values of :meth:`Board.nominal` by name (``r_ab``, ``capacitance``, ``offset``, ``wiper``,
    ``leakage``), unchecked arrays."""
    E = network.n_edges
    if hardware.capacitance_model == "per_edge":
        if hardware.capacitance is None and network.capacitance is not None:
            cap = np.array(network.capacitance, dtype=float)
        else:
            cap = np.full(E, hardware.nominal_capacitance)
    else:
        cap = np.full(network.n_nodes, hardware.nominal_capacitance)
    return dict(r_ab=np.full((2, E), float(hardware.pot.r_ab)), capacitance=cap,
                offset=np.full((2, E), float(hardware.comparator.offset)), wiper=np.full((2, E), hardware.pot.wiper),
                leakage=np.full((2, E), hardware.capacitor.leakage))


def _spread(rng, tolerance: float, distribution: str, shape) -> np.ndarray:
    """Relative factors ``1 + delta`` of parts' values: uniform in +/- tolerance, or normal with sigma tolerance
    (draws always made, so that the stream's order does not depend on which tolerances are zero)."""
    if distribution == "uniform":
        return 1.0 + tolerance * rng.uniform(-1.0, 1.0, size=shape)
    return 1.0 + tolerance * rng.standard_normal(shape)


def _typical(capacitance: np.ndarray) -> float:
    """The one value of equal capacitors (exactly), else their mean."""
    c = np.asarray(capacitance, dtype=float)
    return float(c[0]) if np.all(c == c[0]) else float(np.mean(c))
