"""The ``ngspice`` engine: the transient between clock ticks computed by ngspice.

ngspice runs in-process through PySpice's ``NgSpiceShared``. ngspice keeps
global state, so a process has at most two instances: the system library and,
for the second twin, a private copy of it (loaded from a temporary copy of the
file, which is deleted at once). By default the free twin runs on the copy in a
worker thread while the clamped twin runs on the system library in the calling
thread; the two are independent circuits between ticks, and ngspice releases
the GIL. ``parallel=False`` (or a platform where the copy cannot be loaded)
runs both twins in one circuit on one instance.

Each circuit of :mod:`spicelearn.spice.netlist` is loaded once per *segment* of
``segment`` ticks, with one ``.tran`` that runs through the whole segment (its
step argument is the clamp ramp: ngspice does not check the first step, a
hundredth of it). The simulator options are the netlist's, the same in units
of the clock period for any capacitance and clock (``simulator_options``), so a
tick is a few hundred time points at most and no ngspice call lasts long.
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
``equilibrium_free``) are linear solves in numpy. SIGINT and SIGTERM are held
during a tick and delivered after it (:func:`~.binding.held_signals`): a
KeyboardInterrupt raised in ngspice's print callback would be lost.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from ...errors import ConfigError, SpiceError
from ...model.board import Board
from ...model.network import CompiledNetwork, equilibrium
from ...model.task import BoundTask
from ..base import Engine, EngineState
from .binding import held_signals, ngspice, worker
from ...spice.netlist import RAMP
from .circuit import Circuit

__all__ = ["NgspiceEngine", "NgspiceState"]

_TOKENS = itertools.count(1)


@dataclass(frozen=True, eq=False)
class NgspiceState(EngineState):
    """State of the twin networks (:class:`~spicelearn.engines.base.EngineState`).

    ``token`` is the circuit moment this state was read at (0: none); while the
    loaded circuit is still at it, ``relax`` continues the running transient.
    """

    token: int = 0


class NgspiceEngine(Engine):
    """Twin networks simulated by ngspice (see module docstring).

    Parameters
    ----------
    network : CompiledNetwork
    task : BoundTask
    board : Board
    segment : int
        Ticks per loaded circuit (memory bound); default 100.
    parallel : bool
        Run the free twin on a second ngspice instance in a worker thread (default); with
        False, or where the second instance cannot be loaded (a warning says why), both
        twins are one circuit on one instance.

    Attributes
    ----------
    relaxations : int
        ``relax`` calls so far (clock periods simulated).
    time_points : dict
        Time points ngspice accepted per circuit (see the property).
    """

    name = "ngspice"

    def __init__(self, network: CompiledNetwork, task: BoundTask, board: Board, *, segment: int = 100,
                 parallel: bool = True):
        if isinstance(segment, bool) or int(segment) != segment or segment < 1:
            raise ConfigError(f"`segment` must be an integer >= 1, got {segment!r}")
        super().__init__(network, task, board)
        self.segment = int(segment)
        self.free_floating, self.clamped_floating = task.free_floating, task.clamped_floating
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
        self._circuits = ([Circuit(self, second, "f"), Circuit(self, main, "c")] if self.parallel
                          else [Circuit(self, main, "fc")])
        self.relaxations = 0  # relax calls (clock periods simulated)
        self._positions = None  # positions in the live circuits
        self._tick = 0  # ticks run in this segment
        self._duration = None  # relaxation time of the segment's first tick
        self._uniform = True  # every tick of the segment as long as the first
        self._t = 0.0  # the time of the segment's last tick
        self._tstop = 0.0  # end of the segment's transient

    # -- engine interface ----------------------------------------------------------
    def state(self, positions, v_free, v_clamped, clamp) -> NgspiceState:
        """A state with given node voltages; driven nodes are overwritten."""
        positions = self._check_positions(positions)
        v_free, v_clamped, clamp = self.task.impose(v_free, v_clamped, self._check_clamp(clamp))
        return NgspiceState(positions, v_free, v_clamped, clamp)

    def _equilibrium_free(self, state: NgspiceState) -> np.ndarray:
        g = self.board.conductance(state.positions)[0]
        return equilibrium(self.network, g, self.free_floating, self.task.driven_voltages())

    def _init(self, positions, clamp) -> NgspiceState:
        g = self.board.conductance(positions)
        v_free = equilibrium(self.network, g[0], self.free_floating, self.task.driven_voltages())
        if clamp is None:
            clamp = self.default_clamp(v_free)
        v_clamped = equilibrium(self.network, g[1], self.clamped_floating, self.task.driven_voltages(clamp))
        return NgspiceState(positions, v_free, v_clamped, clamp)

    def clamp_step(self, state: NgspiceState, clamp) -> NgspiceState:
        """The charge-conserving clamp step alone (see the base class); the next ``relax`` reloads the circuit."""
        return replace(super().clamp_step(state, clamp), token=0)

    def _set_positions(self, state: NgspiceState, positions) -> NgspiceState:
        return replace(state, positions=positions)  # applied to the circuit at the next relax

    def _relax(self, state: NgspiceState, clamp, T: float) -> NgspiceState:
        live = (state.token != 0 and all(c.session.live == state.token for c in self._circuits)
                and self._tick < self.segment and self._t + T * (1 + RAMP) < self._tstop)
        if live:
            # the tick's time: k T while every tick of the segment has had the first one's duration
            self._uniform = self._uniform and T == self._duration
            t_next = (self._tick + 1) * T if self._uniform else self._t + T
            changed = np.flatnonzero(state.positions != self._positions)
            r = self.board.resistance(state.positions).tolist()
            jobs = [partial(c.advance, self._t, T, t_next, changed, r, state.clamp, clamp) for c in self._circuits]
        else:
            self._duration, self._tick, self._uniform, t_next = T, 0, True, T
            # the segment's transient runs long enough for its ticks, jittered ones too (else a new segment)
            self._tstop = (T * (1 + 6 * self.hardware.jitter) + RAMP * T) * (self.segment + 1)
            jobs = [partial(c.start, state, clamp, T, self._tstop) for c in self._circuits]
        self._t = t_next
        self._positions = np.array(state.positions)
        self._tick += 1
        self.relaxations += 1
        try:
            with held_signals():  # a Ctrl-C during the tick is raised after it (see held_signals)
                values = _run_jobs(jobs)
        except BaseException:
            for c in self._circuits:
                c.session.live = 0  # the circuits are at no state now
            raise
        v_free, v_clamped = self.task.driven_voltages(), self.task.driven_voltages(clamp)
        for vals in values:
            if "f" in vals:
                v_free[self.free_floating] = vals["f"]
            if "c" in vals:
                v_clamped[self.clamped_floating] = vals["c"]
        token = next(_TOKENS)
        for c in self._circuits:
            c.session.live = token
        return NgspiceState(np.array(state.positions), v_free, v_clamped, clamp, token=token)

    @property
    def time_points(self) -> dict:
        """Time points ngspice has accepted for this engine, per circuit (``"f"`` and ``"c"``, or ``"fc"``)."""
        return {c.twins: c.points for c in self._circuits}

    def close(self) -> None:
        """Forget the loaded circuits (the ngspice instances stay for the process)."""
        for c in self._circuits:
            c.session.reset()


def _run_jobs(jobs: list) -> list:
    """Run the jobs, the first on the worker thread when there are two; their results in order."""
    if len(jobs) == 1:
        return [jobs[0]()]
    first = worker().submit(jobs[0])
    try:
        second = jobs[1]()
    finally:
        done = first.result()  # wait for the worker whatever happened here
    return [done, second]
