"""Learning rules: the comparator-XOR rules of the hardware, and the continuous rule.

Edge voltage drops follow DESIGN.md: ``dv_j = v_u - v_v``. A hardware rule
``rule(dv_free, dv_clamped, offset, noise, rng)`` returns ``up`` (resistance up,
position + 1) per edge.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["comparator_rule", "xor_rule", "xor_legacy_rule", "continuous_rule", "HARDWARE_RULES"]


def _fires(x: np.ndarray, offset, noise: float, rng) -> np.ndarray:
    """A comparator's decision on input ``x``: ``x + offset + N(0, noise^2) > 0``."""
    out = x + offset
    if noise > 0:
        out = out + rng.normal(0.0, noise, size=np.shape(x))
    return out > 0


def xor_rule(dv_free, dv_clamped, offset=(0.0, 0.0), noise: float = 0.0, rng=None) -> np.ndarray:
    """``up = XOR(dv_F > dv_C, dv_F > -dv_C)``: up exactly when ``|dv_C| > |dv_F|``.

    Parameters
    ----------
    dv_free, dv_clamped : ndarray, shape (E,)
        Edge voltage drops of the twins.
    offset : pair of float or of ndarray (E,)
        Input offsets (volt) of the two comparators of every edge (a board's ``offset``, shape (2, E)).
    noise : float
        Input noise (volt rms) of every decision; needs ``rng``.
    rng : numpy.random.Generator
    """
    c1 = _fires(dv_free - dv_clamped, offset[0], noise, rng)
    c2 = _fires(dv_free + dv_clamped, offset[1], noise, rng)
    return c1 ^ c2


def xor_legacy_rule(dv_free, dv_clamped, offset=(0.0, 0.0), noise: float = 0.0, rng=None) -> np.ndarray:
    """The earlier circuit: ``up = XOR(dv_F > dv_C, dv_C > 0)``; arguments as :func:`xor_rule`."""
    c1 = _fires(dv_free - dv_clamped, offset[0], noise, rng)
    c2 = _fires(np.asarray(dv_clamped, dtype=float), offset[1], noise, rng)
    return c1 ^ c2


HARDWARE_RULES = {"xor": xor_rule, "xor-legacy": xor_legacy_rule}


def comparator_rule(name: str):
    """Look up a hardware rule by name (``xor`` or ``xor-legacy``)."""
    try:
        return HARDWARE_RULES[name]
    except KeyError:
        raise ConfigError(f"`rule` must be one of {tuple(HARDWARE_RULES)}, got {name!r}") from None


def continuous_rule(dv_free, dv_clamped, eta: float, gamma_l: float = 1.0) -> np.ndarray:
    """Coupled learning, paper Eq. 3: ``dG/dt = gamma_l / (2 eta) (dv_F^2 - dv_C^2)``."""
    return gamma_l / (2.0 * eta) * (np.square(dv_free) - np.square(dv_clamped))
