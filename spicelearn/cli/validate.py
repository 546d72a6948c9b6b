"""``spicelearn validate``: the Monte Carlo of learning yield over boards drawn from a design file."""

from __future__ import annotations

import os

from .common import report

__all__ = ["register"]


def _cmd_validate(args) -> int:
    from ..experiments.design import load_design
    from ..experiments.validate import validate

    design = load_design(args.design)  # every check before any board runs
    lines = validate(design, args.out_dir, boards=args.boards, engine=args.engine, workers=args.workers,
                     scheduler=args.scheduler, progress=not args.quiet)
    return report(lines, os.path.join(args.out_dir, "boards.nc"), "failed")  # 1 where boards failed to run


def register(sub) -> None:
    p = sub.add_parser(
        "validate", help="Monte Carlo of learning yield over boards drawn from a design file",
        description="Draw boards from DESIGN.toml (part tolerances, mismatch, offsets, converters, jitter), train "
                    "each, and write the yield with its 95 % interval, the distributions of tau and of the final "
                    "error, and a sensitivity table (each imperfection alone) to OUT_DIR: validate.png, report.md, "
                    "boards.nc. A rerun resumes where an interrupted one stopped.")
    p.add_argument("design", metavar="DESIGN.toml", help="design file (README: Validating a board)")
    p.add_argument("--boards", type=int, default=None, metavar="N", help="boards of the Monte Carlo (default: the "
                   "design's `boards`)")
    p.add_argument("--engine", default=None, choices=["exact", "ngspice"], help="default: the design's, else exact")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes (default one per core; 0: in this process)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="a running Dask scheduler to use instead")
    p.add_argument("--out-dir", required=True, metavar="DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_validate)
