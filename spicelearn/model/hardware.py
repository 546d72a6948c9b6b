"""The design of the learning hardware: digital potentiometers, capacitors, comparators, supervisor, clock.

Frozen dataclasses of nominal values and of the imperfections of real parts;
:mod:`spicelearn.model.board` realises them part by part. The potentiometer
*position* is the one canonical learning quantity; resistance and conductance
are derived from it.

Imperfections, each off by default (every one at zero gives bit for bit the
ideal board):

================================  ==========================================================
``Potentiometer.tolerance``       end-to-end resistance R_AB of each part, relative (drawn per board)
``Potentiometer.twin_mismatch``   relative sigma of the difference of an edge's two twins' R_AB
``Potentiometer.wiper``           wiper resistance in series with every pot, ohm
``Potentiometer.miss_probability``  probability that an edge's clock pulse is missed (per tick)
``Capacitor.tolerance``           capacitance of each part, relative (drawn per board)
``Capacitor.leakage``             leakage resistance in parallel with every edge capacitor, ohm
``Comparator.offset_sigma``       sigma of each comparator's input offset, volt (drawn per board)
``Comparator.noise``              input noise of every decision, volt rms
``Supervisor.dac_bits/adc_bits``  resolution of the clamp outputs and of the target reads
``Hardware.jitter``               relative sigma of each tick's relaxation time
================================  ==========================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from ..checks import check_eta, is_real, positive
from ..errors import ConfigError
from .network import MAX_POSITIONS
from .task import nudge

__all__ = ["Potentiometer", "step_positions", "Capacitor", "Comparator", "Supervisor", "Hardware", "R0", "CAPACITANCE_MODELS", "RULES",
           "DEFAULT_CAPACITANCE", "DISTRIBUTIONS", "POT_PARTS", "pot_part"]

#: Reference resistance of the scaled learning rate: gamma_p = 1 / (R0 c).
R0 = 10e3
CAPACITANCE_MODELS = ("per_edge", "global")
RULES = ("xor", "xor-legacy")
#: How a part's value spreads about its nominal: ``uniform`` within +/- tolerance, or ``normal`` with sigma tolerance.
DISTRIBUTIONS = ("uniform", "normal")
#: Largest relative sigma of a normal spread: five sigma below nominal stays above zero.
MAX_NORMAL_SIGMA = 0.2


def _check_spread(name: str, tolerance: float, distribution: str) -> float:
    """A relative tolerance that keeps every drawn value positive."""
    if distribution not in DISTRIBUTIONS:
        raise ConfigError(f"`{name}` distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
    if not is_real(tolerance) or not math.isfinite(tolerance) or tolerance < 0:
        raise ConfigError(f"`{name}` must be a finite relative tolerance >= 0, got {tolerance!r}")
    what = "clock periods" if name == "jitter" else "parts' values"
    if distribution == "uniform" and tolerance >= 1:
        raise ConfigError(f"`{name}`={tolerance!r} would make some {what} non-positive: a uniform "
                          "tolerance must be < 1 (relative, +/-)")
    if distribution == "normal" and tolerance > MAX_NORMAL_SIGMA:
        raise ConfigError(f"`{name}`={tolerance!r} would make some {what} non-positive: a normal sigma "
                          f"must be <= {MAX_NORMAL_SIGMA} (five sigma above zero)")
    return float(tolerance)


def _integral(value) -> bool:
    """Whether ``value`` is a whole number (an int, or a float without a fraction; not bool, NaN or inf)."""
    return (not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
            and math.isfinite(value) and int(value) == value)


def _nonnegative(name: str, value, unit: str) -> float:
    if not is_real(value) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"`{name}` must be finite and >= 0 {unit}, got {value!r}")
    return float(value)


def step_positions(position: np.ndarray, up: np.ndarray, top) -> np.ndarray:
    """Every pot one position up (``up`` true) or down, within ``0..top`` (an int, or an array that broadcasts,
    one top per board); integers, a new array."""
    position = np.asarray(position)
    new = np.where(up, position + 1, position - 1)
    np.maximum(new, 0, out=new)
    return np.minimum(new, top, out=new)


@dataclass(frozen=True)
class Potentiometer:
    """A digital potentiometer (AD5220-100k by default).

    ``R(k) = (k + 1) * r_ab / n_positions + wiper`` for position ``k`` in
    ``0 .. n_positions - 1``; steps past either end are ignored, as the AD5220 does.

    Attributes
    ----------
    n_positions, r_ab, start
        Positions, nominal end-to-end resistance (ohm), start position.
    tolerance : float
        Relative tolerance of each part's R_AB (the AD5220 allows 0.30), drawn once per board.
    distribution : {"uniform", "normal"}
        ``tolerance`` is the half-width of a uniform spread, or the sigma of a normal one.
    twin_mismatch : float
        Relative sigma of the difference between the R_AB of an edge's free and clamped twins
        (matched pairs: ``r_free, r_clamped = r (1 +/- twin_mismatch z / 2)``, z ~ N(0, 1)).
    wiper : float
        Wiper resistance (ohm) in series with every pot.
    miss_probability : float
        Probability that an edge's clock pulse is missed on a tick; both twins of the edge share
        one up/down and clock line, so they miss it together and keep one position.
    part : str or None
        The part's name in :data:`POT_PARTS` (for the KiCad export), when it is one.
    """

    n_positions: int = 128
    r_ab: float = 100e3
    start: int = 63
    tolerance: float = 0.0
    distribution: str = "uniform"
    twin_mismatch: float = 0.0
    wiper: float = 0.0
    miss_probability: float = 0.0
    part: str | None = None

    def __post_init__(self):
        if not _integral(self.n_positions) or not 2 <= self.n_positions <= MAX_POSITIONS:
            raise ConfigError(f"`n_positions` must be an integer in 2..{MAX_POSITIONS:,}, got {self.n_positions!r}")
        object.__setattr__(self, "n_positions", int(self.n_positions))
        object.__setattr__(self, "r_ab", positive("r_ab", self.r_ab))
        if not _integral(self.start) or not 0 <= self.start < self.n_positions:
            raise ConfigError(f"`start` must be an integer in 0..{self.n_positions - 1}, got {self.start!r}")
        object.__setattr__(self, "start", int(self.start))
        object.__setattr__(self, "tolerance", _check_spread("r_ab_tolerance", self.tolerance, self.distribution))
        object.__setattr__(self, "twin_mismatch", _check_spread("twin_mismatch", self.twin_mismatch, "normal"))
        object.__setattr__(self, "wiper", _nonnegative("wiper", self.wiper, "ohm"))
        p = self.miss_probability
        if not is_real(p) or not 0 <= p < 1:
            raise ConfigError(f"`miss_probability` must be in [0, 1), got {p!r}")
        object.__setattr__(self, "miss_probability", float(p))
        if self.part is not None and (not isinstance(self.part, str) or self.part not in POT_PARTS):
            raise ConfigError(f"`part`={self.part!r} is not in the part library; known pots: {sorted(POT_PARTS)}")

    def resistance(self, position) -> np.ndarray:
        """Resistance in ohm of the nominal part at integer ``position`` (any shape), wiper included."""
        return (np.asarray(position) + 1.0) * (self.r_ab / self.n_positions) + self.wiper

    def conductance(self, position) -> np.ndarray:
        """Conductance in siemens of the nominal part at integer ``position`` (any shape)."""
        return 1.0 / self.resistance(position)

    @property
    def is_ideal(self) -> bool:
        """Whether the pots are ideal: no tolerance, mismatch, wiper resistance or missed pulses."""
        return self.tolerance == 0 and self.twin_mismatch == 0 and self.wiper == 0 and self.miss_probability == 0

    def step(self, position: np.ndarray, up: np.ndarray) -> np.ndarray:
        """Move every pot one position up (``up`` true) or down, clipped to the range."""
        return step_positions(position, up, self.n_positions - 1)

    def check_positions(self, position, n_edges: int) -> np.ndarray:
        """Validate an array of positions of ``n_edges`` edges."""
        p = np.asarray(position)
        if p.shape != (n_edges,):
            raise ConfigError(f"`positions` must have shape ({n_edges},), got {p.shape}")
        if p.dtype.kind not in "iuf":
            raise ConfigError(f"`positions` must be integers in 0..{self.n_positions - 1}, got dtype {p.dtype}")
        integral = p.dtype.kind in "iu" or (np.all(np.isfinite(p)) and np.all(p == np.round(p)))
        if not integral or p.min() < 0 or p.max() >= self.n_positions:
            got = f"range [{p.min()}, {p.max()}]" if np.all(np.isfinite(p)) else "values that are not finite"
            raise ConfigError(f"`positions` must be integers in 0..{self.n_positions - 1}, got {got}")
        return p.astype(int)


#: Digital potentiometers of the part library: name -> (positions, nominal R_AB in ohm). The AD5220 comes in
#: 10, 50 and 100 kOhm; the lab board uses the 100 kOhm part.
POT_PARTS = MappingProxyType({"AD5220-10k": (128, 10e3), "AD5220-50k": (128, 50e3), "AD5220-100k": (128, 100e3)})


def pot_part(name: str, **kwargs) -> Potentiometer:
    """The :class:`Potentiometer` of part ``name`` (:data:`POT_PARTS`), with imperfections ``kwargs``."""
    if name not in POT_PARTS:
        raise ConfigError(f"`part`={name!r} is not in the part library; known pots: {sorted(POT_PARTS)}")
    n, r_ab = POT_PARTS[name]
    return Potentiometer(n_positions=n, r_ab=r_ab, part=name, **kwargs)


@dataclass(frozen=True)
class Capacitor:
    """The edge capacitors' imperfections (the nominal value is :attr:`Hardware.capacitance`).

    Attributes
    ----------
    tolerance : float
        Relative tolerance of each part, drawn once per board (each twin has its own capacitors).
    distribution : {"uniform", "normal"}
    leakage : float
        Leakage resistance (ohm) in parallel with every edge capacitor; ``inf`` (the default) for
        none. Electrolytics of 220 uF and up leak through some MOhm.
    """

    tolerance: float = 0.0
    distribution: str = "uniform"
    leakage: float = math.inf

    def __post_init__(self):
        object.__setattr__(self, "tolerance", _check_spread("capacitance_tolerance", self.tolerance,
                                                            self.distribution))
        leak = self.leakage
        if not is_real(leak) or math.isnan(leak) or not leak > 0 or not math.isfinite(1.0 / leak):
            raise ConfigError(f"`leakage` must be > 0 ohm (inf: none; a conductance 1 / leakage that is finite), got "
                              f"{leak!r}")
        object.__setattr__(self, "leakage", float(leak))

    @property
    def is_ideal(self) -> bool:
        return self.tolerance == 0 and math.isinf(self.leakage)


@dataclass(frozen=True)
class Comparator:
    """The comparator pair of every edge.

    Attributes
    ----------
    noise : float
        Gaussian input noise of every decision, volt rms.
    offset : float
        Input offset common to every comparator, volt (the mean of the parts' offsets).
    offset_sigma : float
        Sigma of each comparator's own input offset about ``offset``, volt; drawn once per board.
    """

    noise: float = 0.0
    offset: float = 0.0
    offset_sigma: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "noise", _nonnegative("noise", self.noise, "volt"))
        offset = self.offset
        if not is_real(offset) or not math.isfinite(offset):
            raise ConfigError(f"`offset` must be a finite number of volts, got {offset!r}")
        object.__setattr__(self, "offset", float(offset))
        object.__setattr__(self, "offset_sigma", _nonnegative("offset_sigma", self.offset_sigma, "volt"))


@dataclass(frozen=True)
class Supervisor:
    """The supervisor's converters: it reads the free targets through an ADC and sets the clamps through a DAC.

    A converter of ``bits`` over ``range = (low, high)`` volts has ``2**bits`` levels ``low + k lsb``,
    ``lsb = (high - low) / (2**bits - 1)``; a voltage is rounded to the nearest level, and one
    outside the range saturates at its end. ``bits`` None (the default): an ideal converter.
    """

    dac_bits: int | None = None
    dac_range: tuple = (-2.5, 2.5)
    adc_bits: int | None = None
    adc_range: tuple = (-2.5, 2.5)

    def __post_init__(self):
        for kind in ("dac", "adc"):
            bits, rng = getattr(self, f"{kind}_bits"), getattr(self, f"{kind}_range")
            if bits is not None and (not _integral(bits) or not 1 <= bits <= 32):
                raise ConfigError(f"`{kind}_bits` must be an integer in 1..32 (or none: ideal), got {bits!r}")
            pair = tuple(rng) if isinstance(rng, (list, tuple, np.ndarray)) else ()
            if len(pair) != 2 or not all(is_real(x) for x in pair):  # ('01' would be two volts, a dict its keys)
                raise ConfigError(f"`{kind}_range` must be two volts [low, high], got {rng!r}")
            lo, hi = (float(x) for x in pair)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi and math.isfinite(hi - lo)):
                raise ConfigError(f"`{kind}_range` must be two finite volts with low < high (and a finite span), got "
                                  f"{rng!r}")
            object.__setattr__(self, f"{kind}_range", (lo, hi))
            object.__setattr__(self, f"{kind}_bits", None if bits is None else int(bits))

    @property
    def is_ideal(self) -> bool:
        return self.dac_bits is None and self.adc_bits is None

    @staticmethod
    def _quantize(v, bits: int | None, rng: tuple) -> np.ndarray:
        if bits is None:
            return v
        lo, hi = rng
        lsb = (hi - lo) / (2 ** bits - 1)
        return lo + np.round((np.clip(v, lo, hi) - lo) / lsb) * lsb

    def read(self, v) -> np.ndarray:
        """What the ADC reads of voltages ``v`` (any shape)."""
        return self._quantize(v, self.adc_bits, self.adc_range)

    def write(self, v) -> np.ndarray:
        """What the DAC puts out for wanted voltages ``v`` (any shape)."""
        return self._quantize(v, self.dac_bits, self.dac_range)

    def clamp(self, task, v_free, eta: float) -> np.ndarray:
        """The clamps the supervisor sets from the free node voltages ``v_free`` (N,): read the targets,
        nudge them towards their wanted values (:func:`spicelearn.model.task.nudge`), write them out;
        shape (M_T,)."""
        return self.nudge(np.asarray(v_free)[..., task.target_index], task.target_voltage, eta)

    def nudge(self, v_target, target_voltage, eta) -> np.ndarray:
        """The clamps from the free targets' voltages ``v_target`` (..., M_T): read, nudge
        (:func:`spicelearn.model.task.nudge`; ``target_voltage`` and ``eta`` broadcast), write."""
        if self.is_ideal:
            return nudge(v_target, target_voltage, eta)  # exactly the ideal supervisor's arithmetic
        return self.write(nudge(self.read(v_target), target_voltage, eta))


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
    capacitor : Capacitor
        Tolerance and leakage of the capacitors.
    supervisor : Supervisor
        Its converters (ideal by default).
    jitter : float
        Relative sigma of each tick's relaxation time (the clock's period jitter):
        ``T_k = max(0, T (1 + jitter z_k))``, z_k ~ N(0, 1).
    """

    capacitance: float | None = None
    capacitance_model: str = "per_edge"
    R: float | None = None
    gamma_l: float | None = None
    eta: float = 0.5
    rule: str = "xor"
    pot: Potentiometer = field(default_factory=Potentiometer)
    comparator: Comparator = field(default_factory=Comparator)
    capacitor: Capacitor = field(default_factory=Capacitor)
    supervisor: Supervisor = field(default_factory=Supervisor)
    jitter: float = 0.0

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
        object.__setattr__(self, "eta", check_eta(self.eta))
        if self.rule not in RULES:
            raise ConfigError(f"`rule` must be one of {RULES}, got {self.rule!r}")
        for name, kind in (("pot", Potentiometer), ("comparator", Comparator), ("capacitor", Capacitor),
                           ("supervisor", Supervisor)):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(f"`{name}` must be a {kind.__name__}, got {type(getattr(self, name)).__name__}")
        if self.capacitance_model == "global" and math.isfinite(self.capacitor.leakage):
            raise ConfigError("capacitor `leakage` is modelled for per-edge capacitors (the board's); the global "
                              "model's node capacitors have none: use capacitance_model per_edge, or leakage inf")
        object.__setattr__(self, "jitter", _check_spread("jitter", self.jitter, "normal"))

    @property
    def is_ideal(self) -> bool:
        """Whether every part is ideal (comparator noise and a common offset aside)."""
        return (self.pot.is_ideal and self.capacitor.is_ideal and self.comparator.offset_sigma == 0
                and self.supervisor.is_ideal and self.jitter == 0)

    @property
    def has_spread(self) -> bool:
        """Whether a board of this design has part values drawn at random (tolerances, mismatch, offsets)."""
        return bool(self.pot.tolerance or self.pot.twin_mismatch or self.capacitor.tolerance
                    or self.comparator.offset_sigma)

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
            **({} if self.pot.part is None else {"pot_part": self.pot.part}),
            "comparator_noise": self.comparator.noise, "comparator_offset": self.comparator.offset,
            **({} if self.is_ideal else self._imperfection_attrs()),
        }

    def _imperfection_attrs(self) -> dict:
        p, c, s = self.pot, self.capacitor, self.supervisor
        return {"pot_tolerance": p.tolerance, "pot_distribution": p.distribution, "pot_twin_mismatch": p.twin_mismatch,
                "pot_wiper": p.wiper, "pot_miss_probability": p.miss_probability,
                "capacitor_tolerance": c.tolerance, "capacitor_distribution": c.distribution,
                "capacitor_leakage": c.leakage, "comparator_offset_sigma": self.comparator.offset_sigma,
                "dac_bits": -1 if s.dac_bits is None else s.dac_bits, "dac_range": list(s.dac_range),
                "adc_bits": -1 if s.adc_bits is None else s.adc_bits, "adc_range": list(s.adc_range),
                "jitter": self.jitter}

    @classmethod
    def from_attrs(cls, attrs) -> "Hardware":
        """The design recorded by :meth:`attrs` (run files of older versions: their resolved values)."""
        a = attrs
        cap = float(a.get("capacitance_nominal", a.get("capacitance", -1.0)))
        clock = {"gamma_l": float(a["gamma_l"])} if a.get("clock_given", "gamma_l") == "gamma_l" \
            else {"R": float(a["R"])}
        part = a.get("pot_part")
        pot = Potentiometer(int(a["pot_positions"]), float(a["pot_r_ab"]), int(a["pot_start"]),
                            tolerance=float(a.get("pot_tolerance", 0.0)),
                            distribution=str(a.get("pot_distribution", "uniform")),
                            twin_mismatch=float(a.get("pot_twin_mismatch", 0.0)), wiper=float(a.get("pot_wiper", 0.0)),
                            miss_probability=float(a.get("pot_miss_probability", 0.0)),
                            part=None if part in (None, "") else str(part))
        capacitor = Capacitor(float(a.get("capacitor_tolerance", 0.0)), str(a.get("capacitor_distribution", "uniform")),
                              float(a.get("capacitor_leakage", math.inf)))

        def bits(name):
            b = int(a.get(name, -1))
            return None if b < 0 else b

        supervisor = Supervisor(bits("dac_bits"), tuple(np.ravel(a.get("dac_range", (-2.5, 2.5)))),
                                bits("adc_bits"), tuple(np.ravel(a.get("adc_range", (-2.5, 2.5)))))
        return cls(capacitance=None if cap < 0 else cap, capacitance_model=str(a["capacitance_model"]),
                   eta=float(a["eta"]), rule=str(a["rule"]), pot=pot,
                   comparator=Comparator(float(a["comparator_noise"]), float(a["comparator_offset"]),
                                         float(a.get("comparator_offset_sigma", 0.0))),
                   capacitor=capacitor, supervisor=supervisor, jitter=float(a.get("jitter", 0.0)), **clock)
