"""Learning rules: the comparator-XOR rules of the hardware, and the continuous rule.

Edge voltage drops follow DESIGN.md: ``dv_j = v_u - v_v``. A hardware rule
``rule(dv_free, dv_clamped, offset, noise, rng)`` returns ``up`` (resistance up,
position + 1) per edge.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["comparator_rule", "comparator_inputs", "fires", "TIE", "xor_rule", "xor_legacy_rule", "continuous_rule", "HARDWARE_RULES"]


#: A comparator fires when its input exceeds this (volt): far below any physical offset or noise, far above the
#: rounding of the voltages (~1e-15 V). An exact tie (a symmetric network at a uniform start has some) then does
#: not fire whatever the last bits of the engine's arithmetic, as exact arithmetic would decide it.
TIE = 1e-12


def fires(x: np.ndarray) -> np.ndarray:
    """A comparator's output for its total input ``x`` (signal + offset + noise, volt): ``x > TIE``."""
    return x > TIE


def _fires(x: np.ndarray, offset, noise: float, rng) -> np.ndarray:
    """A comparator's decision on input ``x``: ``x + offset + N(0, noise^2) > 0`` (:func:`fires`)."""
    out = x + offset
    if noise > 0:
        out = out + rng.normal(0.0, noise, size=np.shape(x))
    return fires(out)


def _xor_inputs(dv_free, dv_clamped) -> tuple:
    """The inputs of the two comparators of the ``xor`` rule: ``dv_F - dv_C`` and ``dv_F + dv_C``."""
    return dv_free - dv_clamped, dv_free + dv_clamped


def _xor_legacy_inputs(dv_free, dv_clamped) -> tuple:
    """The inputs of the two comparators of the ``xor-legacy`` rule: ``dv_F - dv_C`` and ``dv_C``."""
    return dv_free - dv_clamped, np.asarray(dv_clamped, dtype=float)


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
    x1, x2 = _xor_inputs(dv_free, dv_clamped)
    c1 = _fires(x1, offset[0], noise, rng)
    return c1 ^ _fires(x2, offset[1], noise, rng)


def xor_legacy_rule(dv_free, dv_clamped, offset=(0.0, 0.0), noise: float = 0.0, rng=None) -> np.ndarray:
    """The earlier circuit: ``up = XOR(dv_F > dv_C, dv_C > 0)``; arguments as :func:`xor_rule`."""
    x1, x2 = _xor_legacy_inputs(dv_free, dv_clamped)
    c1 = _fires(x1, offset[0], noise, rng)
    return c1 ^ _fires(x2, offset[1], noise, rng)


HARDWARE_RULES = {"xor": xor_rule, "xor-legacy": xor_legacy_rule}


_INPUTS = {xor_rule: _xor_inputs, xor_legacy_rule: _xor_legacy_inputs}


def comparator_inputs(rule_fn):
    """``inputs(dv_free, dv_clamped) -> (x1, x2)`` of a built-in hardware rule: the rule is
    ``(x1 + offset_1 + noise_1 > 0) XOR (x2 + offset_2 + noise_2 > 0)``, the first comparator's noise drawn
    first; None for any other function (a custom rule)."""
    return _INPUTS.get(rule_fn)


def comparator_rule(name: str):
    """Look up a hardware rule by name (``xor`` or ``xor-legacy``)."""
    try:
        return HARDWARE_RULES[name]
    except KeyError:
        raise ConfigError(f"`rule` must be one of {tuple(HARDWARE_RULES)}, got {name!r}") from None


def continuous_rule(dv_free, dv_clamped, eta: float, gamma_l: float = 1.0) -> np.ndarray:
    """Coupled learning, paper Eq. 3: ``dG/dt = gamma_l / (2 eta) (dv_F^2 - dv_C^2)``."""
    return gamma_l / (2.0 * eta) * (np.square(dv_free) - np.square(dv_clamped))
