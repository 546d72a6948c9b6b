"""``spicelearn train``, ``show`` and ``demo``."""

from __future__ import annotations


from ..errors import ConfigError
from .common import add_train_options, hardware_from_args

__all__ = ["register"]

BACKENDS = ("exact", "ngspice", "ode")


def _train_ode(args):
    """``train --backend ode``: the paper's model; refuses the options of the hardware backends."""
    from ..continuous.ode import DEFAULTS, train_ode

    if args.rule not in (None, "continuous"):
        raise ConfigError(f"`--rule`={args.rule!r}: the ode backend runs the continuous rule only; "
                          "omit `--rule` or give `continuous`")
    for given, option, why in ((args.gamma_l is not None, "--gamma-l", "time is in training steps, gamma_l = 1; "
                                "give `--R`"),
                               (args.noise or args.offset, "--noise` and `--offset", "comparator settings of the "
                                "hardware backends; the ode backend has no comparators"),
                               (args.capacitance is not None, "--capacitance", "dimensionless units; give `--R`"),
                               (args.start is not None, "--start", "the ode backend starts from conductances "
                                "G = 1, not pot positions")):
        if given:
            raise ConfigError(f"`{option}` does not apply to the ode backend ({why})")
    return train_ode(args.network, args.task, R=args.R if args.R is not None else DEFAULTS["R"],
                     eta=args.eta if args.eta is not None else DEFAULTS["eta"], steps=args.steps,
                     capacitance_model=args.capacitance_model or DEFAULTS["capacitance_model"],
                     network_seed=args.network_seed)


def _cmd_train(args) -> int:
    from ..files import check_target
    from ..loop import train
    from ..runfile import save_run

    check_target(args.out, "--out")  # before the run, not after it
    if args.backend == "ode":
        ds = _train_ode(args)
    else:
        ds = train(args.network, args.task, hardware_from_args(args), steps=args.steps, backend=args.backend,
                   seed=args.seed, progress=not args.quiet, network_seed=args.network_seed)
    save_run(ds, args.out)
    if not args.quiet:
        print(f"wrote {args.out}")
    return 0


def _cmd_show(args) -> int:
    from ..runfile import load_run, summary

    ds = load_run(args.run)
    print(summary(ds, threshold=args.threshold, window=args.window))
    if args.plot:
        from ..analysis.plotting import plot_run

        print(f"wrote {plot_run(ds, args.plot)}")
    return 0


def _cmd_demo(args) -> int:
    from ..experiments.demo import run_demo

    for path in run_demo(args.out_dir, steps=args.steps, progress=not args.quiet):
        print(f"wrote {path}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("train", help="train a network with the hardware rule; write a run file")
    add_train_options(p)
    p.add_argument("--backend", default="exact", metavar="|".join(BACKENDS),
                   help="exact (default: the circuit solved exactly), ngspice (the circuit in ngspice), "
                        "ode (the paper's continuous model)")
    p.add_argument("--steps", type=int, default=3000, help="clock ticks (training steps) to run (default 3000)")
    p.add_argument("--out", required=True, metavar="RUN.nc", help="run file to write (netCDF)")
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

