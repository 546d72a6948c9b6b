"""``spicelearn sweep SPEC.toml --out DIR``: many runs in parallel on Dask; ``--combine DIR`` rebuilds sweep.nc."""

from __future__ import annotations

from ..errors import ConfigError

__all__ = ["register"]


def _cmd_sweep(args) -> int:
    import os

    from ..experiments.sweep import combine, run_sweep

    if args.combine is not None:
        if args.spec is not None or args.out is not None:
            raise ConfigError("`--combine DIR` rebuilds DIR/sweep.nc from its point files; give no SPEC or --out")
        if not args.combine.strip():
            raise ConfigError("`--combine` is empty; give the sweep's folder")
        from ..runfile import save_run

        ds = combine(args.combine)
        path = os.path.join(args.combine, "sweep.nc")
        save_run(ds, path)
        print(f"wrote {path} ({_counts(ds)})")
        return 0
    if args.spec is None or args.out is None:
        raise ConfigError("give SPEC.toml and `--out DIR` (or `--combine DIR`)")
    if not args.out.strip():
        raise ConfigError("`--out` is empty; give the sweep's folder (created if missing)")
    from ..experiments.spec import load_spec

    spec = load_spec(args.spec)
    ds = run_sweep(spec, args.out, workers=args.workers, scheduler=args.scheduler, progress=not args.quiet)
    print(f"wrote {os.path.join(args.out, 'sweep.nc')} ({_counts(ds)})")
    return 0 if ds.attrs["points_failed"] == 0 else 1


def _counts(ds) -> str:
    """The points of a combined sweep: done, failed, and point files of another grid in its folder, left out."""
    a = ds.attrs
    other = a.get("points_other_grid", 0)
    return (f"{a['points_done']} of {a['points']} points done, {a['points_failed']} failed"
            + (f"; {other} point file(s) of another grid in the folder left out" if other else ""))


def register(sub) -> None:
    p = sub.add_parser("sweep", help="run a grid of training runs in parallel (Dask); resumable",
                       description="Run the full product of a sweep spec's [grid] over its [base] options of "
                                   "`train`. Each point is written to DIR/points/ as it finishes; a rerun skips "
                                   "the points done and retries the failed ones; DIR/sweep.nc combines them.")
    p.add_argument("spec", nargs="?", metavar="SPEC.toml", help="[base] options and [grid] lists of values")
    p.add_argument("--out", metavar="DIR", help="the sweep's folder")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes of a local Dask cluster (default: one per core); 0: in this process")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="use the Dask scheduler at ADDRESS (tcp://host:8786) instead of a local cluster")
    p.add_argument("--combine", default=None, metavar="DIR", help="only rebuild DIR/sweep.nc from its point files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sweep)
