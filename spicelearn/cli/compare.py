"""``spicelearn compare``: the same task on the same board with per-edge and with global capacitance."""

from __future__ import annotations

import os

from .common import report

__all__ = ["register"]


def _cmd_compare(args) -> int:
    from ..experiments.compare import compare

    lines = compare(args.network, args.task, args.out_dir, R_values=args.R_values, engine=args.engine,
                    capacitance=args.capacitance, seeds=args.seeds, steps=args.steps, noise=args.noise,
                    network_seed=args.network_seed, workers=args.workers, progress=not args.quiet)
    return report(lines, os.path.join(args.out_dir, "compare.nc"), "error")  # 1 where runs failed


def register(sub) -> None:
    p = sub.add_parser("compare", help="per-edge against global capacitance on one task, over a range of R",
                       description="Train the same task on the same board with a capacitor across every edge "
                                   "(the lab's board) and with the paper's global capacitance, matched by the same "
                                   "c (same R) and by the same slowest relaxation rate; write compare.png, "
                                   "compare.md and compare.nc.")
    p.add_argument("network", metavar="NETWORK", help="GraphML file or built-in: lab16, delaunay64")
    p.add_argument("--task", default="default", metavar="TASK", help="JSON file, random:MS,MT,SEED, or 'default'")
    p.add_argument("--network-seed", type=int, default=0, help="seed of random built-in networks (default 0)")
    p.add_argument("--R-values", type=float, nargs="+", default=[0.1, 0.3, 1.0, 3.0, 10.0, 30.0], metavar="R",
                   help="scaled learning rates of the board (default 0.1 0.3 1 3 10 30)")
    p.add_argument("--engine", default="exact", metavar="exact|ngspice",
                   help="engine of the per-edge board (the global models run on exact); default exact")
    p.add_argument("--capacitance", type=float, default=22e-6, metavar="FARAD", help="edge capacitance (22e-6)")
    p.add_argument("--seeds", type=int, default=4, help="comparator-noise seeds per point (default 4)")
    p.add_argument("--steps", type=int, default=1000, help="clock ticks per run (default 1000)")
    p.add_argument("--noise", type=float, default=0.01, metavar="VOLT", help="comparator noise (default 0.01)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes (default one per core; 0: in this process)")
    p.add_argument("--out-dir", required=True, metavar="DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_compare)
