"""SPICE netlists of the twin networks (DESIGN.md sections 1 and 6).

Both twins live in one circuit (the engine may also compile each twin on its
own, ``twins="f"`` or ``"c"``, to run them on two ngspice instances). Node ``n``
of the graph is ``f_<n>`` in the free twin and ``c_<n>`` in the clamped one
(``f_n<index>`` / ``c_n<index>`` when the id is not a safe lower-case SPICE
name); edge ``j`` is the resistor
``rf<j>`` / ``rc<j>`` with, in the ``per_edge`` model, the capacitor
``cf<j>`` / ``cc<j>`` in parallel; in the ``global`` model every node has a
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

import os
import re
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .hardware import Hardware
from .network import CompiledNetwork
from .task import BoundTask

__all__ = ["Netlist", "NetlistState", "compile_netlist", "clamp_pulse", "spice_node_names", "export_state",
           "standalone_netlist", "RAMP", "MINBREAK", "TOLERANCES", "ABSTOL_VOLTS", "CHGTOL_VOLTS",
           "simulator_options", "register_cli"]

#: Simulator options per capacitance model, tuned for 1e-5 V agreement with the exact engine
#: (volts, amperes, coulombs). Per-edge capacitors couple nodes, and a clamp step makes their
#: currents jump: the trapezoidal rule rings on that, Gear does not (ngspice's Gear never goes
#: beyond order 2, whatever ``maxord`` says). With capacitors to ground the trapezoidal rule is as
#: accurate and twice as fast. ``abstol`` is set per circuit by :func:`simulator_options`.
TOLERANCES = {
    "per_edge": {"reltol": 1e-7, "vntol": 1e-9, "trtol": 1, "method": "gear"},
    "global": {"reltol": 1e-7, "vntol": 1e-9, "trtol": 1, "method": "trap"},
}

#: ngspice's truncation-error test is relative to each capacitor's own charge and current, with
#: ``chgtol`` and ``abstol`` as floors: with fixed tiny floors, edges with almost no voltage across
#: them set tiny steps once learning has spread the time constants (up to 370 points per tick).
#: Both floors are scaled to the circuit: ``abstol`` is the current that moves ABSTOL_VOLTS on the
#: capacitance in one clock period, ``chgtol`` the charge of CHGTOL_VOLTS on it (ngspice multiplies
#: it by ``reltol``). These values cut the points per tick by up to 1.6x at unchanged accuracy.
ABSTOL_VOLTS = 1e-7
CHGTOL_VOLTS = 0.03

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
        with open(path, "w") as fh:
            fh.write(self.text)


def simulator_options(hardware: Hardware, period: float) -> dict:
    """ngspice ``.options`` for a circuit of ``hardware`` clocked every ``period`` seconds."""
    c = hardware.capacitance
    return {**TOLERANCES[hardware.capacitance_model], "abstol": _fmt(ABSTOL_VOLTS * c / period),
            "chgtol": _fmt(CHGTOL_VOLTS * c), "minbreak": _fmt(MINBREAK * period)}


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


def compile_netlist(network: CompiledNetwork, task: BoundTask, hardware: Hardware, state: NetlistState, *,
                    title: str | None = None, tran: str | None = None, extra: tuple = (),
                    ramp: float = RAMP, twins: str = "fc") -> Netlist:
    """The netlist of both twins (or one of them) relaxing for ``state.duration`` seconds.

    Parameters
    ----------
    network, task, hardware
        The circuit.
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
    res = hardware.pot.resistance(positions)
    lines = [f"* {title or 'spicelearn twin networks'}",
             f"* network {network.name}: {N} nodes, {E} edges; model {hardware.capacitance_model}",
             "* node map (graph id -> free, clamped): "
             + ", ".join(f"{n}->{a},{b}" for n, a, b in zip(network.nodes[:64], fn, cn))
             + (" ..." if N > 64 else "")]
    eu, ev = network.edge_nodes.T
    for twin, names in [(t, n) for t, n in (("f", fn), ("c", cn)) if t in twins]:
        lines += [f"r{twin}{j} {names[a]} {names[b]} {_fmt(r)}" for j, (a, b, r) in enumerate(zip(eu, ev, res))]
        if hardware.capacitance_model == "per_edge":
            caps = hardware.edge_capacitance(E)
            lines += [f"c{twin}{j} {names[a]} {names[b]} {_fmt(c)}" for j, (a, b, c) in enumerate(zip(eu, ev, caps))]
        else:
            lines += [f"c{twin}n{i} {names[i]} 0 {_fmt(hardware.capacitance)}" for i in range(N)]
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
    lines.append(".options " + " ".join(f"{k}={v}" for k, v in simulator_options(hardware, state.duration).items()))
    lines.append(tran or f".tran {_fmt(state.duration / 100)} {_fmt(state.duration)} uic")
    lines += list(extra)
    lines.append(".end")
    return Netlist(text="\n".join(lines) + "\n", free_nodes=fn, clamped_nodes=cn,
                   free_resistors=tuple(f"rf{j}" for j in range(E)) if "f" in twins else (),
                   clamped_resistors=tuple(f"rc{j}" for j in range(E)) if "c" in twins else (),
                   clamp_sources=tuple(f"vct{k}" for k in range(len(clamp))) if "c" in twins else ())


# -- standalone export -----------------------------------------------------------------
def export_state(network: CompiledNetwork, task: BoundTask, hardware: Hardware, positions=None,
                 run=None) -> NetlistState:
    """What an exported netlist simulates: one clock period of the learning loop.

    With a run (an ``xarray.Dataset`` run file) it is the period after the run's
    last step: its last positions and voltages, clamps set by the supervisor.
    Otherwise both twins start at the free equilibrium of ``positions`` and the
    clamp sources switch on to the eta-nudge of the free targets at t = 0.
    """
    from .cosim import initial_positions
    from .engines.exact import ExactEngine

    tgt, eta, V_T = task.target_index, hardware.eta, task.target_voltage
    if run is not None:
        if "position" not in run:
            raise ConfigError("`--positions` run file has no `position` variable (an `ode` run?); "
                              "give a hardware run or a positions file")
        p = hardware.pot.check_positions(np.asarray(run["position"][-1]), network.n_edges)
        v_free = np.asarray(run["v_free"][-1], dtype=float)
        v_clamped = np.asarray(run["v_clamped"][-1], dtype=float)
        if v_free.shape != (network.n_nodes,):
            raise ConfigError(f"`--positions` run file has {v_free.shape[0]} nodes, the network {network.n_nodes}")
    else:
        p = initial_positions(network, hardware, positions)
        v_free = ExactEngine(network, task, hardware).init(p).v_free
        v_clamped = v_free.copy()
    vt = v_free[tgt]
    return NetlistState(p, v_free, v_clamped, vt + eta * (V_T - vt), hardware.period)


def standalone_netlist(network: CompiledNetwork, task: BoundTask, hardware: Hardware, state: NetlistState) -> Netlist:
    """A netlist that ``ngspice -b`` runs; it prints every node voltage at the end (12 digits)."""
    probe = compile_netlist(network, task, hardware, state)
    names = probe.free_nodes + probe.clamped_nodes
    control = [".control", "set numdgt=12", "run", f"echo spicelearn: final node voltages at t = {state.duration!r}"]
    control += [f"print v({n})[length(time)-1]" for n in names]
    control += ["quit", ".endc"]
    title = (f"spicelearn export: {network.name}, one clock period of {state.duration!r} s, "
             f"{hardware.capacitance_model} capacitance")
    return compile_netlist(network, task, hardware, state, title=title, extra=tuple(control))


def _positions_from_file(path: str):
    """Positions from a run file (.nc: returns the dataset), a .npy array, or a text/JSON list of integers."""
    import json

    if not os.path.exists(path):
        raise ConfigError(f"`--positions` file {path!r} does not exist")
    if path.endswith(".nc"):
        from .runfile import load_run

        return None, load_run(path)
    if path.endswith(".npy"):
        return np.load(path), None
    with open(path) as fh:
        text = fh.read()
    try:
        values = json.loads(text) if text.lstrip().startswith("[") else text.replace(",", " ").split()
        return np.asarray([float(v) for v in values]), None
    except ValueError:
        raise ConfigError(f"`--positions` file {path!r} must hold integers 0..127 (JSON list or whitespace "
                          "separated), a .npy array, or be a run file (.nc)") from None


def _cmd_export(args) -> int:
    from .cli import _hardware_from_args
    from .cosim import resolve_hardware
    from .network import load_network
    from .task import load_task

    net = load_network(args.network, network_seed=args.network_seed)
    task = load_task(args.task, net).bind(net)
    hw = resolve_hardware(net, _hardware_from_args(args))
    positions, run = _positions_from_file(args.positions) if args.positions else (None, None)
    nl = standalone_netlist(net, task, hw, export_state(net, task, hw, positions, run))
    nl.write(args.output)
    print(f"wrote {args.output}")
    return 0


def register_cli(subparsers) -> None:
    """Add ``export-spice`` (and ``replay``) to the command line."""
    from .cli import _add_train_options

    p = subparsers.add_parser("export-spice", help="write a standalone SPICE netlist of the twin networks")
    _add_train_options(p)
    p.add_argument("--positions", metavar="FILE|RUN.nc", help="pot positions (JSON/text list, .npy) or a run file "
                   "(exports the clock period after its last step)")
    p.add_argument("-o", "--output", required=True, metavar="FILE.cir")
    p.set_defaults(func=_cmd_export)
    from .replay import register_cli as register_replay

    register_replay(subparsers)
