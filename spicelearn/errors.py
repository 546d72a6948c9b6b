"""Exceptions raised by spicelearn.

Every error a user can cause is a subclass of :class:`SpicelearnError`, so the
command line can print a one-line message instead of a traceback.
"""

from __future__ import annotations


class SpicelearnError(Exception):
    """Base class of all errors spicelearn raises on purpose."""


class NetworkError(SpicelearnError, ValueError):
    """The network graph cannot be simulated (topology or edge attributes)."""


class TaskError(SpicelearnError, ValueError):
    """The task does not fit the network (unknown nodes, overlaps, bad voltages)."""


class ConfigError(SpicelearnError, ValueError):
    """A hardware or run parameter is out of its valid range."""


class SpiceError(SpicelearnError, RuntimeError):
    """ngspice is missing, or failed to parse or simulate a circuit."""
