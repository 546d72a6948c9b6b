"""The ``ngspice`` engine: the transient between clock ticks computed by ngspice.

ngspice runs in-process through PySpice's ``NgSpiceShared`` (one instance per
process: ngspice keeps global state). The twin circuit of
:mod:`spicelearn.netlist` is loaded once per *segment* of ``segment`` ticks with
one ``.tran`` that runs through the whole segment; stops at every tick time
``t_k`` and at ``t_k + ramp`` are registered before the run, because ngspice
plants its breakpoints from the stop list when a run starts (a stop added
after a ``resume`` is not hit exactly). Per tick the engine

1. ``alter``s the resistors whose pot moved and turns each clamp source's
   ``pulse`` into a ramp from its old to its new value over ``[t_k, t_k + ramp]``
   (a clamp step the integrator resolves; the floating nodes jump with charge
   conserved; ``ramp`` is ``RAMP`` = 5e-5 clock periods);
2. ``resume``s to ``t_k + ramp`` and on to ``t_{k+1}``;
3. reads the last sample of every saved node vector.

A met ``>=`` stop stays met, so each one is deleted once reached; ``minbreak``
is tiny, because ngspice takes a time point within ``minbreak`` of a
breakpoint for the breakpoint and would step past the tick. Only floating node
voltages are saved, and a new segment starts (the circuit is reloaded with
``.ic`` at the current voltages) every ``segment`` ticks, which bounds the
memory of the saved vectors and ngspice's command history. Equilibria
(``init``, ``equilibrium_free``) are linear solves in numpy.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, replace

import numpy as np

from ..errors import ConfigError, NetworkError, SpiceError
from ..hardware import Hardware
from ..netlist import RAMP, NetlistState, clamp_pulse, compile_netlist, spice_node_names
from ..network import CompiledNetwork
from ..task import BoundTask

__all__ = ["NgspiceEngine", "NgspiceState", "ngspice", "DEBIAN_PACKAGES"]

DEBIAN_PACKAGES = "ngspice libngspice0 libngspice0-dev"
_TOKENS = itertools.count(1)
#: Stops sit this fraction before the tick: ngspice lands on a breakpoint within a few ulps, either side.
_EARLY = 1e-13


class _Session:
    """The process's ngspice: PySpice's shared-library binding plus captured output lines."""

    def __init__(self):
        self.live = 0  # token of the engine state the loaded circuit is at (0: none)
        try:
            from PySpice.Spice.NgSpice.Shared import NgSpiceShared, ffi
        except ImportError as exc:
            raise SpiceError(f"the `ngspice` backend needs PySpice (pip install PySpice): {exc}") from None
        logging.getLogger("PySpice").setLevel(logging.CRITICAL)  # ngspice's lines are surfaced in SpiceError
        lines = self.lines = []

        class _Shared(NgSpiceShared):
            def send_char(self, message, ngspice_id):
                lines.append(message)
                return 0

        try:
            self.shared = _Shared(ngspice_id=0)
        except OSError as exc:
            raise SpiceError(f"cannot load ngspice's shared library ({exc}); install the Debian packages "
                             f"{DEBIAN_PACKAGES} (`make system`), or set NGSPICE_LIBRARY_PATH") from None
        self.ffi = ffi
        self.lib = self.shared._ngspice_shared

    def command(self, text: str, *, allow: tuple = ()) -> list:
        """Run one ngspice command; raise :class:`SpiceError` on its error lines.

        Unlike PySpice's ``exec_command``, stderr lines that are part of normal
        operation (the stop and pause notes of ``resume``) do not raise.
        """
        del self.lines[:]
        rc = self.lib.ngSpice_Command(text.encode("ascii"))
        out = list(self.lines)
        if rc or any(_is_error(ln) and not any(a in ln for a in allow) for ln in out):
            raise SpiceError(f"ngspice command `{text[:80]}` failed:\n" + _report(out))
        return out

    def commands(self, texts) -> None:
        """Run many commands that print nothing when they work (``alter``); check ngspice's lines once."""
        del self.lines[:]
        run = self.lib.ngSpice_Command
        for text in texts:
            if run(text.encode("ascii")):
                raise SpiceError(f"ngspice command `{text[:80]}` failed:\n" + _report(self.lines))
        if any(_is_error(ln) for ln in self.lines):
            raise SpiceError(f"ngspice rejected one of {len(texts)} commands such as `{texts[0][:80]}`:\n"
                             + _report(self.lines))

    def load(self, text: str) -> None:
        """Load a netlist (``ngSpice_Circ``); raise :class:`SpiceError` with ngspice's lines if it does not parse."""
        ffi = self.ffi
        keep = [ffi.new("char[]", ln.encode("ascii")) for ln in text.splitlines() if ln.strip()]
        arr = ffi.new("char *[]", keep + [ffi.NULL])
        del self.lines[:]
        rc = self.lib.ngSpice_Circ(arr)
        if rc or any(_is_error(ln) for ln in self.lines):
            raise SpiceError("ngspice cannot load the circuit:\n" + _report(self.lines))

    def vector_names(self) -> set:
        """Names of the vectors of the current plot."""
        ffi = self.ffi
        plot = self.lib.ngSpice_CurPlot()
        vecs = self.lib.ngSpice_AllVecs(plot)
        names, i = set(), 0
        while vecs[i] != ffi.NULL:
            names.add(ffi.string(vecs[i]).decode())
            i += 1
        return names

    def check_vectors(self, names) -> None:
        """Raise :class:`SpiceError` unless every named vector exists in the current plot.

        Reading a vector that does not exist would dereference NULL and kill the process.
        """
        have = self.vector_names()
        missing = [n for n in names if n not in have]
        if missing:
            raise SpiceError(f"ngspice has no vector {missing[0]!r} in its current plot "
                             f"(it has {len(have)}: {', '.join(sorted(have)[:12])}{' ...' if len(have) > 12 else ''})")

    def last_values(self, names: list) -> np.ndarray:
        """Last sample of each vector (cffi ``char[]`` names, checked with :meth:`check_vectors`)."""
        out = np.empty(len(names))
        get = self.lib.ngGet_Vec_Info
        for i, name in enumerate(names):
            info = get(name)
            out[i] = info.v_realdata[info.v_length - 1]
        return out

    def reset(self) -> None:
        """Forget old circuits, plots and the command history (quietly: there may be none)."""
        for text in (b"destroy all", b"remcirc"):
            self.lib.ngSpice_Command(text)
        self.live = 0
        self.lib.ngSpice_Command(self.ffi.NULL)
        del self.lines[:]


def _strip(line: str) -> str:
    return line.partition(" ")[2] if line.startswith(("stdout ", "stderr ")) else line


def _report(lines: list) -> str:
    """ngspice's lines from its first error on, without its warnings and gmin-stepping notes."""
    text = [_strip(ln).rstrip() for ln in lines]
    first = next((i for i, ln in enumerate(text) if _is_error(ln) and not ln.startswith(("Warning", "Trying"))), 0)
    keep = [ln for ln in text[first:] if not ln.lstrip().startswith(("Warning", "Trying", "Note"))]
    return "\n".join(keep[:12] or text[:12])


def _is_error(line: str) -> bool:
    low = line.lower()
    return any(k in low for k in ("error", "aborted", "too small", "not found", "singular", "cannot", "unknown"))


def equilibrium(network: CompiledNetwork, g: np.ndarray, floating: np.ndarray, v: np.ndarray) -> np.ndarray:
    """DC voltages, shape (N,): ``v`` on the driven nodes, Kirchhoff on ``floating`` (conductances ``g``, (E,))."""
    L = network.laplacian(g)
    fixed = np.setdiff1d(np.arange(network.n_nodes), floating)
    out = np.array(v, dtype=float)
    try:
        out[floating] = np.linalg.solve(L[np.ix_(floating, floating)], -L[np.ix_(floating, fixed)] @ out[fixed])
    except np.linalg.LinAlgError:
        raise NetworkError("the conductance matrix of the floating nodes is singular: "
                           "a floating part of the network has no path to a driven node") from None
    return out


_SESSION: _Session | None = None


def ngspice() -> _Session:
    """The process's ngspice session (created on first use)."""
    global _SESSION
    if _SESSION is None:
        _SESSION = _Session()
    return _SESSION


@dataclass(frozen=True, eq=False)
class NgspiceState:
    """State of the twin networks.

    Attributes
    ----------
    positions : ndarray of int, shape (E,)
    v_free, v_clamped : ndarray, shape (N,)
    clamp : ndarray, shape (M_T,)
    token : int
        The circuit moment this state was read at (0: none); while the loaded
        circuit is still at it, ``relax`` continues the running transient.
    """

    positions: np.ndarray
    v_free: np.ndarray
    v_clamped: np.ndarray
    clamp: np.ndarray
    token: int = 0


class NgspiceEngine:
    """Twin networks simulated by ngspice (see module docstring).

    Parameters
    ----------
    network : CompiledNetwork
    task : BoundTask
    hardware : Hardware
    segment : int
        Ticks per loaded circuit (memory bound); default 100.
    """

    name = "ngspice"

    def __init__(self, network: CompiledNetwork, task: BoundTask, hardware: Hardware, *, segment: int = 100):
        if int(segment) != segment or segment < 1:
            raise ConfigError(f"`segment` must be an integer >= 1, got {segment!r}")
        self.network, self.task, self.hardware, self.segment = network, task, hardware, int(segment)
        self.session = ngspice()
        n = network.n_nodes
        driven = np.zeros(n, bool)
        driven[task.source_index] = True
        self.free_floating = np.flatnonzero(~driven)
        driven[task.target_index] = True
        self.clamped_floating = np.flatnonzero(~driven)
        suffix = spice_node_names(network)
        self._saved = [f"f_{suffix[i]}" for i in self.free_floating] + [f"c_{suffix[i]}" for i in self.clamped_floating]
        self._positions = None  # positions in the live circuit
        self._tick = 0  # ticks run in this segment
        self._duration = None
        self._names = None

    # -- equilibria (linear solves) ------------------------------------------------
    def _solve(self, g: np.ndarray, floating: np.ndarray, v: np.ndarray) -> np.ndarray:
        return equilibrium(self.network, g, floating, v)

    def _driven(self, clamp=None) -> np.ndarray:
        v = np.zeros(self.network.n_nodes)
        v[self.task.source_index] = self.task.source_voltage
        if clamp is not None:
            v[self.task.target_index] = clamp
        return v

    def equilibrium_free(self, state: NgspiceState) -> np.ndarray:
        """Free-twin equilibrium voltages at the state's resistances, shape (N,)."""
        return self._solve(self.hardware.pot.conductance(state.positions), self.free_floating, self._driven())

    # -- engine interface ----------------------------------------------------------
    def state(self, positions, v_free, v_clamped, clamp) -> NgspiceState:
        """A state with given node voltages; driven nodes are overwritten."""
        positions = self.hardware.pot.check_positions(positions, self.network.n_edges)
        v_free, v_clamped, clamp = self.task.impose(v_free, v_clamped, clamp)
        return NgspiceState(positions, v_free, v_clamped, clamp)

    def init(self, positions, clamp=None) -> NgspiceState:
        """Both twins at equilibrium; ``clamp`` defaults to the eta-nudge of the free equilibrium."""
        positions = self.hardware.pot.check_positions(positions, self.network.n_edges)
        g = self.hardware.pot.conductance(positions)
        v_free = self._solve(g, self.free_floating, self._driven())
        if clamp is None:
            vt = v_free[self.task.target_index]
            clamp = vt + self.hardware.eta * (self.task.target_voltage - vt)
        clamp = np.asarray(clamp, dtype=float)
        v_clamped = self._solve(g, self.clamped_floating, self._driven(clamp))
        return NgspiceState(positions, v_free, v_clamped, clamp)

    def set_positions(self, state: NgspiceState, positions) -> NgspiceState:
        """Clock tick: new resistances (applied to the circuit at the next ``relax``)."""
        positions = self.hardware.pot.check_positions(positions, self.network.n_edges)
        return replace(state, positions=positions)

    def relax(self, state: NgspiceState, clamp, duration: float) -> NgspiceState:
        """Step the clamps to ``clamp`` (charge-conserving jump), then relax ``duration`` seconds."""
        if not (np.isfinite(duration) and duration > 0):
            raise ConfigError(f"`duration` must be finite and > 0 seconds, got {duration!r}")
        clamp = np.asarray(clamp, dtype=float)
        if clamp.shape != self.task.target_index.shape:
            raise ConfigError(f"`clamp` must have shape {self.task.target_index.shape}, got {clamp.shape}")
        live = (state.token != 0 and state.token == self.session.live and duration == self._duration
                and self._tick < self.segment)
        if live:
            self._continue(state, clamp)
        else:
            self._start(state, clamp, duration)
        return self._read(state.positions, clamp)

    def close(self) -> None:
        """Forget the loaded circuit (the ngspice instance stays for the process)."""
        self.session.reset()

    # -- ngspice -----------------------------------------------------------------
    def _start(self, state: NgspiceState, clamp: np.ndarray, duration: float) -> None:
        """Load a new segment: the circuit at the state's voltages, one ``.tran`` through ``segment`` ticks."""
        s = self.session
        s.reset()
        T = float(duration)
        eps = RAMP * T
        nl = compile_netlist(
            self.network, self.task, self.hardware,
            NetlistState(state.positions, state.v_free, state.v_clamped, clamp, duration),
            title=f"spicelearn ngspice engine segment of {self.segment} ticks",
            tran=f".tran {T!r} {(T + eps) * (self.segment + 1)!r} 0 {T!r} uic",
            extra=(".save " + " ".join(f"v({x})" for x in self._saved),),
        )
        self.netlist = nl
        s.load(nl.text)
        s.command("delete all", allow=("no",))
        for k in range(1, self.segment + 1):  # registered before the run, they are breakpoints too
            for t in (k * T, k * T + eps):
                s.command(f"stop when time >= {t * (1 - _EARLY)!r}")
        self._duration, self._tick, self._time = T, 0, 0.0
        self._positions = np.array(state.positions)
        self._names = None
        self._run("run")  # the .ic start and the clamp ramp at t = 0 are in the netlist

    def _continue(self, state: NgspiceState, clamp: np.ndarray) -> None:
        s, nl = self.session, self.netlist
        changed = np.flatnonzero(state.positions != self._positions)
        r = self.hardware.pot.resistance(state.positions).tolist()
        fr, cr = nl.free_resistors, nl.clamped_resistors
        texts = [f"alter {names[j]} = {r[j]!r}" for j in changed.tolist() for names in (fr, cr)]
        self._positions = np.array(state.positions)
        t0 = self._time  # the ramp spans exactly [this stop, the next breakpoint]
        t1 = (self._tick * self._duration + RAMP * self._duration) * (1 - _EARLY)
        texts += [f"alter @{name}[pulse] = [ {clamp_pulse(old, new, t0, t1 - t0, self._duration)} ]"
                  for name, old, new in zip(nl.clamp_sources, state.clamp, clamp)]
        s.commands(texts)
        self._run("resume")
        self._run("resume")

    def _run(self, cmd: str) -> None:
        """Run or resume to the next stop, then delete that stop (a met ``>=`` condition stays met)."""
        out = self.session.command(cmd, allow=("condition met", "pause requested", "simulation interrupted"))
        met = [_strip(ln).partition(":")[0].strip() for ln in out if "condition met" in ln]
        if not met:
            raise SpiceError(f"ngspice `{cmd}` ended without reaching the next clock tick:\n"
                             + "\n".join(_strip(ln) for ln in out))
        self.session.command("delete " + " ".join(met))

    def _read(self, positions, clamp) -> NgspiceState:
        s = self.session
        self._tick += 1
        if self._names is None:
            want = self._saved + ["time"]
            s.check_vectors(want)
            self._names = [self.session.ffi.new("char[]", w.encode()) for w in want]
        vals = s.last_values(self._names)
        t_want = self._tick * self._duration
        if not abs(vals[-1] - t_want) <= 1e-11 * t_want:
            raise SpiceError(f"ngspice stopped at t = {vals[-1]!r} s instead of the tick at {t_want!r} s")
        self._time = vals[-1]
        nf = self.free_floating.size
        v_free = self._driven()
        v_free[self.free_floating] = vals[:nf]
        v_clamped = self._driven(clamp)
        v_clamped[self.clamped_floating] = vals[nf:-1]
        s.live = next(_TOKENS)
        return NgspiceState(np.array(positions), v_free, v_clamped, clamp, token=s.live)
