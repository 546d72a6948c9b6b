"""SPICE netlists of the twin networks (DESIGN.md sections 1 and 6).

Both twins live in one circuit (the engine may also compile each twin on its
own, ``twins="f"`` or ``"c"``, to run them on two ngspice instances). Node ``n``
of the graph is ``f_<n>`` in the free twin and ``c_<n>`` in the clamped one
(``f_n<index>`` / ``c_n<index>`` when the id is not a safe lower-case SPICE
name); edge ``j`` is the resistor
``rf<j>`` / ``rc<j>`` with, in the ``per_edge`` model, the capacitor
``cf<j>`` / ``cc<j>`` in parallel (and its leakage ``rlf<j>`` / ``rlc<j>`` where the
board has one; a pot's wiper resistance is part of its resistor); in the ``global`` model every node has a
capacitor ``cfn<i>`` / ``ccn<i>`` to ground. Sources are DC voltage sources
``vfs<i>`` / ``vcs<i>``, the clamps ``vct<i>`` (a ``pulse`` whose rise is the clamp step).

Initial conditions are written with ``.ic`` for *every* node, driven ones
included: with ``uic`` ngspice takes capacitor voltages from the ``.ic`` node
voltages and counts an unlisted node as 0 V. The clamped targets start at their
old value and their sources ramp to the new one in ``RAMP`` clock periods: the
capacitors carry the charge-conserving jump, and the ramp, short against every
RC time, lets the integrator resolve it (a step inside one time step makes
ngspice cut its step to nothing).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..files import atomic_write
from ..model.board import Board
from ..model.network import CompiledNetwork
from ..model.task import BoundTask

__all__ = ["Netlist", "NetlistState", "compile_netlist", "clamp_pulse", "spice_node_names", "RAMP", "MINBREAK",
           "TOLERANCES", "STEP_VOLTS", "MIN_VOLTS", "simulator_options", "voltage_scale"]

#: Simulator options per capacitance model that do not depend on the circuit's values. Per-edge
#: capacitors couple nodes, and a clamp step makes their currents jump: the trapezoidal rule rings
#: on that, Gear does not (ngspice's Gear never goes beyond order 2, whatever ``maxord`` says). With
#: capacitors to ground the trapezoidal rule is as accurate and twice as fast. ``trtol`` 1: the
#: error budget is :data:`STEP_VOLTS` as it stands. ``reltol``, ``chgtol``, ``abstol`` and
#: ``minbreak`` are set per circuit by :func:`simulator_options`.
TOLERANCES = {
    "per_edge": {"vntol": 1e-9, "trtol": 1, "method": "gear"},
    "global": {"vntol": 1e-9, "trtol": 1, "method": "trap"},
}

#: Truncation-error budget of one ngspice time step per capacitance model, in volts on the smallest
#: capacitor. ngspice accepts a step when each capacitor's estimated charge error is below ``trtol``
#: times ``max((abstol + reltol * |i|) * h, reltol * max(|q|, chgtol))``; :func:`simulator_options`
#: sets ``chgtol`` to the charge of the circuit's voltage scale on the smallest capacitor, ``reltol``
#: to the budget over that scale and ``abstol`` to 0: each capacitor may err by the budget times the
#: smallest capacitance per step (a larger one whose charge exceeds ``chgtol``: by at most the budget
#: in volts on it), whatever the voltage across it, and the options are the same in units of the
#: clock period for any capacitance and clock. The trapezoidal rule (``global``) makes about a
#: third of Gear's error on the same budget. Derivation and measurements: docs/ngspice.md.
STEP_VOLTS = {"per_edge": 3e-9, "global": 1e-8}

#: Smallest voltage scale (volts) :func:`simulator_options` uses: a circuit whose voltages span less
#: (all driven nodes at one voltage) has nothing to integrate, and its tolerances stay finite.
MIN_VOLTS = 1e-3

#: Rise time of a clamp step as a fraction of the clock period: short enough that the
#: resistors move no charge during it, long enough for the integrator to resolve it.
RAMP = 5e-5

#: ngspice treats a time point closer than ``minbreak`` to a breakpoint as the breakpoint itself
#: (and drops it): a tiny value, as a fraction of the clock period, keeps the ticks exact.
MINBREAK = 1e-9

_SAFE = re.compile(r"[a-z0-9_]{1,40}")


def spice_node_names(network: CompiledNetwork) -> tuple:
    """Per-twin SPICE node suffixes, one per compiled node: the id itself when safe, else ``n<index>``."""
    names = [n if _SAFE.fullmatch(n) and not n.startswith("n") else f"n{i}" for i, n in enumerate(network.nodes)]
    return tuple(names)


def _comment(text: str) -> str:
    """User text (node ids, names) as it may stand in a ``*`` comment: one line of ASCII (escapes for the
    rest, so a newline or ``.end`` in a node id cannot end the deck, and ngspice reads only ASCII)."""
    text = str(text)
    if text.isascii() and text.isprintable():
        return text
    return json.dumps(text)[1:-1]


def _fmt(x: float) -> str:
    return repr(float(x))


@dataclass(frozen=True)
class NetlistState:
    """What a netlist simulates: one relaxation of both twins.

    Attributes
    ----------
    positions : ndarray of int, shape (E,)
    v_free, v_clamped : ndarray, shape (N,)
        Node voltages at t = 0 (driven nodes at their old values).
    clamp : ndarray, shape (M_T,)
        Voltages the clamp sources hold from t = 0 on.
    duration : float
        Seconds of transient.
    """

    positions: np.ndarray
    v_free: np.ndarray
    v_clamped: np.ndarray
    clamp: np.ndarray
    duration: float


@dataclass(frozen=True)
class Netlist:
    """A netlist and the names that map it back to the graph.

    Attributes
    ----------
    text : str
        The netlist, ``.end`` included.
    free_nodes, clamped_nodes : tuple of str, length N
        SPICE node of every compiled node in each twin.
    free_resistors, clamped_resistors : tuple of str, length E (empty for a twin left out)
    clamp_sources : tuple of str, length M_T (empty without the clamped twin)
    """

    text: str
    free_nodes: tuple
    clamped_nodes: tuple
    free_resistors: tuple
    clamped_resistors: tuple
    clamp_sources: tuple

    def write(self, path) -> None:
        """Write the netlist to ``path`` (atomically: an existing file is replaced only when complete)."""
        atomic_write(path, self.text, what="netlist")


def voltage_scale(model: str, *voltages) -> float:
    """The largest voltage a capacitor of the circuit can carry, given every voltage it is driven to or
    starts from: their span (``per_edge``: capacitors between nodes) or their largest magnitude
    (``global``: capacitors to ground), at least :data:`MIN_VOLTS`.

    Node voltages stay within the span of the driven and initial voltages (a relaxation averages, a
    charge-conserving jump moves floating nodes by a weighted mean of the driven nodes' jumps, or
    not at all).
    """
    v = np.concatenate([np.ravel(np.asarray(x, dtype=float)) for x in voltages] or [np.zeros(1)])
    span = float(np.ptp(v)) if model == "per_edge" else float(np.abs(v).max())
    return max(span, MIN_VOLTS)


def simulator_options(board: Board, period: float, volts: float = 1.0) -> dict:
    """ngspice ``.options`` for a circuit of ``board`` clocked every ``period`` seconds whose capacitors
    carry at most ``volts`` (:func:`voltage_scale`).

    Every time step may make an error of :data:`STEP_VOLTS` on each capacitor (see there): ``chgtol``
    is the charge of ``volts`` on the smallest capacitor, ``reltol`` is the budget over ``volts``, and
    ``abstol`` is 0. ngspice also compares ``abstol`` (amperes) with a charge derivative in
    coulombs per second**(order+1), so any nonzero value caps the steps of quiet capacitors at
    seconds, whatever the clock: with ``abstol`` 0 the options are the same in units of the clock
    period for any capacitance (``chgtol`` scales with it) and clock (``minbreak`` too).
    """
    volts = float(volts)
    if not (np.isfinite(volts) and volts > 0):
        raise ConfigError(f"`volts` must be finite and > 0, got {volts!r}")
    model = board.hardware.capacitance_model
    c = float(np.min(board.capacitance))
    return {"reltol": _fmt(STEP_VOLTS[model] / volts), **TOLERANCES[model], "abstol": _fmt(0.0),
            "chgtol": _fmt(volts * c), "minbreak": _fmt(MINBREAK * period)}


def clamp_pulse(old: float, new: float, start: float, ramp: float, period: float) -> str:
    """Parameters of a clamp source's ``pulse``: a linear ramp from ``old`` to ``new`` over
    [start, start + ramp], then ``new`` for 1.5 clock periods.

    The width is finite because ngspice compares times with the pulse corners to within 1e-7
    of the width; 1.5 periods puts the corner breakpoint that ngspice plants at the end of the
    width in the middle of a later period, away from the clock ticks and clamp ramps. (Ending
    the width on the next tick saves 3 % of the time points but lets the largest error grow
    from 4.6e-6 to 6.4e-6 V on lab16, global, R = 10: the restart mid-period costs a few
    points and buys accuracy.)
    """
    return f"{_fmt(old)} {_fmt(new)} {_fmt(start)} {_fmt(ramp)} {_fmt(ramp)} {_fmt(1.5 * period)} {_fmt(4 * period)}"


def compile_netlist(network: CompiledNetwork, task: BoundTask, board: Board, state: NetlistState, *,
                    title: str | None = None, tran: str | None = None, extra: tuple = (),
                    ramp: float = RAMP, twins: str = "fc") -> Netlist:
    """The netlist of both twins (or one of them) relaxing for ``state.duration`` seconds.

    Parameters
    ----------
    network, task, board
        The circuit: graph, task, and the value of every part.
    state : NetlistState
        Positions, initial voltages, clamp values and duration.
    title : str, optional
        First line of the netlist.
    tran : str, optional
        The transient card; default ``.tran <duration/100> <duration> uic``.
    extra : tuple of str
        Lines inserted before ``.end`` (``.save``, ``.options``, ``.control`` blocks).
    ramp : float
        Rise time of the clamp step, as a fraction of ``state.duration``.
    twins : {"fc", "f", "c"}
        The twins in the circuit: both (default), the free or the clamped one only.
    """
    if twins not in ("fc", "f", "c"):
        raise ConfigError(f"`twins` must be 'fc', 'f' or 'c', got {twins!r}")
    N, E = network.n_nodes, network.n_edges
    hardware = board.check(network).hardware
    positions = hardware.pot.check_positions(state.positions, E)
    v_free = np.asarray(state.v_free, dtype=float)
    v_clamped = np.asarray(state.v_clamped, dtype=float)
    clamp = np.asarray(state.clamp, dtype=float)
    for name, arr, shape in (("v_free", v_free, (N,)), ("v_clamped", v_clamped, (N,)),
                             ("clamp", clamp, task.target_index.shape)):
        if arr.shape != shape or not np.all(np.isfinite(arr)):
            raise ConfigError(f"`{name}` must be finite with shape {shape}, got shape {arr.shape}")
    if not (np.isfinite(state.duration) and state.duration > 0):
        raise ConfigError(f"`duration` must be finite and > 0 seconds, got {state.duration!r}")

    suffix = spice_node_names(network)
    fn = tuple(f"f_{s}" for s in suffix)
    cn = tuple(f"c_{s}" for s in suffix)
    res = dict(zip("fc", board.resistance(positions)))
    lines = [f"* {_comment(title or 'spicelearn twin networks')}",
             f"* network {_comment(network.name)}: {N} nodes, {E} edges; model {hardware.capacitance_model}",
             "* node map (graph id -> free, clamped): "
             + ", ".join(f"{_comment(n)}->{a},{b}" for n, a, b in zip(network.nodes[:64], fn, cn))
             + (" ..." if N > 64 else "")]
    eu, ev = network.edge_nodes.T
    for t, (twin, names) in enumerate((("f", fn), ("c", cn))):
        if twin not in twins:
            continue
        lines += [f"r{twin}{j} {names[a]} {names[b]} {_fmt(r)}"
                  for j, (a, b, r) in enumerate(zip(eu, ev, res[twin]))]
        caps = board.twin_capacitance(t)
        if hardware.capacitance_model == "per_edge":
            lines += [f"c{twin}{j} {names[a]} {names[b]} {_fmt(c)}"
                      for j, (a, b, c) in enumerate(zip(eu, ev, caps))]
            lines += [f"rl{twin}{j} {names[a]} {names[b]} {_fmt(r)}"  # capacitor leakage
                      for j, (a, b, r) in enumerate(zip(eu, ev, board.leakage[t])) if np.isfinite(r)]
        else:
            lines += [f"c{twin}n{i} {names[i]} 0 {_fmt(c)}" for i, c in enumerate(caps)]
        lines += [f"v{twin}s{k} {names[i]} 0 dc {_fmt(v)}"
                  for k, (i, v) in enumerate(zip(task.source_index, task.source_voltage))]
    t_ramp = ramp * state.duration
    if "c" in twins:
        lines += [f"vct{k} {cn[i]} 0 pulse({clamp_pulse(v_clamped[i], v, 0.0, t_ramp, state.duration)})"
                  for k, (i, v) in enumerate(zip(task.target_index, clamp))]
    v_free = v_free.copy()
    v_free[task.source_index] = task.source_voltage
    v_clamped = v_clamped.copy()
    v_clamped[task.source_index] = task.source_voltage
    ic = [f"v({n})={_fmt(v)}" for twin, nodes, volts in (("f", fn, v_free), ("c", cn, v_clamped)) if twin in twins
          for n, v in zip(nodes, volts)]
    lines += [".ic " + " ".join(ic[i:i + 8]) for i in range(0, len(ic), 8)]
    volts = voltage_scale(hardware.capacitance_model, task.source_voltage, task.target_voltage, clamp, v_free,
                          v_clamped)
    lines.append(".options " + " ".join(f"{k}={v}" for k, v in simulator_options(board, state.duration, volts).items()))
    lines.append(tran or f".tran {_fmt(state.duration / 100)} {_fmt(state.duration)} uic")
    lines += list(extra)
    lines.append(".end")
    return Netlist(text="\n".join(lines) + "\n", free_nodes=fn, clamped_nodes=cn,
                   free_resistors=tuple(f"rf{j}" for j in range(E)) if "f" in twins else (),
                   clamped_resistors=tuple(f"rc{j}" for j in range(E)) if "c" in twins else (),
                   clamp_sources=tuple(f"vct{k}" for k in range(len(clamp))) if "c" in twins else ())
