"""``spicelearn export-spice`` (a standalone netlist) and ``replay`` (a run through every engine)."""

from __future__ import annotations

import math

from ..errors import ConfigError
from .common import add_train_options, hardware_from_args

__all__ = ["register"]


def _cmd_export(args) -> int:
    from ..loop import make_board
    from ..model.task import bind
    from ..spice.export import export_state, read_positions, standalone_netlist

    run = None
    if args.positions and args.positions.endswith(".nc"):
        from ..runfile import load_run, run_inputs

        run = load_run(args.positions)
        task, board, _ = run_inputs(run, network=args.network, network_seed=args.network_seed)
        given = {k: getattr(args, k) for k in ("capacitance", "gamma_l", "R", "eta", "rule", "capacitance_model")
                 if getattr(args, k) is not None}
        if args.task != "default" or given:
            raise ConfigError(f"`--positions` is a run file: its task, board and clock are exported as they "
                              f"ran; drop {', '.join(['--task'] * (args.task != 'default') + [f'--{k}' for k in given])}")
        positions = None
    else:
        task = bind(args.network, args.task, network_seed=args.network_seed)
        board = make_board(task.network, hardware_from_args(args))
        positions = read_positions(args.positions) if args.positions else None
    nl = standalone_netlist(task, board, export_state(task, board, positions, run))
    nl.write(args.output)
    print(f"wrote {args.output}")
    return 0


def _cmd_replay(args) -> int:
    from ..loop import replay_run
    from ..runfile import load_run

    import numpy as np

    if not (math.isfinite(args.tolerance) and args.tolerance > 0):
        raise ConfigError(f"`--tolerance` must be finite and > 0 volt, got {args.tolerance!r}")
    res = replay_run(load_run(args.run), steps=args.steps, network=args.network)
    err = res.error
    worst = [res.max_error]
    print(f"replayed {err.size} steps: {res.engines[0]} against {res.engines[1]}: max |dv| = {res.max_error:.3g} V "
          f"(step {int(err.argmax())}), median {float(np.median(err)):.3g} V")
    for i, name in enumerate(res.engines):
        e = res.error_vs_record(i)
        worst.append(float(e.max()))
        print(f"  {name} against the recorded voltages: max |dv| = {e.max():.3g} V (step {int(e.argmax())})")
    worst = np.array(worst)
    if not np.all(np.isfinite(worst)):  # NaN voltages in the record (a run never writes them) or in a replay
        print("spicelearn: replay differences are not finite: the run file's or a replay's voltages hold NaN or inf")
        return 1
    if worst.max() > args.tolerance:
        print(f"spicelearn: replay differs by {worst.max():.3g} V, more than `--tolerance` {args.tolerance:g} V")
        return 1
    return 0


def register(sub) -> None:
    p = sub.add_parser("export-spice", help="write a standalone SPICE netlist of the twin networks")
    add_train_options(p)
    p.add_argument("--positions", metavar="FILE|RUN.nc", help="pot positions (JSON/text list, .npy) or a run file "
                   "(exports the clock period after its last step, with the run's task, board and clock)")
    p.add_argument("-o", "--output", required=True, metavar="FILE.cir")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("replay", help="replay a run's positions and clamps with the exact and ngspice engines")
    p.add_argument("run", metavar="RUN.nc")
    p.add_argument("--steps", type=int, default=None, help="replay only the first STEPS steps")
    p.add_argument("--network", default=None, metavar="NETWORK",
                   help="the run's network (default: the one the run file records; a given one is checked)")
    p.add_argument("--tolerance", type=float, default=1e-5, metavar="VOLT",
                   help="exit status 1 when an engine differs from the other or from the recorded voltages by "
                        "more (default 1e-5)")
    p.set_defaults(func=_cmd_replay)
