"""The ``ngspice`` engine: the transient between clock ticks computed by ngspice.

ngspice runs in-process through PySpice's ``NgSpiceShared``. ngspice keeps
global state, so a process has at most two instances: the system library and,
for the second twin, a private copy of it (loaded from a temporary copy of the
file, which is deleted at once). By default the free twin runs on the copy in a
worker thread while the clamped twin runs on the system library in the calling
thread; the two are independent circuits between ticks, and ngspice releases
the GIL. ``parallel=False`` (or a platform where the copy cannot be loaded)
runs both twins in one circuit on one instance.

Each circuit of :mod:`spicelearn.netlist` is loaded once per *segment* of
``segment`` ticks, with one ``.tran`` that runs through the whole segment.
Per tick the engine

1. ``alter``s the resistors whose pot moved (joined with ``;`` into command
   lines below ngspice's 1,023-character limit) and turns each clamp source's
   ``pulse`` into a ramp from its old to its new value over ``[t_k, t_k + ramp]``
   (a clamp step the integrator resolves; the floating nodes jump with charge
   conserved; ``ramp`` is ``RAMP`` = 5e-5 clock periods);
2. plants breakpoints at the ramp's end and at the next tick
   (``ngSpice_SetBkpt``), registers one ``stop when time >= t_{k+1}`` and
   ``resume``s once;
3. reads the last sample of every saved node vector.

The first tick of a segment is a stop registered before ``run`` (ngspice plants
a breakpoint at its parsed value then). A breakpoint is set at the tick itself
and the stop a hair earlier: a stop at exactly the breakpoint's time can miss
it (ngspice's parse of the stop's number need not give the same double), and
ngspice lands on a breakpoint to within a few ulps either side. ``minbreak``
is tiny, because ngspice takes a time point within ``minbreak`` of a breakpoint
for the breakpoint and would step past the tick. Only floating node voltages
are saved, and a new segment starts (the circuits are reloaded with ``.ic`` at
the current voltages) every ``segment`` ticks, which bounds the memory of the
saved vectors and ngspice's command history. Equilibria (``init``,
``equilibrium_free``) are linear solves in numpy.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial

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
#: ``ngSpice_Command`` keeps the first 1,023 characters of a line (PySpice's ``MAX_COMMAND_LENGTH``).
_LINE = 1000


class _Session:
    """One ngspice instance: PySpice's shared-library binding plus captured output lines.

    Parameters
    ----------
    copy_of : str, optional
        Path of the ngspice library to load a private copy of (a second instance
        with its own global state); default PySpice's library.
    """

    def __init__(self, copy_of: str | None = None):
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

            if copy_of is not None:
                def _load_library(self, verbose):  # PySpice's own would declare the C API to cffi twice
                    self._ngspice_shared = _dlopen_copy(ffi, copy_of)

        try:
            self.shared = _Shared(ngspice_id=0 if copy_of is None else 1)
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
        _check_length(text)
        del self.lines[:]
        rc = self.lib.ngSpice_Command(text.encode("ascii"))
        out = list(self.lines)
        if rc or any(_is_error(ln) and not any(a in ln for a in allow) for ln in out):
            raise SpiceError(f"ngspice command `{text[:80]}` failed:\n" + _report(out))
        return out

    def commands(self, texts) -> None:
        """Run many commands that print nothing when they work (``alter``); check ngspice's lines once.

        The commands are joined with ``;`` into lines of at most ``_LINE`` characters: one
        ``ngSpice_Command`` call per line instead of per command.
        """
        del self.lines[:]
        run = self.lib.ngSpice_Command
        for line in _join(texts):
            if run(line.encode("ascii")):
                raise SpiceError(f"ngspice command line `{line[:80]}` failed:\n" + _report(self.lines))
        if any(_is_error(ln) for ln in self.lines):
            raise SpiceError(f"ngspice rejected one of {len(texts)} commands such as `{texts[0][:80]}`:\n"
                             + _report(self.lines))

    def breakpoint(self, t: float) -> None:
        """Plant a breakpoint at ``t`` seconds in the running transient (``ngSpice_SetBkpt``)."""
        del self.lines[:]
        if not self.lib.ngSpice_SetBkpt(t):
            raise SpiceError(f"ngspice cannot set a breakpoint at t = {t!r} s:\n" + _report(self.lines))

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


def _join(texts, limit: int = _LINE):
    """Commands joined with ``"; "`` into lines of at most ``limit`` characters."""
    line = ""
    for text in texts:
        _check_length(text, limit)
        if line and len(line) + 2 + len(text) > limit:
            yield line
            line = text
        else:
            line = f"{line}; {text}" if line else text
    if line:
        yield line


def _check_length(text: str, limit: int = _LINE) -> None:
    """A longer line would be cut by ``ngSpice_Command`` (and can corrupt ngspice's memory)."""
    if len(text) > limit:
        raise SpiceError(f"ngspice command of {len(text)} characters (at most {limit} are safe): `{text[:60]} ...`")


def _library_file() -> str | None:
    """Path of the ngspice library this process has loaded (from ``/proc/self/maps``), or None."""
    try:
        with open("/proc/self/maps") as fh:
            for row in fh:
                parts = row.split(maxsplit=5)
                if len(parts) == 6 and "libngspice" in os.path.basename(parts[5].strip()):
                    return parts[5].strip()
    except OSError:
        pass
    return None


def _dlopen_copy(ffi, path: str):
    """Load a private copy of the library at ``path`` (its own globals: a second ngspice instance)."""
    fd, tmp = tempfile.mkstemp(prefix="spicelearn-libngspice-", suffix=".so")
    try:
        with os.fdopen(fd, "wb") as dst, open(path, "rb") as src:
            shutil.copyfileobj(src, dst)
        flags = ffi.RTLD_NOW | ffi.RTLD_LOCAL | getattr(ffi, "RTLD_DEEPBIND", 0)
        return ffi.dlopen(tmp, flags)
    finally:
        os.unlink(tmp)  # the mapping outlives the file


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


_SESSIONS: dict = {}
_WORKER: ThreadPoolExecutor | None = None


def ngspice(instance: int = 0) -> _Session:
    """The process's ngspice instance (created on first use).

    ``instance`` 0 is PySpice's library; 1 is a private copy of it, for running the second twin
    in parallel (raises :class:`SpiceError` where no copy can be loaded).
    """
    if instance not in (0, 1):
        raise ConfigError(f"`instance` must be 0 or 1, got {instance!r}")
    if instance not in _SESSIONS:
        if instance == 0:
            _SESSIONS[0] = _Session()
        else:
            ngspice(0)  # loaded first: the copy is made of the file the process loaded
            path = _library_file()
            if path is None:
                raise SpiceError("cannot find the file of the loaded ngspice library to load a second instance")
            try:
                _SESSIONS[1] = _Session(copy_of=path)
            except (OSError, SpiceError) as exc:
                raise SpiceError(f"cannot load a second ngspice instance from a copy of {path}: {exc}") from None
    return _SESSIONS[instance]


def _worker() -> ThreadPoolExecutor:
    """The thread that drives ngspice instance 1."""
    global _WORKER
    if _WORKER is None:
        _WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spicelearn-ngspice-1")
    return _WORKER


def _forget_worker() -> None:
    """In a forked child: the parent's worker thread does not exist there (its executor would hang)."""
    global _WORKER
    _WORKER = None
    for session in _SESSIONS.values():
        session.live = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_worker)


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


class _Circuit:
    """One loaded circuit on one ngspice instance: both twins (``"fc"``) or one (``"f"``, ``"c"``).

    ``start`` loads a segment and runs to its first tick, ``advance`` applies a tick's
    changes and resumes to the next; both return the floating-node voltages of each twin
    the circuit holds, ``{"f": (n_free,), "c": (n_clamped,)}``.
    """

    def __init__(self, engine: "NgspiceEngine", session: _Session, twins: str):
        self.engine, self.session, self.twins = engine, session, twins
        suffix = spice_node_names(engine.network)
        self.saved = {t: [f"{t}_{suffix[i]}" for i in idx] for t, idx in
                      (("f", engine.free_floating), ("c", engine.clamped_floating)) if t in twins}
        self.netlist = None
        self.time = 0.0  # where the transient stopped
        self._names = None

    def start(self, state: NgspiceState, clamp: np.ndarray, T: float, segment: int) -> dict:
        """Load a new segment at the state's voltages, one ``.tran`` through ``segment`` ticks; run to tick 1."""
        s, e = self.session, self.engine
        s.reset()
        eps = RAMP * T
        self.netlist = compile_netlist(
            e.network, e.task, e.hardware,
            NetlistState(state.positions, state.v_free, state.v_clamped, clamp, T),
            title=f"spicelearn ngspice engine segment of {segment} ticks ({self.twins})",
            tran=f".tran {T!r} {(T + eps) * (segment + 1)!r} 0 {T!r} uic",
            extra=(".save " + " ".join(f"v({x})" for names in self.saved.values() for x in names),),
            twins=self.twins)
        s.load(self.netlist.text)
        self._names = None
        s.command("delete all", allow=("no",))
        # a stop registered before the run is a breakpoint too; the clamp pulse plants its ramp's end
        s.command(f"stop when time >= {T * (1 - _EARLY)!r}")
        self._go("run")
        return self._read(T)

    def advance(self, k: int, T: float, changed: np.ndarray, r: list, old_clamp, clamp) -> dict:
        """Tick ``k`` of the segment: alter the moved resistors and the clamp ramps, resume to tick ``k + 1``."""
        s, nl = self.session, self.netlist
        texts = [f"alter {names[j]} = {r[j]!r}" for j in changed.tolist()
                 for names in (nl.free_resistors, nl.clamped_resistors) if names]
        t0, t1, t2 = self.time, k * T + RAMP * T, (k + 1) * T
        texts += [f"alter @{name}[pulse] = [ {clamp_pulse(old, new, t0, t1 - t0, T)} ]"
                  for name, old, new in zip(nl.clamp_sources, old_clamp, clamp)]
        if texts:
            s.commands(texts)
        if nl.clamp_sources:
            s.breakpoint(t1)
        s.breakpoint(t2)
        s.command(f"stop when time >= {t2 * (1 - _EARLY)!r}")
        self._go("resume")
        return self._read(t2)

    def _go(self, cmd: str) -> None:
        """Run or resume to the registered stop, then delete it (a met ``>=`` condition stays met)."""
        out = self.session.command(cmd, allow=("condition met", "pause requested", "simulation interrupted"))
        if not any("condition met" in ln for ln in out):
            raise SpiceError(f"ngspice `{cmd}` ended without reaching the next clock tick:\n"
                             + "\n".join(_strip(ln) for ln in out))
        self.session.command("delete all", allow=("no",))

    def _read(self, t_want: float) -> dict:
        s = self.session
        if self._names is None:
            want = [x for names in self.saved.values() for x in names] + ["time"]
            s.check_vectors(want)
            self._names = [s.ffi.new("char[]", w.encode()) for w in want]
        vals = s.last_values(self._names)
        if not abs(vals[-1] - t_want) <= 1e-11 * t_want:
            raise SpiceError(f"ngspice stopped at t = {vals[-1]!r} s instead of the tick at {t_want!r} s")
        self.time = vals[-1]
        out, i = {}, 0
        for t, names in self.saved.items():
            out[t], i = vals[i:i + len(names)], i + len(names)
        return out


class NgspiceEngine:
    """Twin networks simulated by ngspice (see module docstring).

    Parameters
    ----------
    network : CompiledNetwork
    task : BoundTask
    hardware : Hardware
    segment : int
        Ticks per loaded circuit (memory bound); default 100.
    parallel : bool
        Run the free twin on a second ngspice instance in a worker thread (default); with
        False, or where the second instance cannot be loaded (a warning says why), both
        twins are one circuit on one instance.
    """

    name = "ngspice"

    def __init__(self, network: CompiledNetwork, task: BoundTask, hardware: Hardware, *, segment: int = 100,
                 parallel: bool = True):
        if int(segment) != segment or segment < 1:
            raise ConfigError(f"`segment` must be an integer >= 1, got {segment!r}")
        self.network, self.task, self.hardware, self.segment = network, task, hardware, int(segment)
        n = network.n_nodes
        driven = np.zeros(n, bool)
        driven[task.source_index] = True
        self.free_floating = np.flatnonzero(~driven)
        driven[task.target_index] = True
        self.clamped_floating = np.flatnonzero(~driven)
        main = ngspice(0)
        second = None
        if parallel:
            try:
                second = ngspice(1)
            except SpiceError as exc:
                warnings.warn(f"ngspice engine: both twins on one ngspice instance ({exc})", RuntimeWarning,
                              stacklevel=2)
        self.parallel = second is not None
        # the free twin on the worker's instance; the clamped twin (clamp ramps: more work) in this thread
        self._circuits = ([_Circuit(self, second, "f"), _Circuit(self, main, "c")] if self.parallel
                          else [_Circuit(self, main, "fc")])
        self._positions = None  # positions in the live circuits
        self._tick = 0  # ticks run in this segment
        self._duration = None

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
        live = (state.token != 0 and all(c.session.live == state.token for c in self._circuits)
                and duration == self._duration and self._tick < self.segment)
        T = float(duration)
        if live:
            k = self._tick
            changed = np.flatnonzero(state.positions != self._positions)
            r = self.hardware.pot.resistance(state.positions).tolist()
            jobs = [partial(c.advance, k, T, changed, r, state.clamp, clamp) for c in self._circuits]
        else:
            self._duration, self._tick = T, 0
            jobs = [partial(c.start, state, clamp, T, self.segment) for c in self._circuits]
        self._positions = np.array(state.positions)
        self._tick += 1
        try:
            values = _run_jobs(jobs)
        except BaseException:
            for c in self._circuits:
                c.session.live = 0  # the circuits are at no state now
            raise
        v_free, v_clamped = self._driven(), self._driven(clamp)
        for vals in values:
            if "f" in vals:
                v_free[self.free_floating] = vals["f"]
            if "c" in vals:
                v_clamped[self.clamped_floating] = vals["c"]
        token = next(_TOKENS)
        for c in self._circuits:
            c.session.live = token
        return NgspiceState(np.array(state.positions), v_free, v_clamped, clamp, token=token)

    def close(self) -> None:
        """Forget the loaded circuits (the ngspice instances stay for the process)."""
        for c in self._circuits:
            c.session.reset()


def _run_jobs(jobs: list) -> list:
    """Run the jobs, the first on the worker thread when there are two; their results in order."""
    if len(jobs) == 1:
        return [jobs[0]()]
    first = _worker().submit(jobs[0])
    try:
        second = jobs[1]()
    finally:
        done = first.result()  # wait for the worker whatever happened here
    return [done, second]
