"""The clocked learning loop of DESIGN.md section 2: twin networks, supervisor, clock.

:func:`run_loop` is the one driver. Training and replay are the same loop: in
training the comparators decide each tick from the voltages and the supervisor
nudges the clamps from what it reads; in a replay a record dictates both the
positions after every tick and the clamps of every step.
:func:`train` is training from the user's network, task and hardware; :func:`replay`
drives several engines through one record.
"""

from __future__ import annotations

import gc
import math
import os
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from .blas import limit_for
from .checks import check_record_memory, check_seed, check_steps
from .engines import get_engine
from .engines.base import Engine, check_task_and_board
from .errors import ConfigError, SpicelearnError
from .model.board import Board
from .model.hardware import Hardware, step_positions
from .model.network import CompiledNetwork
from .model.rules import comparator_inputs, comparator_rule, fires
from .model.task import BoundTask, bind
from .progress import Progress
from .runfile import make_dataset

__all__ = ["train", "train_batch", "run_loop", "run_batch", "supervisors", "replay", "replay_run", "ReplayResult",
           "initial_positions", "make_board", "Decide", "streams", "jittered_durations", "STREAMS"]


def initial_positions(network: CompiledNetwork, hardware: Hardware, positions=None) -> np.ndarray:
    """Start positions: given, else the graph's ``position`` attributes, else the pots' start."""
    if positions is None:
        positions = network.position if network.position is not None else \
            np.full(network.n_edges, hardware.pot.start)
    return hardware.pot.check_positions(positions, network.n_edges)


#: The random streams of a run, each its own generator so that switching one imperfection on leaves the others'
#: draws as they were: comparator noise, missed clock pulses, clock jitter, the board's part values.
STREAMS = ("noise", "miss", "jitter", "parts")


def streams(seed: int | None, board_seed: int | None = None, names=STREAMS) -> dict:
    """The run's generators, by name, from ``seed`` and ``board_seed``: those of ``names`` (default all of
    :data:`STREAMS`; each is the same whichever others are made).

    Without ``board_seed`` the noise stream is ``default_rng(seed)`` (as before boards had
    imperfections) and the others come from ``(seed, k)``; with it, every stream comes from
    ``(seed, board_seed, k)``: board ``b`` of a Monte Carlo has its own parts and its own noise.
    """
    unknown = sorted(set(names) - set(STREAMS))
    if unknown:
        raise ConfigError(f"`names` must be among {STREAMS}, got {unknown}")
    if seed is None:
        if board_seed is not None:
            raise ConfigError(f"`board_seed`={board_seed!r} needs a `seed`: board b is drawn from (seed, b)")
        return {name: np.random.default_rng() for name in names}
    key = [seed] if board_seed is None else [seed, board_seed]
    return {name: np.random.default_rng(seed if name == "noise" and board_seed is None else key + [k])
            for k, name in enumerate(STREAMS) if name in names}


def make_board(network: CompiledNetwork, hardware: Hardware | None = None, board: Board | None = None,
               rng=None) -> Board:
    """The board a run simulates: ``board`` (checked against the network), else a board of ``hardware``:
    drawn from its tolerances with ``rng`` (:meth:`Board.draw`), or nominal when it has none."""
    if board is not None:
        if not isinstance(board, Board):
            raise ConfigError(f"`board` must be a spicelearn Board (Board.nominal or Board.draw), got "
                              f"{type(board).__name__}")
        if hardware is not None and hardware is not board.hardware:
            raise ConfigError("give `hardware` or `board` (which carries its hardware), not both")
        return board.check(network)
    hardware = hardware if hardware is not None else Hardware()
    if not isinstance(hardware, Hardware):
        raise ConfigError(f"`hardware` must be a spicelearn Hardware (for instance Hardware.from_R(1.0)), got "
                          f"{type(hardware).__name__} {hardware!r:.40}")
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


def _rule_output(up, n_edges: int) -> np.ndarray:
    """What a custom rule returned, checked: a boolean array of shape (E,) (True: that edge's pots step up)."""
    a = np.asarray(up)
    if a.shape != (n_edges,) or a.dtype.kind != "b":
        raise ConfigError(f"`rule` must return a boolean array of shape ({n_edges},) (True: the edge steps up), got "
                          f"{type(up).__name__} of dtype {a.dtype} and shape {a.shape}")
    return a


class Decide:
    """What sets the positions after each tick, ``decide(k, positions, v_free, v_clamped, edge_nodes) ->
    positions``, every array with a leading batch axis: positions (B, E), voltages (B, N).

    :meth:`rule` and :meth:`rules` are training (comparators and XOR on every edge, pots step);
    :meth:`record` is a replay (the positions a run recorded).
    """

    #: Ticks of comparator noise and missed-pulse draws made at once (the same numbers, in the same order, as
    #: one draw per tick).
    BLOCK = 64

    @staticmethod
    def rule(board: Board, rule_fn, rng, miss_rng=None):
        """The comparator rule ``rule_fn(dv_free, dv_clamped, offset, noise, rng) -> up`` on ``board``'s parts
        (a batch of one); each edge misses its clock pulse with the pots' ``miss_probability`` (drawn from
        ``miss_rng``)."""
        return Decide.rules([board], [rule_fn], [rng], [miss_rng])

    @staticmethod
    def rules(boards, rule_fns, rngs, miss_rngs):
        """:meth:`rule` for B boards, each with its rule, noise stream and missed-pulse stream (sequences of
        length B). The built-in rules run on the whole batch at once (:func:`~spicelearn.model.rules.
        comparator_inputs`); a custom rule function is called board by board."""
        B, E = len(boards), boards[0].n_edges
        offset = np.stack([b.offset for b in boards])  # (B, 2, E)
        offset = offset if offset.any() else None  # x + 0.0 is x: ideal comparators add nothing
        sigma = np.array([b.hardware.comparator.noise for b in boards])
        miss = np.array([b.hardware.pot.miss_probability for b in boards])
        top = np.array([[b.hardware.pot.n_positions - 1] for b in boards])
        top = int(top[0, 0]) if np.all(top == top[0, 0]) else top
        for b in np.flatnonzero(miss):
            if miss_rngs[b] is None:
                raise ConfigError("pots that miss clock pulses need `miss_rng`")
        groups, custom = {}, []
        for b, fn in enumerate(rule_fns):
            inputs = comparator_inputs(fn)
            if inputs is None:
                custom.append(b)
            else:
                groups.setdefault(inputs, []).append(b)
        groups = [(fn, slice(None) if len(idx) == B else np.array(idx)) for fn, idx in groups.items()]
        noisy = [b for b in range(B) if sigma[b] > 0 and b not in custom]
        missing = np.flatnonzero(miss)
        n = Decide.BLOCK
        noise = np.zeros((B, n, 2, E)) if noisy else None
        draws = np.ones((B, n, E)) if missing.size else None

        def decide(k, p, vf, vc, edge_nodes):
            j = k % n
            if j == 0:  # the next block of every stream's draws (normal(0, s) is s times the standard draws)
                for b in noisy:
                    rngs[b].standard_normal(out=noise[b])
                if noisy:
                    np.multiply(noise, sigma[:, None, None, None], out=noise)  # (boards without noise: zeros)
                for b in missing:
                    draws[b] = miss_rngs[b].random((n, E))
            eu, ev = edge_nodes  # the edges' drops (B, E), gathered as rows of the voltages' transposes (the batched
            # engine's voltages are board-fastest: 5 against 22 us for lab16's 1,000 boards)
            dvf = (vf.T.take(eu, axis=0) - vf.T.take(ev, axis=0)).T
            dvc = (vc.T.take(eu, axis=0) - vc.T.take(ev, axis=0)).T
            up = np.empty(p.shape, dtype=bool)
            for inputs, idx in groups:
                x1, x2 = inputs(dvf[idx], dvc[idx])
                if offset is not None:
                    x1, x2 = x1 + offset[idx, 0], x2 + offset[idx, 1]
                if noise is not None:
                    x1, x2 = x1 + noise[idx, j, 0], x2 + noise[idx, j, 1]
                up[idx] = fires(x1) ^ fires(x2)
            for b in custom:
                up[b] = _rule_output(rule_fns[b](dvf[b], dvc[b], boards[b].offset, sigma[b], rngs[b]), E)
            new = step_positions(p, up, top)
            if draws is not None:
                new = np.where(draws[:, j] < miss[:, None], p, new)
            return new

        return decide

    @staticmethod
    def streams_drawn(hardware: Hardware, rule_fn) -> tuple:
        """The streams (:data:`STREAMS`) that :meth:`rule` draws from for a board of ``hardware`` with ``rule_fn``:
        the noise stream for noisy comparators and for a custom rule (which is handed the stream), the missed-pulse
        stream for pots that miss pulses."""
        return tuple(name for name, used in (
            ("noise", hardware.comparator.noise > 0 or comparator_inputs(rule_fn) is None),
            ("miss", hardware.pot.miss_probability > 0)) if used)

    @staticmethod
    def record(positions: np.ndarray):
        """Positions dictated by a record, shape (steps, E) (a batch of one) or (steps, B, E)."""
        positions = np.asarray(positions)
        if positions.ndim == 2:
            positions = positions[:, None, :]

        def decide(k, p, vf, vc, edge_nodes):
            return positions[k]

        return decide


class _One:
    """A single engine (:class:`~spicelearn.engines.base.Engine`) as a batch of one: the loop's protocol."""

    def __init__(self, engine: Engine):
        self.engine, self.network = engine, engine.network
        self.tasks, self.boards = (engine.task,), (engine.board,)

    def init(self, positions, default_clamp=None):
        return self.engine.init(positions[0])  # the engine's default clamp: the same supervisor

    def relax(self, state, clamp, duration):
        return self.engine.relax(state, clamp[0], duration[0])

    def set_positions(self, state, positions):
        return self.engine.set_positions(state, positions[0])

    def equilibrium_free(self, state):
        return self.engine.equilibrium_free(state)[None]

    @staticmethod
    def voltages(state) -> tuple:
        return state.v_free[None], state.v_clamped[None]


def _rowdot(a: np.ndarray) -> np.ndarray:
    """``a[b] @ a[b]`` for every row of ``a`` (B, M): the dot product of each, shape (B,)."""
    return np.matmul(a[:, None, :], a[:, :, None])[:, 0, 0]


def supervisors(tasks, boards):
    """``clamp(v_free (B, N)) -> (B, M_T)``: what each board's supervisor sets from its free twin's voltages
    (:meth:`~spicelearn.model.hardware.Supervisor.nudge` with the board's eta and task)."""
    tgt = tasks[0].target_index
    V_T = np.stack([t.target_voltage for t in tasks])
    eta = np.array([[b.hardware.eta] for b in boards])
    groups = {}
    for b, board in enumerate(boards):
        groups.setdefault(board.hardware.supervisor, []).append(b)
    if len(groups) == 1:
        (sup,) = groups
        if len(boards) == 1:
            eta = boards[0].hardware.eta
        return lambda v_free: sup.nudge(v_free[:, tgt], V_T, eta)
    groups = [(sup, np.array(idx)) for sup, idx in groups.items()]

    def clamp(v_free):
        out = np.empty(V_T.shape)
        for sup, idx in groups:
            out[idx] = sup.nudge(v_free[idx][:, tgt], V_T[idx], eta[idx])
        return out

    return clamp


def run_loop(engine: Engine, steps: int, start: np.ndarray, decide, *, clamps=None, durations=None,
             progress=None) -> dict:
    """Steps 1-5 of DESIGN.md section 2, ``steps`` times, on one engine: :func:`run_batch` with a batch of one.

    Parameters
    ----------
    engine : Engine
    steps : int
    start : ndarray of int, shape (E,)
        Positions before the first step.
    decide : callable
        ``decide(k, positions, v_free, v_clamped, edge_nodes) -> positions`` after tick ``k``
        (:class:`Decide`; arrays with a batch axis of one).
    clamps : ndarray, shape (steps, M_T), optional
        The clamps of every step; default what the board's supervisor sets from what it reads.
    durations : ndarray, shape (steps,), optional
        The relaxation time before every tick (seconds); default the board's clock period.
    progress : Progress, optional

    Returns
    -------
    dict
        The record: ``position`` (steps, E) int32, ``position_start`` (E,), ``v_free``,
        ``v_clamped`` (steps, N), ``mse``, ``mse_eq`` (steps,), ``mse0``; ``duration``
        (steps,) where ``durations`` were given.
    """
    m = engine.task.target_index.size
    if clamps is not None:
        clamps = np.asarray(clamps, dtype=float)
        if clamps.shape != (steps, m):
            raise ConfigError(f"`clamps` must have shape ({steps}, {m}), got {clamps.shape}")
        clamps = clamps[:, None, :]
    if durations is not None:
        durations = np.asarray(durations, dtype=float)
        if durations.shape != (steps,):
            raise ConfigError(f"`durations` must have shape ({steps},), got {durations.shape}")
        durations = durations[:, None]
    (record,) = run_batch(_One(engine), steps, np.asarray(start)[None], decide, clamps=clamps, durations=durations,
                          progress=progress)
    return record


def run_batch(engine, steps: int, start: np.ndarray, decide, *, clamps=None, durations=None,
              progress=None) -> list:
    """Steps 1-5 of DESIGN.md section 2, ``steps`` times, on B boards in lockstep.

    Parameters
    ----------
    engine
        A batched engine (:class:`~spicelearn.engines.batched.BatchedExactEngine`), or one engine
        as a batch of one (:func:`run_loop`).
    steps : int
    start : ndarray of int, shape (B, E)
    decide : callable
        ``decide(k, positions (B, E), v_free (B, N), v_clamped (B, N), edge_nodes) -> positions``.
    clamps : ndarray, shape (steps, B, M_T), optional
    durations : ndarray, shape (steps, B), optional
        Default every board's clock period.
    progress : Progress, optional

    Returns
    -------
    list of dict
        Each board's record (:func:`run_loop`): its arrays are views of the batch's, whose leading axis is the
        board (one array per quantity, no copies; a run file kept alone keeps its batch's arrays).
    """
    net, tasks, boards = engine.network, engine.tasks, engine.boards
    B = len(boards)
    tgt = tasks[0].target_index
    V_T = np.stack([t.target_voltage for t in tasks])
    edge_nodes = tuple(net.edge_nodes.T)
    check_record_memory(steps, B * batch_record_bytes(1, net.n_nodes, net.n_edges, tgt.size),
                        f"{B} run(s) on {net.name!r}")
    position = np.empty((B, steps, net.n_edges), dtype=np.int32)  # board first: a board's record is a view
    v_free = np.empty((B, steps, net.n_nodes))
    v_clamped = np.empty((B, steps, net.n_nodes))
    eq_target = np.empty((B, steps, tgt.size))  # the free equilibria's target voltages, for mse_eq
    p = np.asarray(start)
    supervise = supervisors(tasks, boards)
    # parts far out of range overflow in the arithmetic: their non-finite voltages are found after the loop (one
    # error naming the run), not warned about on the way
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        state = engine.init(p, default_clamp=supervise)
        vf = engine.voltages(state)[0]
        d0 = V_T - vf[:, tgt]
        period = np.array([b.period for b in boards])
        bar = progress if progress is not None else Progress(steps, enabled=False)
        for k in range(steps):  # vf: the free twins' voltages of the state (a tick does not change them)
            clamp = supervise(vf) if clamps is None else clamps[k]
            state = engine.relax(state, clamp, period if durations is None else durations[k])  # 1-2: clamps, relax
            vf, vc = engine.voltages(state)
            v_free[:, k], v_clamped[:, k] = vf, vc  # 3: record
            p = decide(k, p, vf, vc, edge_nodes)  # 4: clock tick
            position[:, k] = p
            state = engine.set_positions(state, p)
            eq_target[:, k] = engine.equilibrium_free(state)[:, tgt]  # 5: equilibrium error (below)
            bar.update(k + 1)
    mse = np.sum((V_T[:, None] - v_free[:, :, tgt]) ** 2, axis=-1)  # (B, steps)
    mse_eq = np.sum((V_T[:, None] - eq_target) ** 2, axis=-1)
    ok = np.isfinite(mse) & np.isfinite(mse_eq)
    bad = ~(ok.all(axis=1) & np.isfinite(v_clamped).all(axis=(1, 2)))
    if np.any(bad):
        b = int(np.argmax(bad))
        which = f" (board {b} of the batch)" if B > 1 else ""
        raise SpicelearnError(f"the run on {net.name!r}{which} gave non-finite voltages or errors (first at step "
                              f"{int(np.argmin(ok[b]))}); check the task's voltages and the board's part values")
    mse0 = _rowdot(d0)
    records = []
    for b in range(B):
        record = dict(position=position[b], position_start=np.asarray(start[b]), mse=mse[b], mse_eq=mse_eq[b],
                      v_free=v_free[b], v_clamped=v_clamped[b], mse0=float(mse0[b]))
        if durations is not None:
            record["duration"] = np.ascontiguousarray(durations[:, b])
        records.append(record)
    return records


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
    bound = bind(network, task, network_seed=network_seed)
    run = _prepare(bound, hardware, board, rule, seed, board_seed, positions, steps)
    net, b = bound.network, run.board
    engine = _make_engine(backend, net, bound, b)
    name = backend if isinstance(backend, str) else getattr(engine, "name", type(engine).__name__)
    bar = Progress(steps, label=f"train {net.name} ({name})", enabled=progress)
    try:
        with limit_for(net):
            record = _run_alone(engine, run, steps, bar)
    finally:
        bar.close()
        engine.close()
    return _dataset(run, record, name)


#: What an engine offers (:class:`~spicelearn.engines.base.Engine`'s protocol).
_PROTOCOL = ("init", "relax", "set_positions", "equilibrium_free", "close", "__enter__", "__exit__")


def _make_engine(backend, network, task, board):
    """The engine ``backend`` (a name, or an engine class or factory, :func:`~spicelearn.engines.get_engine`) on
    ``network``, ``task``, ``board``; a factory of the user's that cannot be called so, or makes something without
    the engine protocol, is one error naming `backend`."""
    make = get_engine(backend)
    if isinstance(backend, str):
        return make(network, task, board)
    try:
        engine = make(network, task, board)
    except TypeError as exc:
        raise ConfigError(f"`backend`={backend!r:.60} cannot be called as (network, task, board) -> engine: "
                          f"{exc}") from None
    missing = [m for m in _PROTOCOL if not callable(getattr(engine, m, None))]
    if missing:
        raise ConfigError(f"`backend` made a {type(engine).__name__}, without the engine protocol's {missing}; an "
                          "engine subclasses spicelearn.engines.base.Engine")
    return engine


def _run_alone(engine: Engine, run: "_Run", steps: int, progress) -> dict:
    """The record of one prepared run on its own engine (steps 1-5, the board's rule, streams and clock)."""
    return run_loop(engine, steps, run.start, Decide.rule(run.board, run.rule_fn, run.rngs.get("noise"),
                                                        run.rngs.get("miss")),
                    durations=run.durations, progress=progress)


@dataclass(frozen=True, eq=False)
class _Run:
    """One run made ready (what :func:`train` and :func:`train_batch` share): its board, rule, streams, start
    positions, relaxation times and the attributes its run file records."""

    task: BoundTask
    board: Board
    rule_fn: object
    rngs: dict
    start: np.ndarray
    durations: np.ndarray | None
    attrs: dict


def _prepare(bound: BoundTask, hardware, board, rule, seed, board_seed, positions, steps: int,
             nominal: dict | None = None) -> _Run:
    """One run made ready; ``nominal`` a dict in which runs of equal designs without tolerances share their nominal
    board (a batch's runs: an immutable board, made and checked once)."""
    seed = check_seed("seed", seed, allow_none=True)
    board_seed = check_seed("board_seed", board_seed, allow_none=True)
    net = bound.network
    drawn = board is None and isinstance(hardware, Hardware) and hardware.has_spread
    rngs = streams(seed, board_seed, ("parts",) if drawn else ())  # each stream only where the run draws from it
    # equal designs (frozen, hashable) share one board: a sweep's points each have their own Hardware object
    shareable = board is None and not drawn and (hardware is None or isinstance(hardware, Hardware))
    key = (hardware, rule if isinstance(rule, str) else None) if shareable else None
    b = None if nominal is None or key is None else nominal.get(key)
    if b is None:
        b = make_board(net, hardware, board, rngs.get("parts"))
        if isinstance(rule, str):
            b = b.replace(hardware=replace(b.hardware, rule=rule))
        if nominal is not None and key is not None:
            nominal[key] = b
    rule_fn = comparator_rule(b.hardware.rule) if rule is None or isinstance(rule, str) else rule
    if not callable(rule_fn):
        raise ConfigError(f"`rule` must be a rule name or a callable, got {rule!r}")
    jitter = ("jitter",) if b.hardware.jitter != 0 else ()  # (jittered_durations draws only then)
    rngs.update(streams(seed, board_seed, Decide.streams_drawn(b.hardware, rule_fn) + jitter))
    attrs = {"seed": -1 if seed is None else int(seed)}
    if board_seed is not None:
        attrs["board_seed"] = int(board_seed)
    if rule_fn is rule:
        attrs["rule"] = getattr(rule_fn, "__name__", "custom")
    return _Run(task=bound, board=b, rule_fn=rule_fn, rngs=rngs, start=initial_positions(net, b.hardware, positions),
                durations=jittered_durations(b, steps, rngs.get("jitter")), attrs=attrs)


def _dataset(run: _Run, record: dict, backend: str, like=None):
    """The run file of a finished run (:func:`spicelearn.runfile.make_dataset`; ``like`` a batch's previous one)."""
    b, steps = run.board, len(record["mse"])
    time = np.cumsum(record["duration"]) if "duration" in record else (np.arange(steps) + 1) * b.period
    return make_dataset(run.task, b, record=record, time=time, time_units="s",
                        attrs={"backend": backend, **run.attrs}, like=like)


#: Bytes one batch of :func:`train_batch` holds at most, its per-step records (:func:`batch_record_bytes`) and its
#: engine (:func:`~spicelearn.engines.batched.engine_bytes`); larger batches run in chunks (lab16 at 3000 steps: up to
#: 1,290 boards at once; a tick's fixed cost is spread over more boards the larger a chunk, and lab16's batched loop
#: ran 1.4x faster with chunks of 1,000 than of 223).
BATCH_MEMORY = 2**30


def batch_record_bytes(steps: int, n_nodes: int, n_edges: int, n_targets: int) -> int:
    """Bytes of per-step records that :func:`run_batch` holds per board at its peak, for ``steps`` steps: int32
    positions and both twins' voltages (which the run files then hold, as views), the free equilibria's target
    voltages, the two errors, the errors' temporaries."""
    return steps * (4 * n_edges + 16 * n_nodes + 8 * n_targets + 16 + 16 * n_targets)


#: The arguments of :func:`train` that each run of a batch may set (:func:`train_batch`).
BATCH_RUN_KEYS = ("task", "hardware", "seed", "positions", "rule", "board", "board_seed")


def train_batch(network, runs, *, steps: int = 3000, network_seed: int = 0, progress: bool = False,
                chunk: int | None = None) -> list:
    """Train B boards on one network in lockstep on the batched exact engine: the runs of :func:`train`.

    Where a batch would not pay (:func:`~spicelearn.engines.batched.worth_batching`: from
    :data:`~spicelearn.engines.exact.SPARSE_FROM` floating nodes, where single runs take the sparse path), the runs
    go one after another on the single exact engine instead, each exactly as :func:`train` runs it.

    Parameters
    ----------
    network : str, path, networkx.Graph or CompiledNetwork
    runs : sequence of mapping
        One per run: the arguments of :func:`train` it sets (:data:`BATCH_RUN_KEYS`: ``task``,
        ``hardware``, ``seed``, ``positions``, ``rule``, ``board``, ``board_seed``), the others at
        train's defaults. Every task must drive the same source and target nodes (the voltages may
        differ); boards, capacitance models, rates, eta, rules and seeds may all differ.
    steps : int
    network_seed : int
    progress : bool
    chunk : int, optional
        Boards simulated at once, at most (default: as many as fit :data:`BATCH_MEMORY`); the batch runs in
        as few chunks as that allows, of equal sizes.

    Returns
    -------
    list of xarray.Dataset
        The run file of every run, in order: the same as :func:`train` gives for it (positions equal,
        voltages to rounding).
    """
    from .engines.batched import BatchedExactEngine, engine_bytes, worth_batching
    from .model.network import load_network

    steps = check_steps(steps)
    if isinstance(runs, (str, bytes, Mapping)) or not hasattr(runs, "__iter__"):
        raise ConfigError(f"`runs` must be a sequence of mappings of train's arguments, one per run, got "
                          f"{type(runs).__name__}")
    runs = list(runs)
    if not runs:
        raise ConfigError("`runs` is empty; give at least one run (a mapping of train's arguments)")
    for i, r in enumerate(runs):
        extra = sorted(set(r) - set(BATCH_RUN_KEYS)) if isinstance(r, Mapping) else None
        if extra is None or extra:
            raise ConfigError(f"`runs[{i}]` must be a mapping of {BATCH_RUN_KEYS}, got "
                              f"{extra if extra else type(r).__name__}")
    net = network if isinstance(network, CompiledNetwork) else load_network(network, network_seed=network_seed)
    bound = {}  # each task once: runs that name one task (its spec, file or object) share its binding

    def bind_once(task):
        key = (type(task), task) if isinstance(task, (str, os.PathLike)) else id(task)
        if key not in bound:
            bound[key] = (task, bind(net, task))  # the task kept, so that its id stays its own
        return bound[key][1]

    inputs = [(bind_once(r.get("task", "default")), r.get("hardware"), r.get("board"), r.get("rule"),
               r.get("seed", 0), r.get("board_seed"), r.get("positions"), steps) for r in runs]
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ConfigError(f"`chunk` must be an integer >= 1 (boards at once), got {chunk!r}")
    nominal = {}  # runs of equal designs without tolerances share their nominal board (_prepare)
    with _collector_paused():
        prepared = [_prepare(*args, nominal=nominal) for args in inputs]
    if not worth_batching(prepared[0].task):
        return _train_alone(net, prepared, steps, progress)
    if chunk is None:
        task = prepared[0].task  # (a batch shares its nodes)
        per_board = (batch_record_bytes(steps, net.n_nodes, net.n_edges, task.target_index.size)
                     + engine_bytes(task.free_floating.size, net.n_edges, net.n_nodes))
        chunk = max(1, BATCH_MEMORY // per_board)
    n_chunks = math.ceil(len(prepared) / chunk)
    chunk = math.ceil(len(prepared) / n_chunks)  # as few chunks as allowed, of sizes as equal as they can be
    bar = Progress(steps * len(runs), label=f"train {len(runs)} boards on {net.name} (batched)", enabled=progress,
                   unit="board-steps")
    out = []
    try:
        with limit_for(net):
            for lo in range(0, len(prepared), chunk):
                part = prepared[lo:lo + chunk]
                n = len(part)
                if n == 1:  # numpy's stacked products take other loops for a stack of one (other roundings): a lone
                    # board runs beside its copy, so that its bits are a batch's
                    part.append(_prepare(*inputs[lo], nominal=nominal))
                engine = BatchedExactEngine(net, [r.task for r in part], [r.board for r in part])
                decide = Decide.rules([r.board for r in part], [r.rule_fn for r in part],
                                      [r.rngs.get("noise") for r in part], [r.rngs.get("miss") for r in part])
                jitter = any(r.durations is not None for r in part)
                durations = np.stack([r.durations if r.durations is not None else np.full(steps, r.board.period)
                                      for r in part], axis=1) if jitter else None
                records = run_batch(engine, steps, np.stack([r.start for r in part]), decide, durations=durations,
                                    progress=_Offset(bar, lo * steps, n))
                with _collector_paused():
                    for r, record in zip(part[:n], records[:n]):
                        if r.durations is None:
                            record.pop("duration", None)
                        out.append(_dataset(r, record, "exact", like=out[-1] if out else None))
    finally:
        bar.close()
    return out


@contextmanager
def _collector_paused():
    """Python's cyclic garbage collector held off while a batch makes thousands of small objects (its runs' boards and
    streams, its run files), each collection on the way walking every object the process holds (measured: 65 us a
    board of lab16's 1,000); it runs again as it was after. The switch is the process's: other threads' collections
    wait too, for the fraction of a second a chunk's files take."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _train_alone(net: CompiledNetwork, prepared: list, steps: int, progress: bool) -> list:
    """The run files of prepared runs on the single exact engine, one after another (:func:`train_batch` where a
    batch would not pay)."""
    bar = Progress(steps * len(prepared), label=f"train {len(prepared)} boards on {net.name} (one by one)",
                   enabled=progress, unit="board-steps")
    out = []
    try:
        with limit_for(net):
            for i, run in enumerate(prepared):
                engine = get_engine("exact")(net, run.task, run.board)
                try:
                    record = _run_alone(engine, run, steps, _Offset(bar, i * steps, 1))
                finally:
                    engine.close()
                out.append(_dataset(run, record, "exact", like=out[-1] if out else None))
    finally:
        bar.close()
    return out


class _Offset:
    """A progress bar's view for one chunk of a batch: step k of the chunk is board-step ``done + k B``."""

    def __init__(self, bar: Progress, done: int, boards: int):
        self.bar, self.done, self.boards = bar, done, boards

    def update(self, k: int) -> None:
        self.bar.update(self.done + k * self.boards)


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
        if len(self.engines) < 2:
            raise ConfigError(f"this replay ran one engine ({self.engines[0]}); the difference between engines needs "
                              "two (engines=('exact', 'ngspice')); error_vs_record(0) compares it with the record")
        return self._diff(self.v_free[0], self.v_clamped[0], self.v_free[1], self.v_clamped[1])

    @property
    def max_error(self) -> float:
        """Largest absolute voltage difference between the first two engines (volt)."""
        return float(self.error.max())

    def error_vs_record(self, i: int) -> np.ndarray:
        """Largest absolute difference of engine ``i`` from the recorded voltages at each step, shape (steps,)."""
        if self.recorded_free is None:
            raise ConfigError("this replay has no recorded voltages")
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < len(self.engines):
            raise ConfigError(f"`i` must be an engine's index in 0..{len(self.engines) - 1} {self.engines}, got {i!r}")
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
    check_task_and_board(task, board)
    if isinstance(engines, str) or not isinstance(engines, (list, tuple)) or not engines:
        raise ConfigError(f"`engines` must be a non-empty sequence of engine names or classes, e.g. ('exact', "
                          f"'ngspice'), got {engines!r:.60}")
    net = task.network
    board = board.check(net)
    positions = np.asarray(positions)
    if positions.ndim != 2 or positions.shape[1] != net.n_edges or positions.shape[0] < 1:
        raise ConfigError(f"`positions` must have shape (steps, {net.n_edges}), got {positions.shape}")
    steps, m = positions.shape[0], task.target_index.size
    clamps = np.asarray(clamps)
    if clamps.shape != (steps, m) or clamps.dtype.kind not in "iuf":
        raise ConfigError(f"`clamps` must be volts of shape ({steps}, {m}), got dtype {clamps.dtype} and shape "
                          f"{clamps.shape}")
    clamps = clamps.astype(float)
    if durations is not None:
        d = np.asarray(durations)
        if d.shape != (steps,) or d.dtype.kind not in "iuf":
            raise ConfigError(f"`durations` must be seconds of shape ({steps},), got dtype {d.dtype} and shape "
                              f"{d.shape}")
    if recorded is not None:
        ok = isinstance(recorded, (list, tuple)) and len(recorded) == 2
        shapes = [np.shape(r) for r in recorded] if ok else []
        if not ok or any(s != (steps, net.n_nodes) for s in shapes) \
                or any(np.asarray(r).dtype.kind not in "iuf" for r in recorded):
            raise ConfigError(f"`recorded` must be (v_free, v_clamped), each volts of shape ({steps}, {net.n_nodes}), "
                              f"got {type(recorded).__name__} of shapes {shapes}")
    start = initial_positions(net, board.hardware, start)
    records = []
    with limit_for(net):
        for name in engines:
            with _make_engine(name, net, task, board) as engine:
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
    from .runfile import check_dataset, run_inputs

    check_dataset(ds)
    task, board, start = run_inputs(ds, network=network)
    n = ds.sizes["step"] if steps is None else check_steps(steps)  # (not 2.7 as 2, "3" as 3, True as 1)
    if not 1 <= n <= ds.sizes["step"]:
        raise ConfigError(f"`steps` must be in 1..{ds.sizes['step']} (the run's steps), got {steps!r}")
    if "duration" in ds and ds["duration"].dims != ("step",):
        raise ConfigError(f"the run file's `duration` must be over ('step',), got {ds['duration'].dims}")
    vc = np.asarray(ds["v_clamped"][:n])
    clamps = vc[:, task.target_index]  # the clamped targets sit at the clamps the supervisor set
    return replay(task, board, np.asarray(ds["position"][:n]), clamps, engines=engines, start=start,
                  recorded=(np.asarray(ds["v_free"][:n]), vc),
                  durations=np.asarray(ds["duration"][:n]) if "duration" in ds else None)
