"""The clocked learning loop of DESIGN.md section 2: twin networks, supervisor, clock.

:func:`run_loop` is the one driver. Training and replay are the same loop: in
training the comparators decide each tick from the voltages and the supervisor
nudges the clamps from what it reads; in a replay a record dictates both the
positions after every tick and the clamps of every step.
:func:`train` is training from the user's network, task and hardware; :func:`replay`
drives several engines through one record.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .blas import limit_for
from .checks import check_record_memory, check_seed, check_steps
from .engines import get_engine
from .engines.base import Engine
from .errors import ConfigError, SpicelearnError
from .model.board import Board
from .model.hardware import Hardware
from .model.network import CompiledNetwork
from .model.rules import comparator_rule
from .model.task import BoundTask, bind
from .progress import Progress
from .runfile import make_dataset

__all__ = ["train", "run_loop", "replay", "replay_run", "ReplayResult", "initial_positions", "make_board", "Decide",
           "streams", "jittered_durations", "STREAMS"]


def initial_positions(network: CompiledNetwork, hardware: Hardware, positions=None) -> np.ndarray:
    """Start positions: given, else the graph's ``position`` attributes, else the pots' start."""
    if positions is None:
        positions = network.position if network.position is not None else \
            np.full(network.n_edges, hardware.pot.start)
    return hardware.pot.check_positions(positions, network.n_edges)


#: The random streams of a run, each its own generator so that switching one imperfection on leaves the others'
#: draws as they were: comparator noise, missed clock pulses, clock jitter, the board's part values.
STREAMS = ("noise", "miss", "jitter", "parts")


def streams(seed: int | None, board_seed: int | None = None) -> dict:
    """The run's generators, by name (:data:`STREAMS`), from ``seed`` and ``board_seed``.

    Without ``board_seed`` the noise stream is ``default_rng(seed)`` (as before boards had
    imperfections) and the others come from ``(seed, k)``; with it, every stream comes from
    ``(seed, board_seed, k)``: board ``b`` of a Monte Carlo has its own parts and its own noise.
    """
    if seed is None:
        if board_seed is not None:
            raise ConfigError(f"`board_seed`={board_seed!r} needs a `seed`: board b is drawn from (seed, b)")
        return {name: np.random.default_rng() for name in STREAMS}
    key = [seed] if board_seed is None else [seed, board_seed]
    out = {name: np.random.default_rng(key + [k]) for k, name in enumerate(STREAMS)}
    if board_seed is None:
        out["noise"] = np.random.default_rng(seed)
    return out


def make_board(network: CompiledNetwork, hardware: Hardware | None = None, board: Board | None = None,
               rng=None) -> Board:
    """The board a run simulates: ``board`` (checked against the network), else a board of ``hardware``:
    drawn from its tolerances with ``rng`` (:meth:`Board.draw`), or nominal when it has none."""
    if board is not None:
        if hardware is not None and hardware is not board.hardware:
            raise ConfigError("give `hardware` or `board` (which carries its hardware), not both")
        return board.check(network)
    hardware = hardware if hardware is not None else Hardware()
    if hardware.has_spread:
        return Board.draw(network, hardware, rng if rng is not None else np.random.default_rng(0))
    return Board.nominal(network, hardware)


def jittered_durations(board: Board, steps: int, rng) -> np.ndarray | None:
    """The relaxation time before every tick, shape (steps,): the period with the clock's jitter
    (``max(0, T (1 + jitter z))``), or None for a clock without jitter."""
    jitter = board.hardware.jitter
    if jitter == 0:
        return None
    return np.maximum(board.period * (1.0 + jitter * rng.standard_normal(steps)), 0.0)


class Decide:
    """What sets the positions after each tick, ``decide(k, positions, v_free, v_clamped) -> positions``.

    :meth:`rule` is training (comparators and XOR on every edge, pots step);
    :meth:`record` is a replay (the positions a run recorded).
    """

    @staticmethod
    def rule(board: Board, rule_fn, rng, miss_rng=None):
        """The comparator rule ``rule_fn(dv_free, dv_clamped, offset, noise, rng) -> up`` on ``board``'s parts;
        each edge misses its clock pulse with the pots' ``miss_probability`` (drawn from ``miss_rng``)."""
        pot, offset, noise = board.hardware.pot, board.offset, board.hardware.comparator.noise
        miss = pot.miss_probability
        if miss and miss_rng is None:
            raise ConfigError("pots that miss clock pulses need `miss_rng`")

        def decide(k, p, vf, vc, edge_nodes):
            eu, ev = edge_nodes
            new = pot.step(p, rule_fn(vf[eu] - vf[ev], vc[eu] - vc[ev], offset, noise, rng))
            if miss:
                new = np.where(miss_rng.random(new.shape) < miss, p, new)
            return new

        return decide

    @staticmethod
    def record(positions: np.ndarray):
        """Positions dictated by a record, shape (steps, E)."""
        def decide(k, p, vf, vc, edge_nodes):
            return positions[k]

        return decide


def run_loop(engine: Engine, steps: int, start: np.ndarray, decide, *, clamps=None, durations=None,
             progress=None) -> dict:
    """Steps 1-5 of DESIGN.md section 2, ``steps`` times.

    Parameters
    ----------
    engine : Engine
    steps : int
    start : ndarray of int, shape (E,)
        Positions before the first step.
    decide : callable
        ``decide(k, positions, v_free, v_clamped, edge_nodes) -> positions`` after tick ``k``
        (:class:`Decide`).
    clamps : ndarray, shape (steps, M_T), optional
        The clamps of every step; default what the board's supervisor sets from what it reads.
    durations : ndarray, shape (steps,), optional
        The relaxation time before every tick (seconds); default the board's clock period.
    progress : Progress, optional

    Returns
    -------
    dict
        The record: ``position`` (steps, E) int16, ``position_start`` (E,), ``v_free``,
        ``v_clamped`` (steps, N), ``mse``, ``mse_eq`` (steps,), ``mse0``; ``duration``
        (steps,) where ``durations`` were given.
    """
    net, task, board = engine.network, engine.task, engine.board
    tgt, V_T, eta = task.target_index, task.target_voltage, board.hardware.eta
    edge_nodes = tuple(net.edge_nodes.T)
    check_record_memory(steps, net.n_nodes, net.n_edges, f"a run on {net.name!r}")
    position = np.empty((steps, net.n_edges), dtype=np.int16)
    v_free = np.empty((steps, net.n_nodes))
    v_clamped = np.empty((steps, net.n_nodes))
    mse_eq = np.empty(steps)
    p = np.asarray(start)
    state = engine.init(p)
    d0 = V_T - state.v_free[tgt]
    if durations is not None:
        durations = np.asarray(durations, dtype=float)
        if durations.shape != (steps,):
            raise ConfigError(f"`durations` must have shape ({steps},), got {durations.shape}")
    period = board.period
    supervisor = board.hardware.supervisor
    bar = progress if progress is not None else Progress(steps, enabled=False)
    for k in range(steps):
        clamp = supervisor.clamp(task, state.v_free, eta) if clamps is None else clamps[k]
        state = engine.relax(state, clamp, period if durations is None else durations[k])  # 1-2: clamps, relaxation
        vf, vc = state.v_free, state.v_clamped
        v_free[k], v_clamped[k] = vf, vc  # 3: record
        p = decide(k, p, vf, vc, edge_nodes)  # 4: clock tick
        position[k] = p
        state = engine.set_positions(state, p)
        d = V_T - engine.equilibrium_free(state)[tgt]  # 5: equilibrium error
        mse_eq[k] = d @ d
        bar.update(k + 1)
    mse = np.sum((V_T - v_free[:, tgt]) ** 2, axis=1)
    if not (np.all(np.isfinite(mse)) and np.all(np.isfinite(mse_eq)) and np.all(np.isfinite(v_clamped))):
        raise SpicelearnError(f"the run on {net.name!r} gave non-finite voltages or errors (first at step "
                              f"{int(np.argmin(np.isfinite(mse) & np.isfinite(mse_eq)))}); check the task's voltages "
                              "and the board's part values")
    record = dict(position=position, position_start=np.asarray(start), mse=mse, mse_eq=mse_eq, v_free=v_free,
                  v_clamped=v_clamped, mse0=float(d0 @ d0))
    if durations is not None:
        record["duration"] = durations
    return record


def train(network, task, hardware: Hardware | None = None, *, steps: int = 3000, backend="exact",
          seed: int | None = 0, positions=None, progress: bool = False, network_seed: int = 0,
          rule=None, board: Board | None = None, board_seed: int | None = None):
    """Train the twin networks with the comparator-XOR rule of the hardware.

    Parameters
    ----------
    network : str, path, networkx.Graph or CompiledNetwork
    task : Task, dict, str (JSON path, ``random:MS,MT,SEED``, ``default``)
    hardware : Hardware, optional
        The design; its nominal board is simulated. Defaults to the lab settings
        (per_edge, c = 2.2 uF or the graph's capacitances, eta = 0.5, R = 1).
    steps : int
        Clock ticks.
    backend : {"exact", "ngspice"} or callable
        Engine of the transient between ticks: a name, or an engine class or factory
        ``(network, task, board) -> engine`` (for instance
        ``functools.partial(NgspiceEngine, parallel=False)``).
    seed : int or None
        Seed of the run's random streams (:func:`streams`): comparator noise, missed
        pulses, clock jitter, and the parts of a board drawn from the design's tolerances.
    positions : array of int, shape (E,), optional
        Start positions (default: graph attributes, else the pots' start).
    progress : bool
        Show a progress bar on stderr for runs longer than a second.
    rule : str or callable, optional
        Override the design's rule: a rule name, or a function
        ``rule(dv_free, dv_clamped, offset, noise, rng) -> up`` (bool array, shape (E,)).
    board : Board, optional
        The part values to simulate (it carries its hardware; give ``hardware`` or
        ``board``). Default: the nominal board of ``hardware``, or, where the design
        has tolerances, a board drawn from them (:meth:`Board.draw`).
    board_seed : int, optional
        Which board of the design: board ``b`` draws its parts and its noise from
        ``(seed, b)`` (a Monte Carlo over boards, :mod:`spicelearn.experiments.validate`).

    Returns
    -------
    xarray.Dataset
        The run file of DESIGN.md section 4 (:func:`spicelearn.runfile.make_dataset`).
    """
    steps = check_steps(steps)
    seed = check_seed("seed", seed, allow_none=True)
    board_seed = check_seed("board_seed", board_seed, allow_none=True)
    rngs = streams(seed, board_seed)
    bound = bind(network, task, network_seed=network_seed)
    net = bound.network
    b = make_board(net, hardware, board, rngs["parts"])
    if isinstance(rule, str):
        b = b.replace(hardware=replace(b.hardware, rule=rule))
    rule_fn = comparator_rule(b.hardware.rule) if rule is None or isinstance(rule, str) else rule
    if not callable(rule_fn):
        raise ConfigError(f"`rule` must be a rule name or a callable, got {rule!r}")
    p = initial_positions(net, b.hardware, positions)
    engine = get_engine(backend)(net, bound, b)
    name = backend if isinstance(backend, str) else getattr(engine, "name", type(engine).__name__)
    bar = Progress(steps, label=f"train {net.name} ({name})", enabled=progress)
    try:
        with limit_for(net):
            record = run_loop(engine, steps, p, Decide.rule(b, rule_fn, rngs["noise"], rngs["miss"]),
                              durations=jittered_durations(b, steps, rngs["jitter"]), progress=bar)
    finally:
        bar.close()
        engine.close()
    attrs = {"backend": name, "seed": -1 if seed is None else int(seed)}
    if board_seed is not None:
        attrs["board_seed"] = int(board_seed)
    if rule_fn is rule:
        attrs["rule"] = getattr(rule_fn, "__name__", "custom")
    time = np.cumsum(record["duration"]) if "duration" in record else (np.arange(steps) + 1) * b.period
    return make_dataset(bound, b, record=record, time=time, time_units="s", attrs=attrs)


@dataclass(frozen=True)
class ReplayResult:
    """Voltages of several engines along one record, and the record's own.

    Attributes
    ----------
    engines : tuple of str
    v_free, v_clamped : ndarray, shape (n_engines, steps, N)
        Node voltages after each relaxation, one row per engine.
    recorded_free, recorded_clamped : ndarray, shape (steps, N), or None
        The voltages the run recorded, where the replay is of a run file.
    """

    engines: tuple
    v_free: np.ndarray
    v_clamped: np.ndarray
    recorded_free: np.ndarray | None = None
    recorded_clamped: np.ndarray | None = None

    @staticmethod
    def _diff(a_free, a_clamped, b_free, b_clamped) -> np.ndarray:
        return np.maximum(np.abs(a_free - b_free), np.abs(a_clamped - b_clamped)).max(axis=1)

    @property
    def error(self) -> np.ndarray:
        """Largest absolute voltage difference between the first two engines at each step, shape (steps,)."""
        return self._diff(self.v_free[0], self.v_clamped[0], self.v_free[1], self.v_clamped[1])

    @property
    def max_error(self) -> float:
        """Largest absolute voltage difference between the first two engines (volt)."""
        return float(self.error.max())

    def error_vs_record(self, i: int) -> np.ndarray:
        """Largest absolute difference of engine ``i`` from the recorded voltages at each step, shape (steps,)."""
        if self.recorded_free is None:
            raise ConfigError("this replay has no recorded voltages")
        return self._diff(self.v_free[i], self.v_clamped[i], self.recorded_free, self.recorded_clamped)


def replay(task: BoundTask, board: Board, positions, clamps, *, engines=("exact", "ngspice"), start=None,
           recorded=None, durations=None) -> ReplayResult:
    """Drive engines through the same positions and clamp values: the loop with a record deciding.

    Step k: each engine steps its clamps to ``clamps[k]`` and relaxes one clock
    period, then its pots move to ``positions[k]``.

    Parameters
    ----------
    task : BoundTask
    board : Board
    positions : array of int, shape (steps, E)
        Pot positions after each tick.
    clamps : array, shape (steps, M_T)
        Clamp voltages of each step.
    engines : sequence of str or engine classes
    start : array of int, shape (E,), optional
        Positions before the first step (default: the pots' start position).
    recorded : (v_free, v_clamped), each (steps, N), optional
        Voltages a run recorded, to compare with.
    durations : array, shape (steps,), optional
        Relaxation time of each step (a run with clock jitter); default the board's period.
    """
    net = task.network
    board = board.check(net)
    positions = np.asarray(positions)
    if positions.ndim != 2 or positions.shape[1] != net.n_edges or positions.shape[0] < 1:
        raise ConfigError(f"`positions` must have shape (steps, {net.n_edges}), got {positions.shape}")
    steps, m = positions.shape[0], task.target_index.size
    clamps = np.asarray(clamps, dtype=float)
    if clamps.shape != (steps, m):
        raise ConfigError(f"`clamps` must have shape ({steps}, {m}), got {clamps.shape}")
    if len(engines) < 1:
        raise ConfigError(f"`engines` must name at least one engine, got {engines!r}")
    start = initial_positions(net, board.hardware, start)
    records = []
    with limit_for(net):
        for name in engines:
            with get_engine(name)(net, task, board) as engine:
                records.append(run_loop(engine, steps, start, Decide.record(positions), clamps=clamps,
                                        durations=durations))
    names = tuple(e if isinstance(e, str) else getattr(e, "name", type(e).__name__) for e in engines)
    rec = (None, None) if recorded is None else tuple(np.asarray(r, dtype=float) for r in recorded)
    return ReplayResult(names, np.array([r["v_free"] for r in records]),
                        np.array([r["v_clamped"] for r in records]), *rec)


def replay_run(ds, *, engines=("exact", "ngspice"), steps: int | None = None, network=None) -> ReplayResult:
    """Replay a hardware run file (``xarray.Dataset``): its positions, and the clamps its supervisor set.

    Network, task, board and start positions come from the run file
    (:func:`spicelearn.runfile.run_inputs`); ``network`` may name the run's
    network instead (it is checked against the recorded one).
    """
    from .runfile import run_inputs

    task, board, start = run_inputs(ds, network=network)
    n = ds.sizes["step"] if steps is None else int(steps)
    if not 1 <= n <= ds.sizes["step"]:
        raise ConfigError(f"`steps` must be in 1..{ds.sizes['step']} (the run's steps), got {steps!r}")
    vc = np.asarray(ds["v_clamped"][:n])
    clamps = vc[:, task.target_index]  # the clamped targets sit at the clamps the supervisor set
    return replay(task, board, np.asarray(ds["position"][:n]), clamps, engines=engines, start=start,
                  recorded=(np.asarray(ds["v_free"][:n]), vc),
                  durations=np.asarray(ds["duration"][:n]) if "duration" in ds else None)
