"""``spicelearn train``, ``show`` and ``demo``."""

from __future__ import annotations


from .common import add_train_options, options_from_args

__all__ = ["register"]

BACKENDS = ("exact", "ngspice", "ode", "quasistatic")


def _cmd_train(args) -> int:
    from ..experiments.spec import run
    from ..files import check_target
    from ..runfile import save_run

    options = options_from_args(args)
    check_target(args.out, "--out")  # before the run, not after it
    ds = run(options, progress=not args.quiet)
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

    import os

    for line in run_demo(args.out_dir, steps=args.steps, progress=not args.quiet, compare_steps=args.compare_steps,
                         workers=args.workers):
        print(("wrote " if os.path.exists(line) else "") + line)
    return 0


def register(sub) -> None:
    p = sub.add_parser("train", help="train a network with the hardware rule; write a run file")
    add_train_options(p)
    p.add_argument("--backend", default="exact", metavar="|".join(BACKENDS),
                   help="exact (default: the circuit solved exactly), ngspice (the circuit in ngspice), "
                        "ode (the paper's continuous model), quasistatic (its R -> 0 limit)")
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

    p = sub.add_parser("demo", help="lab16 at R = 0.1, 1, 10 (the shape of the paper's Fig. 1 c-d), then the board "
                                     "(ngspice) against the paper's global-capacitance model")
    p.add_argument("--out-dir", default="out")
    p.add_argument("--steps", type=int, default=3000, help="steps of the three training runs (default 3000)")
    p.add_argument("--compare-steps", type=int, default=1000, help="steps of each comparison run (default 1000)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes of the comparison (default one per core; 0: in this process)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_demo)

