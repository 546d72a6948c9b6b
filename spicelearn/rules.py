"""Learning rules: the comparator-XOR rules of the hardware, and the continuous rule.

Edge voltage drops follow DESIGN.md: ``dv_j = v_u - v_v``. A hardware rule
returns ``up`` (resistance up, position + 1) per edge.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError
from .hardware import Comparator

__all__ = ["comparator_rule", "xor_rule", "xor_legacy_rule", "continuous_rule", "HARDWARE_RULES"]


def _noisy(x: np.ndarray, comparator: Comparator, rng) -> np.ndarray:
    out = x + comparator.offset
    if comparator.noise > 0:
        out = out + rng.normal(0.0, comparator.noise, size=np.shape(x))
    return out


def xor_rule(dv_free, dv_clamped, comparator: Comparator = Comparator(), rng=None) -> np.ndarray:
    """``up = XOR(dv_F > dv_C, dv_F > -dv_C)``: up exactly when ``|dv_C| > |dv_F|``."""
    c1 = _noisy(dv_free - dv_clamped, comparator, rng) > 0
    c2 = _noisy(dv_free + dv_clamped, comparator, rng) > 0
    return c1 ^ c2


def xor_legacy_rule(dv_free, dv_clamped, comparator: Comparator = Comparator(), rng=None) -> np.ndarray:
    """The earlier circuit: ``up = XOR(dv_F > dv_C, dv_C > 0)``."""
    c1 = _noisy(dv_free - dv_clamped, comparator, rng) > 0
    c2 = _noisy(np.asarray(dv_clamped, dtype=float), comparator, rng) > 0
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
