"""The options of one training run, as the command line and sweep specs give them, and sweep specs.

:data:`OPTIONS` is the one table of ``train``'s options (names with underscores):
their types and defaults, and which backends they apply to. :func:`check_options`
checks a flat dictionary of them (from ``argparse`` or a TOML table) and
:func:`run` performs the run, on any backend. A :class:`SweepSpec` is a
``[base]`` table of options and a ``[grid]`` table of lists of values; the sweep
is their full product (:meth:`SweepSpec.points`).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping
import json
import math
import os
from dataclasses import dataclass
from types import MappingProxyType

from ..checks import SEED_LIMIT
from ..errors import ConfigError

__all__ = ["OPTIONS", "IMPERFECTIONS", "BACKENDS", "check_options", "hardware", "run", "run_batch", "batch_key",
           "SweepSpec", "load_spec", "point_id"]

BACKENDS = ("exact", "ngspice", "ode", "quasistatic")
_HW = ("exact", "ngspice")


@dataclass(frozen=True)
class _Option:
    kind: type  # float, int, str, bool, or tuple (two floats: a range)
    default: object  # None: not set (a backend-specific default applies)
    backends: tuple = BACKENDS
    help: str = ""
    infinite: bool = False  # a float that may be inf


#: Why an option of the hardware backends means nothing to the paper's model.
_NOT_CONTINUOUS = {"capacitance": "dimensionless units; give R", "gamma_l": "time is in training steps, gamma_l = 1; "
                   "give R", "noise": "the paper's model has no comparators", "offset": "the paper's model has no "
                   "comparators", "start": "it starts from conductances G = 1, not pot positions",
                   "seed": "it has no noise to seed", "R": "the quasistatic limit is R -> 0",
                   "capacitance_model": "the quasistatic limit has no capacitances"}

#: ``train``'s options: type, default, the backends they apply to.
OPTIONS = MappingProxyType({
    "network": _Option(str, None, help="built-in name (lab16, delaunay64) or GraphML path"),
    "task": _Option(str, "default", help="JSON path, random:MS,MT,SEED or default"),
    "backend": _Option(str, "exact", help="exact, ngspice, ode or quasistatic"),
    "capacitance_model": _Option(str, None, ("exact", "ngspice", "ode"), "per_edge or global"),
    "capacitance": _Option(float, None, _HW, "farad"),
    "R": _Option(float, None, ("exact", "ngspice", "ode"), "scaled learning rate"),
    "gamma_l": _Option(float, None, _HW, "clock rate in Hz"),
    "eta": _Option(float, None, help="nudge"),
    "rule": _Option(str, None, help="xor, xor-legacy (hardware), continuous (ode)"),
    "noise": _Option(float, 0.0, _HW, "comparator noise, volt rms"),
    "offset": _Option(float, 0.0, _HW, "comparator offset, volt"),
    "start": _Option(int, None, _HW, "start position of every pot"),
    "steps": _Option(int, 3000, help="clock ticks / training steps"),
    "seed": _Option(int, 0, _HW, "seed of the run's noise (and of the parts of a board drawn from tolerances)"),
    "network_seed": _Option(int, 0, help="seed of random built-in networks"),
    # the imperfections of real parts (spicelearn.model.hardware), all off by default
    "board": _Option(int, None, _HW, "which board of the design: its parts and noise drawn from (seed, board)"),
    "pot_part": _Option(str, None, _HW, "digital potentiometer: AD5220-10k, AD5220-50k, AD5220-100k"),
    "r_ab": _Option(float, None, _HW, "nominal end-to-end resistance of the pots, ohm (default 100e3)"),
    "r_ab_tolerance": _Option(float, 0.0, _HW, "relative tolerance of each pot's R_AB"),
    "r_ab_distribution": _Option(str, "uniform", _HW, "uniform (+/- tolerance) or normal (sigma)"),
    "twin_mismatch": _Option(float, 0.0, _HW, "relative sigma between an edge's twin pots"),
    "wiper": _Option(float, 0.0, _HW, "wiper resistance in series with every pot, ohm"),
    "miss_probability": _Option(float, 0.0, _HW, "probability that an edge misses a clock pulse"),
    "capacitance_tolerance": _Option(float, 0.0, _HW, "relative tolerance of each capacitor"),
    "capacitance_distribution": _Option(str, "uniform", _HW, "uniform (+/- tolerance) or normal (sigma)"),
    "leakage": _Option(float, math.inf, _HW, "leakage resistance in parallel with every edge capacitor, ohm "
                       "(inf: none)", infinite=True),
    "offset_sigma": _Option(float, 0.0, _HW, "sigma of each comparator's input offset, volt"),
    "dac_bits": _Option(int, None, _HW, "resolution of the clamp DAC (default: ideal)"),
    "dac_range": _Option(tuple, None, _HW, "clamp DAC range, two volts (default -2.5 2.5)"),
    "adc_bits": _Option(int, None, _HW, "resolution of the target ADC (default: ideal)"),
    "adc_range": _Option(tuple, None, _HW, "target ADC range, two volts (default -2.5 2.5)"),
    "jitter": _Option(float, 0.0, _HW, "relative sigma of each tick's relaxation time"),
})

#: The options that are imperfections of real parts, in the order reports list them.
IMPERFECTIONS = ("r_ab_tolerance", "twin_mismatch", "wiper", "miss_probability", "capacitance_tolerance", "leakage",
                 "offset_sigma", "noise", "dac_bits", "adc_bits", "jitter")


def _show(name: str, flags: bool) -> str:
    """An option's name as the user wrote it: ``--gamma-l`` on the command line, ``gamma_l`` in a spec."""
    return f"`--{name.replace('_', '-')}`" if flags else f"`{name}`"


#: The options that seed random streams (checked as seeds: :func:`~spicelearn.checks.check_seed`).
SEEDS = ("seed", "network_seed", "board")


def _typed(name: str, value, where: str, flags: bool = False):
    opt = OPTIONS[name]
    if opt.kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
        ok = ok and (math.isfinite(value) or (opt.infinite and value == math.inf))
    elif opt.kind is tuple:
        ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in value)
        value = tuple(float(x) for x in value) if ok else value
    elif opt.kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and name in SEEDS and not 0 <= value < SEED_LIMIT:  # before any run (2**64 broke sweep.nc's seed axis)
            raise ConfigError(f"{where}: {_show(name, flags)}={value!r} must be an integer in 0 .. 2**63 - 1 (a seed)")
    else:
        ok = isinstance(value, opt.kind)
    if not ok:
        kind = "pair of finite floats" if opt.kind is tuple else f"finite {opt.kind.__name__}"
        raise ConfigError(f"{where}: {_show(name, flags)}={value!r} must be a {kind} ({opt.help})")
    return value


def check_options(options: dict, where: str = "options", flags: bool = False) -> dict:
    """A full dictionary of ``train``'s options from ``options`` (unset ones at their defaults), checked.

    Raises :class:`ConfigError` for an unknown name, a value of the wrong type, ``R``
    and ``gamma_l`` both given, an unknown backend, or an option the backend has no use
    for (``--noise`` on the ode backend) — before anything runs. Values are checked
    further (ranges) when the run is set up. With ``flags`` the messages name the
    options as command-line flags.
    """
    def n(name):
        return _show(name, flags)

    pre = f"{where}: " if where else ""

    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"{pre}unknown option(s) {unknown}; the options of `train` are {sorted(OPTIONS)}")
    out = {name: opt.default for name, opt in OPTIONS.items()}
    for name, value in options.items():
        if value is not None:
            out[name] = _typed(name, value, where or "option", flags)
    if out["network"] is None:
        raise ConfigError(f"{pre}{n('network')} is missing; give a built-in name (lab16, delaunay64) or a GraphML path")
    if out["backend"] not in BACKENDS:
        raise ConfigError(f"{pre}{n('backend')}={out['backend']!r} must be one of {BACKENDS}")
    if out["R"] is not None and out["gamma_l"] is not None:
        raise ConfigError(f"{pre}give either {n('gamma_l')} or {n('R')}, not both")
    backend = out["backend"]
    for name, opt in OPTIONS.items():
        if backend not in opt.backends and options.get(name) is not None and options[name] != opt.default:
            why = _NOT_CONTINUOUS.get(name, f"it applies to {', '.join(opt.backends)}")
            raise ConfigError(f"{pre}{n(name)} does not apply to the {backend} backend ({why})")
    if backend in ("ode", "quasistatic") and out["rule"] not in (None, "continuous"):
        raise ConfigError(f"{pre}{n('rule')}={out['rule']!r}: the {backend} backend runs the continuous rule "
                          "only; omit it or give `continuous`")
    return out


def hardware(options: dict):
    """The :class:`~spicelearn.model.hardware.Hardware` design that checked options describe."""
    from ..model.hardware import POT_PARTS, Capacitor, Comparator, Hardware, Potentiometer, Supervisor

    o = options
    pot = {"tolerance": o["r_ab_tolerance"], "distribution": o["r_ab_distribution"],
           "twin_mismatch": o["twin_mismatch"], "wiper": o["wiper"], "miss_probability": o["miss_probability"]}
    if o["start"] is not None:
        pot["start"] = o["start"]
    if o["pot_part"] is not None:
        if o["pot_part"] not in POT_PARTS:
            raise ConfigError(f"`pot_part`={o['pot_part']!r} is not in the part library; known pots: "
                              f"{sorted(POT_PARTS)}")
        n, r_ab = POT_PARTS[o["pot_part"]]
        if o["r_ab"] is not None and o["r_ab"] != r_ab:
            raise ConfigError(f"`r_ab`={o['r_ab']!r} contradicts `pot_part`={o['pot_part']!r} (R_AB {r_ab:g} ohm); "
                              "give one of them, or the part's value")
        pot.update(n_positions=n, r_ab=r_ab, part=o["pot_part"])
    elif o["r_ab"] is not None:
        pot["r_ab"] = o["r_ab"]
    converters = {k: o[k] for k in ("dac_bits", "dac_range", "adc_bits", "adc_range") if o[k] is not None}
    return Hardware(capacitance=o["capacitance"], capacitance_model=o["capacitance_model"] or "per_edge",
                    R=o["R"], gamma_l=o["gamma_l"], eta=0.5 if o["eta"] is None else o["eta"],
                    rule=o["rule"] or "xor", pot=Potentiometer(**pot),
                    comparator=Comparator(noise=o["noise"], offset=o["offset"], offset_sigma=o["offset_sigma"]),
                    capacitor=Capacitor(o["capacitance_tolerance"], o["capacitance_distribution"], o["leakage"]),
                    supervisor=Supervisor(**converters), jitter=o["jitter"])


def run(options: dict, progress: bool = False):
    """One run from checked options (:func:`check_options`): the run file as an ``xarray.Dataset``."""
    o = options
    if o["backend"] == "ode":
        from ..continuous.ode import DEFAULTS, train_ode

        return train_ode(o["network"], o["task"], R=DEFAULTS["R"] if o["R"] is None else o["R"],
                         eta=DEFAULTS["eta"] if o["eta"] is None else o["eta"], steps=o["steps"],
                         capacitance_model=o["capacitance_model"] or DEFAULTS["capacitance_model"],
                         network_seed=o["network_seed"])
    if o["backend"] == "quasistatic":
        from ..continuous.quasistatic import train_quasistatic

        return train_quasistatic(o["network"], o["task"], eta=1e-3 if o["eta"] is None else o["eta"],
                                 steps=o["steps"], network_seed=o["network_seed"])
    from ..loop import train

    return train(o["network"], o["task"], hardware(o), steps=o["steps"], backend=o["backend"], seed=o["seed"],
                 progress=progress, network_seed=o["network_seed"], board_seed=o["board"])


def batch_key(options: dict):
    """What runs of a batch must share (:func:`run_batch`), or None for a run that is not batched (the batched
    engine is the ``exact`` one, and pays only below :data:`~spicelearn.engines.exact.SPARSE_FROM` floating
    nodes: :func:`~spicelearn.engines.batched.worth_batching`): network, its seed, steps, and the task's source and
    target nodes."""
    from ..engines.batched import worth_batching

    if options["backend"] != "exact":
        return None
    bound = _bound(options["network"], options["network_seed"], options["task"])
    if not worth_batching(bound):
        return None
    return (options["network"], options["network_seed"], options["steps"], tuple(bound.source_index),
            tuple(bound.target_index))


_BOUND_CACHE = {}


def _bound(network: str, network_seed: int, task: str):
    """The task bound to the network (cached: a sweep asks for the same few many times)."""
    from ..model.task import bind

    key = (network, network_seed, task)
    if key not in _BOUND_CACHE:
        if len(_BOUND_CACHE) > 64:
            _BOUND_CACHE.clear()
        _BOUND_CACHE[key] = bind(network, task, network_seed=network_seed)
    return _BOUND_CACHE[key]


def run_batch(options_list, progress: bool = False) -> list:
    """The runs of checked options that share a :func:`batch_key`, on the batched exact engine: the run files,
    each the same as :func:`run` gives for its options (positions equal, voltages to rounding)."""
    from ..loop import train_batch

    keys = {batch_key(o) for o in options_list}
    if None in keys:
        raise ConfigError("`options_list` holds runs that are not batched (another backend than exact, or a network "
                          "of so many floating nodes that runs one by one are faster: engines.batched."
                          "worth_batching); run them with `run`")
    if len(keys) != 1:
        raise ConfigError(f"`options_list` must be exact-engine runs sharing network, network_seed, steps and the "
                          f"task's nodes (one batch key), got {len(keys)} different")
    o = options_list[0]
    net = _bound(o["network"], o["network_seed"], o["task"]).network
    runs = [dict(task=_bound(x["network"], x["network_seed"], x["task"]).task, hardware=hardware(x), seed=x["seed"],
                 board_seed=x["board"]) for x in options_list]
    return train_batch(net, runs, steps=o["steps"], progress=progress)


def point_id(options: dict) -> str:
    """A stable name for the run of these options (the same options, the same name, whatever the grid)."""
    text = json.dumps({k: v for k, v in sorted(options.items())}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SweepSpec:
    """A sweep: ``base`` options and a ``grid`` of values; the runs are the grid's full product.

    Attributes
    ----------
    base : mapping
        Options of ``train`` shared by every run.
    grid : mapping of str -> tuple
        Swept options and their values, in the order of the sweep's dimensions.
    keep : {"full", "errors"}
        What each point's file keeps: the whole run file, or the errors per step and the
        final state only (for sweeps of thousands of runs).
    batch : bool
        Whether points that share a network, its source and target nodes and steps run
        together on the batched exact engine (the same files as one by one, faster).
    """

    base: MappingProxyType
    grid: MappingProxyType
    keep: str = "full"
    batch: bool = True

    def __post_init__(self):
        for name in ("base", "grid"):
            if not isinstance(getattr(self, name), Mapping):
                raise ConfigError(f"sweep spec: `{name}` must be a mapping of options, got "
                                  f"{type(getattr(self, name)).__name__}")
        base, grid = dict(self.base), dict(self.grid)
        if not grid:
            raise ConfigError("sweep spec: `[grid]` is empty; give at least one option with a list of values")
        both = sorted(set(base) & set(grid))
        if both:
            raise ConfigError(f"sweep spec: {both} are in both [base] and [grid]; give each in one of them")
        for name, values in grid.items():
            if name not in OPTIONS:
                raise ConfigError(f"sweep spec: [grid] `{name}` is not an option of `train` {sorted(OPTIONS)}")
            if not isinstance(values, (list, tuple)) or not values:
                raise ConfigError(f"sweep spec: [grid] `{name}` must be a non-empty list of values, got {values!r}")
            if OPTIONS[name].kind is tuple:
                raise ConfigError(f"sweep spec: [grid] `{name}` is a pair of volts, which cannot label a sweep's axis; "
                                  f"put `{name}` in [base] and run one sweep per pair")
            typed = [_typed(name, v, f"sweep spec [grid] `{name}`") for v in values]
            if len(set(typed)) != len(typed):
                raise ConfigError(f"sweep spec: [grid] `{name}` lists a value twice: {values!r}")
            grid[name] = tuple(typed)
        if self.keep not in ("full", "errors"):
            raise ConfigError(f"sweep spec: `keep`={self.keep!r} must be 'full' or 'errors'")
        if not isinstance(self.batch, bool):
            raise ConfigError(f"sweep spec: `batch`={self.batch!r} must be true or false")
        object.__setattr__(self, "base", MappingProxyType(base))
        object.__setattr__(self, "grid", MappingProxyType(grid))
        for point in self.points():  # every run's options are checked before any runs
            check_options(point, f"sweep point {point}")

    @property
    def dims(self) -> tuple:
        return tuple(self.grid)

    @property
    def shape(self) -> tuple:
        return tuple(len(v) for v in self.grid.values())

    def points(self) -> list:
        """The options of every run, in grid order (the last dimension fastest)."""
        return [{**self.base, **dict(zip(self.grid, values))} for values in itertools.product(*self.grid.values())]


def read_toml(path, what: str) -> tuple[dict, str]:
    """The parsed TOML file ``path`` and its text; ``what`` names it in the one-line errors."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"{what} {path!r} does not exist (or is not a file)")
    try:
        with open(path, "rb") as fh:
            text = fh.read().decode("utf-8")
        return tomllib.loads(text), text
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path!r} is not valid TOML: {exc}") from None


def load_spec(path) -> SweepSpec:
    """Read a sweep spec (TOML: ``[base]``, ``[grid]``, optional top-level ``keep`` and ``batch``)."""
    path = os.fspath(path)
    data, _ = read_toml(path, "sweep spec")
    extra = sorted(set(data) - {"base", "grid", "keep", "batch"})
    if extra:
        raise ConfigError(f"sweep spec {path!r}: unknown table(s) or key(s) {extra}; a spec has [base], [grid] "
                          "and optionally keep = \"full\" | \"errors\" and batch = true | false")
    for table in ("base", "grid"):
        if not isinstance(data.get(table, {}), dict):
            raise ConfigError(f"sweep spec {path!r}: `{table}` must be a table, [{table}]")
    return SweepSpec(base=data.get("base", {}), grid=data.get("grid", {}), keep=data.get("keep", "full"),
                     batch=data.get("batch", True))
