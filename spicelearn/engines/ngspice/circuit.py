"""One circuit of the ngspice engine, loaded on one ngspice instance and driven tick by tick."""

from __future__ import annotations

import numpy as np

from ...errors import SpiceError
from ...spice.netlist import RAMP, NetlistState, clamp_pulse, compile_netlist, spice_node_names
from ..base import Engine, EngineState
from .binding import Session, _strip

__all__ = ["Circuit", "EARLY"]

#: Stops sit this fraction before the tick: ngspice lands on a breakpoint within a few ulps, either side.
EARLY = 1e-13


class Circuit:
    """One loaded circuit on one ngspice instance: both twins (``"fc"``) or one (``"f"``, ``"c"``).

    ``start`` loads a segment and runs to its first tick, ``advance`` applies a tick's
    changes and resumes to the next; both return the floating-node voltages of each twin
    the circuit holds, ``{"f": (n_free,), "c": (n_clamped,)}``.
    """

    def __init__(self, engine: Engine, session: Session, twins: str):
        self.engine, self.session, self.twins = engine, session, twins
        suffix = spice_node_names(engine.network)
        self.saved = {t: [f"{t}_{suffix[i]}" for i in idx] for t, idx in
                      (("f", engine.free_floating), ("c", engine.clamped_floating)) if t in twins}
        self.netlist = None
        self.time = 0.0  # where the transient stopped
        self.points = 0  # time points ngspice accepted, all segments together (t = 0 of each not counted)
        self._length = 1  # samples in the time vector of this segment
        self._names = None

    def start(self, state: EngineState, clamp: np.ndarray, T: float, tstop: float) -> dict:
        """Load a new segment at the state's voltages, one ``.tran`` to ``tstop`` seconds; run to its first tick
        at ``T``."""
        s, e = self.session, self.engine
        s.reset()
        eps = RAMP * T
        # .tran's step is the ramp, not T: ngspice does not test the truncation error of the first step,
        # min(tstop/100, tstep)/100 long, and T/100 of backward Euler made up to 1e-5 V after learning
        self.netlist = compile_netlist(
            e.network, e.task, e.board,
            NetlistState(state.positions, state.v_free, state.v_clamped, clamp, T),
            title=f"spicelearn ngspice engine segment of {e.segment} ticks ({self.twins})",
            tran=f".tran {eps!r} {tstop!r} 0 {T!r} uic",
            extra=(".save " + " ".join(f"v({x})" for names in self.saved.values() for x in names),),
            twins=self.twins)
        s.load(self.netlist.text)
        self._names, self._length = None, 1
        s.command("delete all", allow=("no",))
        # a stop registered before the run is a breakpoint too; the clamp pulse plants its ramp's end
        s.command(f"stop when time >= {T * (1 - EARLY)!r}")
        self._go("run")
        return self._read(T)

    def advance(self, t_tick: float, T: float, t_next: float, changed: np.ndarray, r: list, old_clamp, clamp) -> dict:
        """From the tick at ``t_tick`` (s) to the next one, ``T`` later at ``t_next``: alter the moved resistors (``r``:
        resistances of the free and the clamped twin, two lists of E) and the clamp ramps, and resume."""
        s, nl = self.session, self.netlist
        texts = [f"alter {names[j]} = {rt[j]!r}" for j in changed.tolist()
                 for names, rt in ((nl.free_resistors, r[0]), (nl.clamped_resistors, r[1])) if names]
        t0, t1, t2 = self.time, t_tick + RAMP * T, t_next
        texts += [f"alter @{name}[pulse] = [ {clamp_pulse(old, new, t0, t1 - t0, T)} ]"
                  for name, old, new in zip(nl.clamp_sources, old_clamp, clamp)]
        if texts:
            s.commands(texts)
        if nl.clamp_sources:
            s.breakpoint(t1)
        s.breakpoint(t2)
        s.command(f"stop when time >= {t2 * (1 - EARLY)!r}")
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
        n = s.vector_length(self._names[-1])
        self.points += n - self._length
        self._length = n
        out, i = {}, 0
        for t, names in self.saved.items():
            out[t], i = vals[i:i + len(names)], i + len(names)
        return out


