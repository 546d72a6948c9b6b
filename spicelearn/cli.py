"""Command line: ``spicelearn train|show|demo`` and the subcommands other modules register.

A module that adds subcommands defines ``register_cli(subparsers)``; it adds
its parsers with ``set_defaults(func=...)``, where ``func(args) -> int``.
Every :class:`~spicelearn.errors.SpicelearnError` ends the command with a
one-line message and exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .errors import ConfigError, SpicelearnError

#: Modules that add subcommands (imported lazily; each must keep heavy imports inside functions).
PLUGIN_MODULES = ("spicelearn.netlist", "spicelearn.kicad", "spicelearn.figures")


def _hardware_from_args(args):
    from .hardware import Comparator, Hardware, Potentiometer

    if args.gamma_l is not None and args.R is not None:
        raise ConfigError("give either `--gamma-l` or `--R`, not both")
    cap = args.capacitance if args.capacitance is not None else 2.2e-6
    common = dict(capacitance_model=args.capacitance_model or "per_edge",
                  eta=args.eta if args.eta is not None else 0.5, rule=args.rule or "xor",
                  comparator=Comparator(noise=args.noise, offset=args.offset), pot=Potentiometer(start=args.start))
    if args.gamma_l is not None:
        return Hardware(capacitance=cap, gamma_l=args.gamma_l, **common)
    return Hardware.from_R(args.R if args.R is not None else 1.0, capacitance=cap, **common)


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("network", metavar="NETWORK", help="GraphML file or built-in: lab16, delaunay64")
    p.add_argument("--task", default="default", metavar="TASK",
                   help="JSON file, random:MS,MT,SEED, or 'default' (lab16's own task)")
    p.add_argument("--network-seed", type=int, default=0, help="seed of random built-in networks")
    p.add_argument("--capacitance-model", default=None, choices=["per_edge", "global"],
                   help="default per_edge (hardware backends), global (ode)")
    p.add_argument("--capacitance", type=float, default=None, metavar="FARAD", help="default 2.2e-6")
    p.add_argument("--gamma-l", type=float, default=None, metavar="HZ", help="clock rate")
    p.add_argument("--R", type=float, default=None, metavar="RATIO", help="scaled learning rate (default 1)")
    p.add_argument("--eta", type=float, default=None, help="nudge; default 0.5 (hardware), 1e-3 (ode)")
    p.add_argument("--rule", default=None, help="xor | xor-legacy (hardware, default xor) | continuous (ode)")
    p.add_argument("--noise", type=float, default=0.0, metavar="VOLT", help="comparator noise (rms)")
    p.add_argument("--offset", type=float, default=0.0, metavar="VOLT", help="comparator offset")
    p.add_argument("--start", type=int, default=63, help="start position of the pots")
    p.add_argument("--seed", type=int, default=0, help="seed of the comparator noise")


def _cmd_train(args) -> int:
    from .cosim import train
    from .runfile import save_run

    if args.backend == "ode":
        try:
            from .engines import ode
        except ImportError as exc:
            if exc.name != "spicelearn.engines.ode":
                raise
            raise ConfigError("`--backend ode` is not available in this version yet; use `exact`") from None
        return ode.cli_train(args)
    hw = _hardware_from_args(args)
    ds = train(args.network, args.task, hw, steps=args.steps, backend=args.backend, seed=args.seed,
               progress=not args.quiet, network_seed=args.network_seed)
    save_run(ds, args.out)
    print(f"wrote {args.out}")
    return 0


def _cmd_show(args) -> int:
    from .runfile import load_run, summary

    ds = load_run(args.run)
    print(summary(ds, threshold=args.threshold, window=args.window))
    if args.plot:
        from .plotting import plot_run

        plot_run(ds, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo

    for path in run_demo(args.out_dir, steps=args.steps, progress=not args.quiet):
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spicelearn", description="Physical learning in resistor networks")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"spicelearn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a network with the hardware rule; write a run file")
    _add_train_options(p)
    p.add_argument("--backend", default="exact", help="exact | ngspice | ode")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--out", required=True, metavar="RUN.nc")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("show", help="summarise a run file; optionally plot its errors")
    p.add_argument("run", metavar="RUN.nc")
    p.add_argument("--plot", metavar="PNG", help="write mse and mse_eq against steps and real time")
    p.add_argument("--threshold", type=float, default=1e-3, help="tau threshold (relative to mse0)")
    p.add_argument("--window", type=int, default=10, help="tau: steps the error must stay below threshold")
    p.set_defaults(func=_cmd_show)

    p = sub.add_parser("demo", help="lab16 at R = 0.1, 1, 10 (the shape of the paper's Fig. 1 c-d)")
    p.add_argument("--out-dir", default="out")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_demo)

    for name in PLUGIN_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            if exc.name != name:
                raise
            continue
        register = getattr(module, "register_cli", None)
        if register is not None:
            register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SpicelearnError as exc:
        print(f"spicelearn: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"spicelearn: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spicelearn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
