"""The engine protocol: what happens to the twin networks between clock ticks.

An engine is built from (network, bound task, board) with frozen configuration;
its state is explicit, passed in and returned (in the manner of diffrax's
``AbstractSolver``). Every engine derives from :class:`Engine`, which checks
the arguments of every call the same way and then calls the engine's own
``_init``, ``_relax``, ``_set_positions`` and ``_equilibrium_free``:

``init(positions, clamp=None) -> state``
    both twins at equilibrium (the initial state of the learning loop);
    ``clamp`` defaults to the supervisor's nudge of the free equilibrium;
``relax(state, clamp, duration) -> state``
    step the clamp sources to ``clamp`` (floating nodes jump, charge
    conserved), then let both twins relax ``duration`` >= 0 seconds at fixed
    resistances (a zero duration is the jump alone, :meth:`Engine.clamp_step`,
    the same in every engine);
``set_positions(state, positions) -> state``
    the clock tick: new resistances, voltages unchanged;
``equilibrium_free(state) -> ndarray (N,)``
    the free network's equilibrium at the state's resistances (for ``mse_eq``);
``close()``
    release what the engine holds (also on leaving a ``with`` block).

States are frozen dataclasses deriving from :class:`EngineState`.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, replace

import numpy as np

from ..checks import is_real
from ..errors import ConfigError
from ..model.board import Board
from ..model.network import CompiledNetwork
from ..model.task import BoundTask

__all__ = ["Engine", "EngineState", "check_task_and_board"]


def check_task_and_board(task, board) -> None:
    """What an engine runs on: a task bound to its network and a board, each of its type (one error naming it)."""
    if not isinstance(board, Board):
        raise ConfigError(f"`board` must be a spicelearn Board (Board.nominal(network, hardware)), "
                          f"got {type(board).__name__}")
    if not isinstance(task, BoundTask):
        raise ConfigError(f"`task` must be a task bound to the network (task.bind(network)), got "
                          f"{type(task).__name__}")


#: Relaxations shorter than this (seconds) are the clamp step alone: ``exp(-rate t)`` is 1 to rounding for any rate
#: a board has, and denormal times (5e-324 s) underflow the engines' arithmetic into NaN or a division by zero.
SHORTEST = 1e-300


@dataclass(frozen=True, eq=False)
class EngineState:
    """State of the twin networks.

    Attributes
    ----------
    positions : ndarray of int, shape (E,)
    v_free, v_clamped : ndarray, shape (N,)
        Node voltages in compiled node order.
    clamp : ndarray, shape (M_T,)
        Voltages the clamp sources hold now.
    """

    positions: np.ndarray
    v_free: np.ndarray
    v_clamped: np.ndarray
    clamp: np.ndarray


class Engine(abc.ABC):
    """Base class of the engines (see module docstring).

    Parameters
    ----------
    network : CompiledNetwork
    task : BoundTask
        Bound to ``network``.
    board : Board
        Part values; its arrays must fit ``network``.
    """

    #: Name in the engine registry (:data:`spicelearn.engines.ENGINES`).
    name: str = "engine"

    def __init__(self, network: CompiledNetwork, task: BoundTask, board: Board):
        if not isinstance(network, CompiledNetwork):
            raise ConfigError(f"`network` must be a compiled network (load_network), got {type(network).__name__}")
        check_task_and_board(task, board)
        if task.network is not network:
            raise ConfigError("`task` is bound to another network; bind it to this one (task.bind(network))")
        self.network, self.task, self.board = network, task, board.check(network)
        self.hardware = board.hardware

    # -- the protocol, with the argument checks every engine shares -------------------
    def init(self, positions, clamp=None) -> EngineState:
        """Both twins at equilibrium at ``positions`` (E,); ``clamp`` (M_T,) defaults to the nudge."""
        positions = self._check_positions(positions)
        return self._init(positions, None if clamp is None else self._check_clamp(clamp))

    def relax(self, state: EngineState, clamp, duration: float) -> EngineState:
        """Step the clamps to ``clamp`` (charge-conserving jump), then relax ``duration`` seconds."""
        self._check_state(state)
        if not (is_real(duration) and math.isfinite(duration) and duration >= 0):
            raise ConfigError(f"`duration` must be one finite number >= 0 of seconds, got {duration!r:.60}")
        clamp = self._check_clamp(clamp)
        if duration < SHORTEST:  # nothing relaxes in it (and denormal times underflow the engines' arithmetic)
            return self.clamp_step(state, clamp)
        return self._relax(state, clamp, float(duration))

    def clamp_step(self, state: EngineState, clamp) -> EngineState:
        """The clamps step to ``clamp`` (M_T,) with no time to relax: the clamped twin's floating nodes
        jump so that the charge on each is conserved, ``L_C[CC] dv_C = -L_C[CT] dv_T``."""
        clamp = self._check_clamp(clamp)
        C, T = self.task.clamped_floating, self.task.target_index
        v = np.array(state.v_clamped, dtype=float)
        if C.size:
            LC = self.board.capacitance_matrix(self.network, twin=1)
            v[C] += np.linalg.solve(LC[np.ix_(C, C)], LC[np.ix_(C, T)] @ (v[T] - clamp))
        v[T] = clamp
        return replace(state, v_clamped=v, clamp=clamp)

    def set_positions(self, state: EngineState, positions) -> EngineState:
        """Clock tick: new resistances; node voltages do not jump."""
        self._check_state(state)
        return self._set_positions(state, self._check_positions(positions))

    def equilibrium_free(self, state: EngineState) -> np.ndarray:
        """Free-twin equilibrium voltages at the state's resistances, shape (N,)."""
        self._check_state(state)
        return self._equilibrium_free(state)

    def close(self) -> None:
        """Release what the engine holds; the engine is not used afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what each engine implements ---------------------------------------------------
    @abc.abstractmethod
    def _init(self, positions: np.ndarray, clamp: np.ndarray | None) -> EngineState: ...

    @abc.abstractmethod
    def _relax(self, state: EngineState, clamp: np.ndarray, duration: float) -> EngineState: ...

    @abc.abstractmethod
    def _set_positions(self, state: EngineState, positions: np.ndarray) -> EngineState: ...

    @abc.abstractmethod
    def _equilibrium_free(self, state: EngineState) -> np.ndarray: ...

    # -- shared helpers ------------------------------------------------------------------
    def default_clamp(self, v_free: np.ndarray) -> np.ndarray:
        """The clamps the board's supervisor sets from the free node voltages ``v_free`` (N,): the nudge,
        through its converters; shape (M_T,)."""
        return self.hardware.supervisor.clamp(self.task, v_free, self.hardware.eta)

    def _check_positions(self, positions) -> np.ndarray:
        return self.hardware.pot.check_positions(positions, self.network.n_edges)

    def _check_clamp(self, clamp) -> np.ndarray:
        c = np.asarray(clamp)
        shape = self.task.target_index.shape
        if c.shape != shape or c.dtype.kind not in "iuf" or not np.isfinite(c).all():
            raise ConfigError(f"`clamp` must be finite volts with shape {shape}, got {c!r:.80}")
        return c.astype(float)

    def _check_state(self, state) -> None:
        if not isinstance(state, EngineState):
            raise ConfigError(f"`state` must be a state returned by this engine, got {type(state).__name__}")
        if np.shape(state.v_free) != (self.network.n_nodes,):
            raise ConfigError(f"`state` is of another network ({np.shape(state.v_free)[0]} nodes, this engine's "
                              f"{self.network.n_nodes}): give a state this engine returned")
