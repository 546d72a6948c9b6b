"""Validation of scalar parameters, with errors that name the argument (scipy's manner)."""

from __future__ import annotations

import math

import numpy as np

from .errors import ConfigError

__all__ = ["finite", "positive", "check_steps", "check_eta", "check_R"]


def finite(name: str, value) -> float:
    """``value`` as a finite float, else :class:`ConfigError` naming ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"`{name}` must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ConfigError(f"`{name}` must be finite, got {value!r}")
    return v


def positive(name: str, value) -> float:
    """``value`` as a finite float > 0."""
    v = finite(name, value)
    if not v > 0:
        raise ConfigError(f"`{name}` must be finite and > 0, got {value!r}")
    return v


def check_steps(steps) -> int:
    """A number of steps: an integer >= 1."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ConfigError(f"`steps` must be an integer >= 1, got {steps!r}")
    return int(steps)


def check_eta(eta) -> float:
    """The nudge ``eta`` in (0, 1]."""
    v = finite("eta", eta)
    if not 0 < v <= 1:
        raise ConfigError(f"`eta` must lie in (0, 1], got {eta!r}")
    return v


def check_R(R) -> float:
    """The scaled learning rate ``R = gamma_l / gamma_p`` (> 0)."""
    v = finite("R", R)
    if not v > 0:
        raise ConfigError(f"`R` must be > 0 (the ratio gamma_l / gamma_p), got {R!r}")
    return v
