"""Design files: one TOML file that says what a board is made of, for ``validate`` and ``export-kicad``.

A design file names the network and task, the clock, the learning budget and
the parts with their imperfections (README: "Validating a board")::

    network = "lab16"          # built-in name or GraphML path
    task = "default"           # JSON path, random:MS,MT,SEED or default
    steps = 3000
    gamma_l = 45.45            # Hz (or R = ...)
    eta = 0.5
    target = 1e-3              # error target relative to the start, held for `window` = 10 steps
    boards = 200
    seed = 1
    batch = true               # the boards together on the batched exact engine (false: one by one)
    [pot]        part, r_ab, r_ab_tolerance, distribution, twin_mismatch, wiper, miss_probability
    [capacitor]  value, tolerance, distribution, leakage
    [comparator] offset (sigma of the per-part offset), noise, mean_offset
    [supervisor] dac_bits, dac_range, adc_bits, adc_range
    [clock]      jitter

:func:`load_design` reads and checks it, all before anything runs: unknown keys
and parts, values of the wrong type, tolerances that would make a part's value
non-positive, an error target outside (0, 1), task targets that no resistances
can reach (a node voltage is a weighted average of its neighbours', so every
target must lie within the span of the sources), converters whose range does
not hold the targets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import MappingProxyType

from ..checks import check_steps
from ..errors import ConfigError
from .spec import check_options, hardware, read_toml

__all__ = ["Design", "load_design", "design_from_dict", "TABLES", "TOP_KEYS", "MAX_BOARDS"]

#: Top-level keys of a design file -> the option of ``train`` they set (None: the design's own).
TOP_KEYS = MappingProxyType({
    "network": "network", "task": "task", "steps": "steps", "gamma_l": "gamma_l", "R": "R", "eta": "eta",
    "rule": "rule", "capacitance_model": "capacitance_model", "engine": "backend", "network_seed": "network_seed",
    "start": "start", "seed": "seed", "target": None, "window": None, "boards": None, "sensitivity_boards": None,
    "batch": None,
})
#: Keys of each table -> the option of ``train`` they set.
TABLES = MappingProxyType({
    "pot": {"part": "pot_part", "r_ab": "r_ab", "r_ab_tolerance": "r_ab_tolerance",
            "distribution": "r_ab_distribution", "twin_mismatch": "twin_mismatch", "wiper": "wiper",
            "miss_probability": "miss_probability"},
    "capacitor": {"value": "capacitance", "tolerance": "capacitance_tolerance",
                  "distribution": "capacitance_distribution", "leakage": "leakage"},
    "comparator": {"offset": "offset_sigma", "noise": "noise", "mean_offset": "offset"},
    "supervisor": {"dac_bits": "dac_bits", "dac_range": "dac_range", "adc_bits": "adc_bits",
                   "adc_range": "adc_range"},
    "clock": {"jitter": "jitter"},
})


@dataclass(frozen=True)
class Design:
    """A checked design file.

    Attributes
    ----------
    options : mapping
        The ``train`` options of every board (:data:`spicelearn.experiments.spec.OPTIONS`),
        without ``board``.
    target : float
        Error target, relative to the error at the start.
    window : int
        Steps the error must stay below the target (the lab's 10).
    boards : int
        Boards of the Monte Carlo.
    sensitivity_boards : int or None
        Boards of each row of the sensitivity table (None: ``boards``; at most the Monte Carlo's boards).
    batch : bool
        Whether the boards run together on the batched exact engine (the default; the same results).
    text : str
        The file as written (echoed in the report).
    path : str
    """

    options: MappingProxyType
    target: float = 1e-3
    window: int = 10
    boards: int = 200
    sensitivity_boards: int | None = None
    batch: bool = True
    text: str = ""
    path: str = ""
    given: tuple = field(default=())  # the options the file gives

    @property
    def hardware(self):
        """The :class:`~spicelearn.model.hardware.Hardware` the design describes."""
        return hardware(dict(self.options))


#: The most boards a Monte Carlo draws (its yield's 95 % interval is then +-0.1 %; their options alone take ~1 GB).
MAX_BOARDS = 1_000_000


def _count(name: str, value, where: str, most: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (most is not None and value > most):
        raise ConfigError(f"{where}: `{name}`={value!r} must be an integer >= 1"
                          + (f" and <= {most:,}" if most is not None else ""))
    return value


def _as_written(message: str, data: dict, where: str) -> str:
    """``message`` (of an option of ``train``), with the design's own name for the option where it is another
    (``[comparator] offset`` is ``offset_sigma``), and ``where`` in front where it is not yet."""
    for table, keys in TABLES.items():
        for key, option in keys.items():
            if key != option and f"`{option}`" in message and key in data.get(table, {}):
                message += f" (the design's [{table}] `{key}`)"
    return message if message.startswith(where) else f"{where}: {message}"


def design_from_dict(data: dict, where: str = "design", text: str = "", path: str = "") -> Design:
    """A :class:`Design` from the parsed TOML ``data``; every check made (module docstring)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a table of keys, got {type(data).__name__}")
    given = {}
    unknown = sorted(k for k in data if k not in TOP_KEYS and k not in TABLES)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; a design has {sorted(TOP_KEYS)} and the tables "
                          f"{['[' + t + ']' for t in TABLES]}")
    for key, value in data.items():
        if key in TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: `{key}` must be a table, [{key}]")
            bad = sorted(set(value) - set(TABLES[key]))
            if bad:
                raise ConfigError(f"{where}: unknown key(s) {bad} in [{key}]; it has {sorted(TABLES[key])}")
            given.update({TABLES[key][k]: v for k, v in value.items()})
        elif TOP_KEYS[key] is not None:
            given[TOP_KEYS[key]] = value
    if "network" not in given:
        raise ConfigError(f"{where}: `network` is missing; give a built-in name (lab16, delaunay64) or a GraphML path")
    if given.get("backend", "exact") not in ("exact", "ngspice"):
        raise ConfigError(f"{where}: `engine`={given['backend']!r} must be 'exact' or 'ngspice' (a board is hardware)")
    try:
        options = check_options(given, where)
        hw = hardware(options)  # the parts' values: tolerances, converters, the part library
    except ConfigError as exc:
        raise ConfigError(_as_written(str(exc), data, where)) from None
    target = data.get("target", 1e-3)
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target < 1:
        raise ConfigError(f"{where}: `target`={target!r} must be in (0, 1): the error target relative to the "
                          "error at the start")
    window = _count("window", data.get("window", 10), where)
    boards = _count("boards", data.get("boards", 200), where, MAX_BOARDS)
    sensitivity = data.get("sensitivity_boards")
    sensitivity = None if sensitivity is None else _count("sensitivity_boards", sensitivity, where, MAX_BOARDS)
    try:
        check_steps(options["steps"])  # (the seed's range: check_options)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if window >= options["steps"]:
        raise ConfigError(f"{where}: `window`={window} must be shorter than `steps`={options['steps']}")
    batch = data.get("batch", True)
    if not isinstance(batch, bool):
        raise ConfigError(f"{where}: `batch`={batch!r} must be true or false (run the boards together on the "
                          "batched exact engine)")
    _check_reachable(options, hw, where)
    return Design(options=MappingProxyType(options), target=float(target), window=window, boards=boards,
                  sensitivity_boards=sensitivity, batch=batch, text=text, path=path, given=tuple(sorted(given)))


def _check_reachable(options: dict, hw, where: str) -> None:
    """Targets the network can reach, and converters that hold them."""
    from ..model.task import bind

    bound = bind(options["network"], options["task"], network_seed=options["network_seed"])
    vs, vt = bound.source_voltage, bound.target_voltage
    lo, hi = float(vs.min()), float(vs.max())
    names = [bound.network.nodes[i] for i in bound.target_index]
    for name, v in zip(names, vt):
        if not lo <= v <= hi:
            raise ConfigError(f"{where}: the task's target {name!r} = {v:g} V lies outside the sources' range "
                              f"[{lo:g}, {hi:g}] V; no board reaches it (a node voltage is a weighted average of "
                              "its neighbours'): change the task")
    s = hw.supervisor
    for kind, bits, (a, b) in (("dac", s.dac_bits, s.dac_range), ("adc", s.adc_bits, s.adc_range)):
        if bits is not None and not (a <= vt.min() and vt.max() <= b):
            raise ConfigError(f"{where}: [supervisor] `{kind}_range` = [{a:g}, {b:g}] V does not hold the task's "
                              f"targets ({vt.min():g} .. {vt.max():g} V); widen it")


def load_design(path) -> Design:
    """Read and check a design file (TOML; module docstring)."""
    path = os.fspath(path)
    data, text = read_toml(path, "design file")
    folder = os.path.dirname(os.path.abspath(path))
    for key in ("network", "task"):  # files named in a design are found beside it
        value = data.get(key)
        if isinstance(value, str) and value.lower().endswith((".graphml", ".json")) and not os.path.isabs(value):
            data[key] = os.path.join(folder, value)
    return design_from_dict(data, f"design file {path!r}", text=text, path=path)

