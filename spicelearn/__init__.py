"""spicelearn: circuit-level simulation of physical learning in resistor networks.

The public API mirrors the command line::

    import spicelearn as sl
    ds = sl.train("lab16", "default", sl.Hardware.from_R(0.1, capacitance=22e-6), steps=3000)
    print(sl.summary(ds))

The names below are imported from their modules on first use (PEP 562), so that
``import spicelearn`` and ``spicelearn --help`` do not load xarray and scipy.
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

#: Public name -> the module that defines it.
_API = {
    "train": "spicelearn.loop", "replay": "spicelearn.loop", "replay_run": "spicelearn.loop",
    "train_ode": "spicelearn.continuous.ode", "train_quasistatic": "spicelearn.continuous.quasistatic",
    "Hardware": "spicelearn.model.hardware", "Potentiometer": "spicelearn.model.hardware",
    "Comparator": "spicelearn.model.hardware", "R0": "spicelearn.model.hardware",
    "Board": "spicelearn.model.board",
    "CompiledNetwork": "spicelearn.model.network", "compile_network": "spicelearn.model.network",
    "load_network": "spicelearn.model.network",
    "Task": "spicelearn.model.task", "load_task": "spicelearn.model.task", "random_task": "spicelearn.model.task",
    "load_run": "spicelearn.runfile", "save_run": "spicelearn.runfile", "summary": "spicelearn.runfile",
    "tau": "spicelearn.runfile",
    "SpicelearnError": "spicelearn.errors", "NetworkError": "spicelearn.errors", "TaskError": "spicelearn.errors",
    "ConfigError": "spicelearn.errors", "SpiceError": "spicelearn.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'spicelearn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
