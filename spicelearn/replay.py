"""Replay: drive two engines with one sequence of positions and clamp values, compare voltages.

This is how the ``ngspice`` engine is verified against the ``exact`` one: no
comparator decides anything, so both engines see the same circuit at every
tick and any voltage difference is the simulators' own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .engines import get_engine
from .errors import ConfigError
from .hardware import Hardware
from .network import load_network
from .task import load_task

__all__ = ["ReplayResult", "replay", "replay_run", "register_cli"]


@dataclass(frozen=True)
class ReplayResult:
    """Voltages of two engines along one replay.

    Attributes
    ----------
    engines : tuple of str, length 2
    v_free, v_clamped : ndarray, shape (2, steps, N)
        Node voltages after each relaxation, one row per engine.
    """

    engines: tuple
    v_free: np.ndarray
    v_clamped: np.ndarray

    @property
    def error(self) -> np.ndarray:
        """Largest absolute voltage difference at each step, shape (steps,)."""
        d = np.maximum(np.abs(self.v_free[0] - self.v_free[1]), np.abs(self.v_clamped[0] - self.v_clamped[1]))
        return d.max(axis=1)

    @property
    def max_error(self) -> float:
        """Largest absolute voltage difference over all nodes and steps (volt)."""
        return float(self.error.max())


def replay(network, task, hardware: Hardware, positions, clamps=None, *, engines=("exact", "ngspice"),
           start=None, network_seed: int = 0) -> ReplayResult:
    """Drive two engines through the same positions and clamp values.

    Step k: both engines step their clamps to ``clamps[k]`` and relax one clock
    period, then their pots move to ``positions[k]``.

    Parameters
    ----------
    network, task
        As for :func:`spicelearn.cosim.train`.
    hardware : Hardware
    positions : array of int, shape (steps, E)
        Pot positions after each tick.
    clamps : array, shape (steps, M_T), optional
        Clamp voltages of each step; default: the supervisor's nudge of the
        first engine's free targets (then both engines still get equal values).
    engines : pair of str
    start : array of int, shape (E,), optional
        Positions before the first step (default: the pots' start position).
    """
    net = load_network(network, network_seed=network_seed)
    bound = load_task(task, net).bind(net)
    positions = np.asarray(positions)
    if positions.ndim != 2 or positions.shape[1] != net.n_edges or positions.shape[0] < 1:
        raise ConfigError(f"`positions` must have shape (steps, {net.n_edges}), got {positions.shape}")
    steps, m = positions.shape[0], bound.target_index.size
    if clamps is not None:
        clamps = np.asarray(clamps, dtype=float)
        if clamps.shape != (steps, m):
            raise ConfigError(f"`clamps` must have shape ({steps}, {m}), got {clamps.shape}")
    if len(engines) != 2:
        raise ConfigError(f"`engines` must name two engines, got {engines!r}")
    eng = [get_engine(name)(net, bound, hardware) for name in engines]
    p0 = np.full(net.n_edges, hardware.pot.start) if start is None else start
    states = [e.init(p0) for e in eng]
    tgt, V_T, eta = bound.target_index, bound.target_voltage, hardware.eta
    v_free = np.empty((2, steps, net.n_nodes))
    v_clamped = np.empty((2, steps, net.n_nodes))
    try:
        for k in range(steps):
            if clamps is None:
                vt = states[0].v_free[tgt]
                clamp = vt + eta * (V_T - vt)
            else:
                clamp = clamps[k]
            for i, e in enumerate(eng):
                s = e.relax(states[i], clamp, hardware.period)
                v_free[i, k], v_clamped[i, k] = s.v_free, s.v_clamped
                states[i] = e.set_positions(s, positions[k])
    finally:
        for e in eng:
            close = getattr(e, "close", None)
            if close is not None:
                close()
    return ReplayResult(tuple(engines), v_free, v_clamped)


def replay_run(ds, *, engines=("exact", "ngspice"), steps: int | None = None) -> ReplayResult:
    """Replay a hardware run file (``xarray.Dataset``): its positions and the clamps its supervisor set."""
    import json

    from .cosim import initial_positions
    from .hardware import Comparator, Potentiometer

    if "position" not in ds:
        raise ConfigError("the run file has no `position` variable (an `ode` run?); replay needs a hardware run")
    a = ds.attrs
    if a.get("capacitance_per_edge"):
        raise ConfigError("the run has per-edge capacitances; call `replay` with its network and hardware")
    hw = Hardware(capacitance=float(a["capacitance"]), capacitance_model=str(a["capacitance_model"]),
                  gamma_l=float(a["gamma_l"]), eta=float(a["eta"]), rule=str(a["rule"]),
                  pot=Potentiometer(int(a["pot_positions"]), float(a["pot_r_ab"]), int(a["pot_start"])),
                  comparator=Comparator(float(a["comparator_noise"]), float(a["comparator_offset"])))
    n = ds.sizes["step"] if steps is None else min(int(steps), ds.sizes["step"])
    task = json.loads(a["task"])
    net = load_network(a["network"])
    if list(net.nodes) != [str(x) for x in ds["node"].values]:
        raise ConfigError(f"the run's network {a['network']!r} is not a built-in that matches the run's nodes; "
                          "call `replay` with the network")
    bound = load_task(task, net).bind(net)
    start = initial_positions(net, hw)
    # the supervisor's clamps: the nudge of the free targets it read at the previous step
    vt = np.vstack([get_engine("exact")(net, bound, hw).init(start).v_free[None, bound.target_index],
                    np.asarray(ds["v_free"][:n - 1])[:, bound.target_index]])
    clamps = vt + hw.eta * (bound.target_voltage - vt)
    return replay(net, task, hw, np.asarray(ds["position"][:n]), clamps, engines=engines, start=start)


def _cmd_replay(args) -> int:
    from .runfile import load_run

    res = replay_run(load_run(args.run), steps=args.steps)
    err = res.error
    print(f"replayed {err.size} steps with {res.engines[0]} and {res.engines[1]}: "
          f"max |dv| = {res.max_error:.3g} V (step {int(err.argmax())}), median {float(np.median(err)):.3g} V")
    return 0 if res.max_error <= args.tolerance else 1


def register_cli(subparsers) -> None:
    """Add ``replay RUN.nc``: re-simulate a run's positions with both engines and compare."""
    p = subparsers.add_parser("replay", help="replay a run's positions with the exact and ngspice engines")
    p.add_argument("run", metavar="RUN.nc")
    p.add_argument("--steps", type=int, default=None, help="replay only the first STEPS steps")
    p.add_argument("--tolerance", type=float, default=1e-5, metavar="VOLT",
                   help="exit status 1 when the engines differ by more (default 1e-5)")
    p.set_defaults(func=_cmd_replay)
