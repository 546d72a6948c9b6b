"""Validation of scalar parameters, with errors that name the argument (scipy's manner)."""

from __future__ import annotations

import math
import numbers
import os

import numpy as np

from .errors import ConfigError

__all__ = ["is_real", "finite", "positive", "check_steps", "check_eta", "check_R", "check_seed", "check_record_memory",
           "record_bytes", "show", "text_or_path", "RECORD_MEMORY_LIMIT", "SEED_LIMIT"]

#: Memory a run may allocate for its record (bytes): far above any sensible run, below this machine's.
RECORD_MEMORY_LIMIT = 8 * 2**30


def show(value) -> str:
    """``repr`` for messages, with numpy scalars shown as Python numbers (``-1e-06``, not ``np.float64(-1e-06)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def text_or_path(name: str, value, valid: str) -> str:
    """``value`` as text: a ``str`` or an ``os.PathLike`` of one, else :class:`ConfigError` naming ``name`` and what
    would be ``valid`` (``load_network``'s and ``load_task``'s names and paths, where ``os.fspath`` would raise a bare
    ``TypeError``)."""
    path = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    if not isinstance(path, str):
        raise ConfigError(f"`{name}` must be {valid}, got {type(value).__name__} {show(value):.60}")
    return path


def is_real(value) -> bool:
    """Whether ``value`` is one real number: a Python or numpy int or float (not a bool, a string or an array)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def finite(name: str, value) -> float:
    """``value`` (a real number, :func:`is_real`) as a finite float, else :class:`ConfigError` naming ``name``."""
    if not is_real(value):  # float() would take True as 1 and '1e-6' as a number
        raise ConfigError(f"`{name}` must be a number, got {type(value).__name__} {show(value):.60}")
    v = float(value)
    if not math.isfinite(v):
        raise ConfigError(f"`{name}` must be finite, got {show(value)}")
    return v


def positive(name: str, value) -> float:
    """``value`` as a finite float > 0."""
    v = finite(name, value)
    if not v > 0:
        raise ConfigError(f"`{name}` must be finite and > 0, got {show(value)}")
    return v


def check_steps(steps, name: str = "steps") -> int:
    """A number of steps: an integer >= 1 (``name``: the argument's, in the message)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ConfigError(f"`{name}` must be an integer >= 1, got {show(steps)}")
    return int(steps)


def check_eta(eta) -> float:
    """The nudge ``eta`` in (0, 1]."""
    v = finite("eta", eta)
    if not 0 < v <= 1:
        raise ConfigError(f"`eta` must lie in (0, 1], got {show(eta)}")
    return v


def check_R(R) -> float:
    """The scaled learning rate ``R = gamma_l / gamma_p`` (> 0)."""
    v = finite("R", R)
    if not v > 0:
        raise ConfigError(f"`R` must be > 0 (the ratio gamma_l / gamma_p), got {show(R)}")
    return v


#: Seeds lie below this: run files keep a seed as a 64-bit integer, and a sweep's seed axis as a signed one.
SEED_LIMIT = 2**63


def check_seed(name: str, seed, allow_none: bool = False) -> int | None:
    """A seed: an integer in ``0 .. 2^63 - 1`` (numpy's generators refuse negative seeds; run files keep it as a
    64-bit integer, and a sweep's seed axis as a signed one), or None where allowed."""
    if seed is None and allow_none:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < SEED_LIMIT:
        raise ConfigError(f"`{name}` must be an integer in 0 .. 2**63 - 1{' or None' if allow_none else ''}, got "
                          f"{show(seed)}")
    return int(seed)


def record_bytes(steps: int, n_nodes: int, n_edges: int) -> int:
    """Bytes of the record of a run (voltages of both twins per node, an int16 or float per edge, a few scalars
    per step), at most."""
    return steps * (2 * 8 * n_nodes + 8 * n_edges + 32)


def check_record_memory(steps: int, bytes_per_step: int, what: str = "the run") -> int:
    """``steps``, after checking that a record of ``bytes_per_step`` a step (:func:`record_bytes` of one step for a
    run) fits in :data:`RECORD_MEMORY_LIMIT`; the message says how much."""
    need = steps * bytes_per_step
    if need > RECORD_MEMORY_LIMIT:
        raise ConfigError(f"`steps`={steps} needs {need / 2**30:.3g} GiB for the record of {what} (the limit is "
                          f"{RECORD_MEMORY_LIMIT / 2**30:g} GiB); run fewer steps, or several runs one after another")
    return steps
