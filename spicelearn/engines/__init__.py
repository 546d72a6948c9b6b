"""Engines: what happens to the twin networks between clock ticks.

An engine is a small object built from (network, task, hardware) with frozen
configuration and explicit state, in the manner of diffrax's solvers:

``init(positions, clamp) -> state``
    both twins at equilibrium (the initial state of the learning loop);
``relax(state, clamp, duration) -> state``
    step the clamp sources (floating nodes jump, charge conserved), then let
    both twins relax for ``duration`` seconds at fixed resistances;
``set_positions(state, positions) -> state``
    the clock tick: new resistances, voltages unchanged;
``equilibrium_free(state) -> ndarray (N,)``
    free-network equilibrium at the state's resistances (for ``mse_eq``).

States expose ``positions``, ``v_free`` and ``v_clamped`` (node voltages in
compiled node order).
"""

from __future__ import annotations

from ..errors import ConfigError

__all__ = ["get_engine", "ENGINES"]

ENGINES = ("exact", "ngspice", "ode")


def get_engine(name):
    """Look up an engine class by name.

    An engine class, or any factory ``(network, task, hardware) -> engine`` such as
    ``functools.partial(NgspiceEngine, parallel=False)``, is returned as it is.
    """
    if not isinstance(name, str):
        if callable(name):
            return name
        raise ConfigError(f"`backend` must be one of {ENGINES} or an engine class or factory, got {name!r}")
    if name == "exact":
        from .exact import ExactEngine

        return ExactEngine
    if name == "ngspice":
        try:
            from .ngspice import NgspiceEngine
        except ImportError:
            raise ConfigError("`backend`='ngspice' is not available in this version yet; use `exact`") from None
        return NgspiceEngine
    if name == "ode":
        raise ConfigError("`backend`='ode' is the paper's continuous model, not a hardware engine: "
                          "use spicelearn.train_ode(...) or `spicelearn train --backend ode`")
    raise ConfigError(f"`backend` must be one of {ENGINES}, got {name!r}")
