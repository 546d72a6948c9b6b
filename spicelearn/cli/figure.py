"""``spicelearn figure``: the paper's in-silico figures (Fig. 2, 3, 5)."""

from __future__ import annotations

import os

from ..errors import ConfigError

__all__ = ["register"]

FIGURES = ("fig1", "fig2", "fig3", "fig5")
ENGINES = ("exact", "ngspice")
#: The most random tasks ``--tasks`` averages (the paper: 50).
MAX_TASKS = 10_000


def _cmd_figure(args) -> int:
    if args.figure == "fig1":
        from ..experiments.hardware_figures import Fig1Config, fig1

        if args.tasks is not None:
            raise ConfigError("`--tasks` does not apply to fig1 (lab16's own task, many seeds)")
        if args.engine not in ENGINES:
            raise ConfigError(f"`--engine` must be one of {ENGINES}, got {args.engine!r}")
        lines = fig1(Fig1Config.quick() if args.quick else Fig1Config.full(), args.out_dir, engine=args.engine)
    else:
        from ..experiments.figures import FigureConfig, make_figure

        if args.engine != "exact":
            raise ConfigError(f"`--engine` applies to fig1 (the hardware model); {args.figure} is the paper's ode model")
        if args.tasks is not None and not 1 <= args.tasks <= MAX_TASKS:
            raise ConfigError(f"`--tasks` must be in 1..{MAX_TASKS:,} (random tasks averaged), got {args.tasks}")
        cfg = FigureConfig.quick() if args.quick else FigureConfig.full()
        if args.tasks is not None:
            cfg = FigureConfig(args.tasks, cfg.steps, cfg.R_curves, cfg.R_grid)
        lines = make_figure(args.figure, cfg, args.out_dir)
    for line in lines:
        print(("wrote " if os.path.exists(line) else "") + line)
    return 0


def register(sub) -> None:
    p = sub.add_parser("figure", help="the paper's figures: fig1 (hardware model, lab16), fig2, fig3, fig5 (ode)")
    p.add_argument("figure", choices=FIGURES)
    p.add_argument("--tasks", type=int, default=None, help="random tasks to average (default 50; 3 with --quick)")
    p.add_argument("--quick", action="store_true", help="small sweep for CI (under two minutes)")
    p.add_argument("--engine", default="exact", metavar="|".join(ENGINES),
                   help="engine of fig1's hardware runs (default exact)")
    p.add_argument("--out-dir", required=True, metavar="DIR",
                   help="folder for figN.png, figN.nc and the sweep cache (created if missing)")
    p.set_defaults(func=_cmd_figure)
