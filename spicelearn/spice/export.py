"""Standalone netlists for ``ngspice -b``: one clock period of the learning loop, both twins."""

from __future__ import annotations

import json
import os

import numpy as np

from ..errors import ConfigError
from ..model.board import Board
from ..model.network import CompiledNetwork
from ..model.task import BoundTask
from .netlist import Netlist, NetlistState, compile_netlist

__all__ = ["export_state", "standalone_netlist", "read_positions"]


def export_state(task: BoundTask, board: Board, positions=None, run=None) -> NetlistState:
    """What an exported netlist simulates: one clock period of the learning loop.

    With a run (an ``xarray.Dataset`` run file of this network, task and board) it
    is the period after the run's last step: its last positions and voltages,
    clamps set by the supervisor. Otherwise both twins start at the free
    equilibrium of ``positions`` (E,) and the clamp sources switch on to the
    nudge of the free targets at t = 0.
    """
    from ..engines.exact import ExactEngine
    from ..loop import initial_positions

    network = task.network
    if run is not None:
        if "position" not in run:
            raise ConfigError("`--positions` run file has no `position` variable (an `ode` run?); "
                              "give a hardware run or a positions file")
        p = board.hardware.pot.check_positions(np.asarray(run["position"][-1]), network.n_edges)
        v_free = np.asarray(run["v_free"][-1], dtype=float)
        v_clamped = np.asarray(run["v_clamped"][-1], dtype=float)
    else:
        p = initial_positions(network, board.hardware, positions)
        with ExactEngine(network, task, board) as engine:
            v_free = engine.init(p).v_free
        v_clamped = v_free.copy()
    return NetlistState(p, v_free, v_clamped, task.nudge(v_free, board.hardware.eta), board.period)


def standalone_netlist(task: BoundTask, board: Board, state: NetlistState) -> Netlist:
    """A netlist that ``ngspice -b`` runs; it prints every node voltage at the end (12 digits)."""
    network: CompiledNetwork = task.network
    probe = compile_netlist(network, task, board, state)
    names = probe.free_nodes + probe.clamped_nodes
    control = [".control", "set numdgt=12", "run", f"echo spicelearn: final node voltages at t = {state.duration!r}"]
    control += [f"print v({n})[length(time)-1]" for n in names]
    control += ["quit", ".endc"]
    title = (f"spicelearn export: {network.name}, one clock period of {state.duration!r} s, "
             f"{board.hardware.capacitance_model} capacitance")
    return compile_netlist(network, task, board, state, title=title, extra=tuple(control))


def read_positions(path: str) -> np.ndarray:
    """Positions from a .npy array or a text/JSON list of integers (a run file is read by the caller)."""
    if not os.path.exists(path):
        raise ConfigError(f"`--positions` file {path!r} does not exist")
    if path.endswith(".npy"):
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ConfigError(f"`--positions` file {path!r} is not a plain .npy array: {exc}") from None
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise ConfigError(f"`--positions` file {path!r} is not text; give a JSON or whitespace-separated list of "
                          "integers, a .npy array, or a run file (.nc)") from None
    try:
        values = json.loads(text) if text.lstrip().startswith("[") else text.replace(",", " ").split()
        return np.asarray([float(v) for v in values])
    except (ValueError, TypeError):
        raise ConfigError(f"`--positions` file {path!r} must hold integers 0..127 (JSON list or whitespace "
                          "separated), a .npy array, or be a run file (.nc)") from None
