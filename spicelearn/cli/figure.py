"""``spicelearn figure``: the paper's in-silico figures (Fig. 2, 3, 5)."""

from __future__ import annotations

import os

from ..errors import ConfigError

__all__ = ["register"]

FIGURES = ("fig2", "fig3", "fig5")


def _cmd_figure(args) -> int:
    from ..experiments.figures import FigureConfig, make_figure

    if args.tasks is not None and args.tasks < 1:
        raise ConfigError(f"`--tasks` must be >= 1, got {args.tasks}")
    cfg = FigureConfig.quick() if args.quick else FigureConfig.full()
    if args.tasks is not None:
        cfg = FigureConfig(args.tasks, cfg.steps, cfg.R_curves, cfg.R_grid)
    for line in make_figure(args.figure, cfg, args.out_dir):
        print(("wrote " if os.path.exists(line) else "") + line)
    return 0


def register(sub) -> None:
    p = sub.add_parser("figure", help="the paper's in-silico figures (ode engine): fig2, fig3, fig5")
    p.add_argument("figure", choices=FIGURES)
    p.add_argument("--tasks", type=int, default=None, help="random tasks to average (default 50; 3 with --quick)")
    p.add_argument("--quick", action="store_true", help="small sweep for CI (under two minutes)")
    p.add_argument("--out-dir", required=True, metavar="DIR",
                   help="folder for figN.png, figN.nc and the sweep cache (created if missing)")
    p.set_defaults(func=_cmd_figure)
