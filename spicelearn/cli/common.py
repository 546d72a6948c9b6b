"""Options shared by several commands: the network, the task and the hardware design."""

from __future__ import annotations

import argparse

__all__ = ["add_train_options", "hardware_from_args", "report"]


def add_train_options(p: argparse.ArgumentParser) -> None:
    """NETWORK, --task, and the design's options (capacitance, clock, eta, rule, comparators, pots)."""
    p.add_argument("network", metavar="NETWORK", help="GraphML file or built-in: lab16, delaunay64")
    p.add_argument("--task", default="default", metavar="TASK",
                   help="JSON file, random:MS,MT,SEED, or 'default' (lab16's own task; other networks "
                        "have none: give a file or random:MS,MT,SEED)")
    p.add_argument("--network-seed", type=int, default=0, help="seed of random built-in networks (default 0)")
    p.add_argument("--capacitance-model", default=None, choices=["per_edge", "global"],
                   help="default per_edge (hardware backends), global (ode)")
    p.add_argument("--capacitance", type=float, default=None, metavar="FARAD",
                   help="capacitance of every edge (or node, global); default: the graph's per-edge "
                        "`capacitance` attributes, else 2.2e-6. A value given here wins over the graph's")
    p.add_argument("--gamma-l", type=float, default=None, metavar="HZ", help="clock rate")
    p.add_argument("--R", type=float, default=None, metavar="RATIO",
                   help="scaled learning rate R = R0 c gamma_l, R0 = 10 kOhm (default 1); the one of "
                        "--R and --gamma-l given is kept, the other derived from the capacitance used")
    p.add_argument("--eta", type=float, default=None, help="nudge; default 0.5 (hardware), 1e-3 (ode)")
    p.add_argument("--rule", default=None, help="xor | xor-legacy (hardware, default xor) | continuous (ode)")
    p.add_argument("--noise", type=float, default=0.0, metavar="VOLT", help="comparator noise (rms, default 0)")
    p.add_argument("--offset", type=float, default=0.0, metavar="VOLT", help="comparator offset (default 0)")
    p.add_argument("--start", type=int, default=None, metavar="POSITION",
                   help="start position of every pot, 0..127 (default 63: 50 kOhm, or the graph's "
                        "`position` attributes)")
    p.add_argument("--seed", type=int, default=0, help="seed of the run's noise and drawn parts (default 0)")
    _add_imperfections(p)


#: Options of real parts on the command line (each an option of ``train``, OPTIONS), off by default.
_PART_OPTIONS = ("board", "pot_part", "r_ab", "r_ab_tolerance", "r_ab_distribution", "twin_mismatch", "wiper",
                 "miss_probability", "capacitance_tolerance", "capacitance_distribution", "leakage", "offset_sigma",
                 "dac_bits", "dac_range", "adc_bits", "adc_range", "jitter")


def _add_imperfections(p: argparse.ArgumentParser) -> None:
    from ..experiments.spec import OPTIONS

    g = p.add_argument_group("imperfections of real parts (README: Validating a board)")
    for name in _PART_OPTIONS:
        opt = OPTIONS[name]
        default = "" if opt.default in (None, 0.0, "uniform") else f" (default {opt.default:g})" \
            if isinstance(opt.default, float) else f" (default {opt.default})"
        kw = {"nargs": 2, "type": float, "metavar": ("LOW", "HIGH")} if opt.kind is tuple else {"type": opt.kind}
        g.add_argument(f"--{name.replace('_', '-')}", default=None, help=opt.help + default, **kw)


def options_from_args(args, backend: str = "exact") -> dict:
    """``train``'s options (:data:`spicelearn.experiments.spec.OPTIONS`) from parsed arguments, checked."""
    from ..experiments.spec import OPTIONS, check_options

    given = {name: getattr(args, name) for name in OPTIONS if getattr(args, name, None) is not None}
    given.setdefault("backend", backend)
    return check_options(given, "", flags=True)


def hardware_from_args(args):
    """The :class:`~spicelearn.model.hardware.Hardware` design the options describe."""
    from ..experiments.spec import hardware

    return hardware(options_from_args(args))


def report(lines, result: str, failed: str) -> int:
    """Print what an experiment returned (the files it wrote, then its report's lines); the exit status: 1 where its
    result file ``result`` records failed runs (``failed``: a variable true, or holding a message, for each),
    else 0."""
    import os

    import numpy as np

    from ..runfile import open_netcdf

    for line in lines:
        print(("wrote " if os.path.exists(line) else "") + line)
    with open_netcdf(result) as ds:
        v = ds[failed].values
    return int(bool(np.count_nonzero(v != "" if v.dtype.kind in "USO" else v)))
