"""Engines of the clocked learning loop: the protocol (:mod:`.base`) and the registry.

:data:`ENGINES` maps a name to the engine class's ``module:attribute`` (imported on
first use, so that PySpice loads only for ``ngspice``); :func:`get_engine` looks a
name up, and accepts an engine class or factory as it is (scipy's ``METHODS``).
The paper's continuous model is not an engine of this loop: see
:mod:`spicelearn.continuous`.
"""

from __future__ import annotations

import importlib

from ..errors import ConfigError

__all__ = ["get_engine", "ENGINES"]

#: Registered engines: name -> "module:class".
ENGINES = {
    "exact": "spicelearn.engines.exact:ExactEngine",
    "ngspice": "spicelearn.engines.ngspice.engine:NgspiceEngine",
}


def get_engine(name):
    """The engine class registered as ``name``.

    An engine class, or any factory ``(network, task, board) -> engine`` such as
    ``functools.partial(NgspiceEngine, parallel=False)``, is returned as it is.
    """
    if not isinstance(name, str):
        if callable(name):
            return name
        raise ConfigError(f"`backend` must be one of {tuple(ENGINES)} or an engine class or factory, got {name!r}")
    if name not in ENGINES:
        hint = " (the paper's continuous model: `spicelearn train --backend ode` or spicelearn.train_ode)" \
            if name in ("ode", "quasistatic") else ""
        raise ConfigError(f"`backend` must be one of {tuple(ENGINES)}, got {name!r}{hint}")
    module, attr = ENGINES[name].split(":")
    return getattr(importlib.import_module(module), attr)
