"""Checks of the learning board: its options before it is built, and the built board's limits.

:func:`build_board` calls the option checks (:func:`check_options`,
:func:`capacitance_values`, :func:`check_part_count`) before it places a part;
:func:`power_budget`, :func:`task_voltage_notes` and :func:`size_notes` describe
a board and its task for the user.
"""

from __future__ import annotations

import math
import numbers

from ..errors import ConfigError
from .parts import (AVERAGE_OHMS, CAPACITANCE_RANGE, COMPARATOR_HEADROOM, MAX_CONNECTOR_PINS, PACKAGES,
                    SUPPLY_VOLTS, VDD, VREF_RATIO, connector, parse_si, si_value)

__all__ = ["MAX_PARTS", "NOTE_PARTS", "DEFAULT_CAPACITANCE", "check_options", "capacitance_values",
           "check_part_count", "size_notes", "task_voltage_notes", "power_budget"]

#: Largest board :func:`~spicelearn.kicad.design.build_board` builds unless ``max_parts`` is raised:
#: about 1,000 edges, a netlist of about 17 MB.
MAX_PARTS = 20_000
#: Boards with more parts than this get a note: KiCad's PCB editor is slow to import and place them.
NOTE_PARTS = 5_000
#: Edge capacitance (farad) when neither the option nor the network gives one.
DEFAULT_CAPACITANCE = 2.2e-6
_CAPACITANCE_TEXT = (f"{si_value(CAPACITANCE_RANGE[0])}F..{si_value(CAPACITANCE_RANGE[1])}F "
                     f"({CAPACITANCE_RANGE[0]:g}..{CAPACITANCE_RANGE[1]:g} farad), the range of real capacitors")


def check_options(package: str, connector_pins: int | None, needed: int) -> int:
    """Check the package style and the task connector; return the pin count of J3.

    Parameters
    ----------
    package : str
        One of :data:`~spicelearn.kicad.parts.PACKAGES`.
    connector_pins : int or None
        Pins asked for J3; None: as many as needed.
    needed : int
        Pins the task needs on J3 (sources + 2 x targets + GND).
    """
    if package not in PACKAGES:
        raise ConfigError(f"`package` must be one of {PACKAGES}, got {package!r}")
    if needed > MAX_CONNECTOR_PINS:
        raise ConfigError(
            f"the task needs {needed} pins on the task connector J3 (sources + 2 x targets + GND), more than "
            f"the {MAX_CONNECTOR_PINS} of KiCad's largest 1-row pin header; use a task with fewer sources and targets")
    if connector_pins is None:
        return needed
    connector(connector_pins)  # validates the range
    if connector_pins < needed:
        raise ConfigError(f"`connector_pins`={connector_pins!r} is too small for this task: J3 needs {needed} pins "
                          f"(sources + 2 x targets + GND); give {needed}..{MAX_CONNECTOR_PINS}")
    return int(connector_pins)


def capacitance_values(network, capacitance: float | None) -> list:
    """The edge capacitances (farad) of the board, one per edge of ``network``.

    Parameters
    ----------
    network : CompiledNetwork
    capacitance : float or None
        One value for every edge; None: the network's per-edge ``capacitance``
        attributes, else :data:`DEFAULT_CAPACITANCE`.

    Raises
    ------
    ConfigError
        When a capacitance is not a finite positive number, or lies outside
        :data:`~spicelearn.kicad.parts.CAPACITANCE_RANGE` (no part to put in the BOM).
    """
    lo, hi = CAPACITANCE_RANGE
    if capacitance is not None:
        try:
            c = float(capacitance)
        except (TypeError, ValueError):
            raise ConfigError(f"`capacitance` must be a number of farads, got {capacitance!r}") from None
        if not (math.isfinite(c) and c > 0):
            raise ConfigError(f"`capacitance` must be finite and > 0 farad, got {capacitance!r}")
        if not lo <= c <= hi:
            raise ConfigError(f"`capacitance`={capacitance!r} is outside {_CAPACITANCE_TEXT}; "
                              f"give the edge capacitance in farad, e.g. {DEFAULT_CAPACITANCE:g}")
        return [c] * network.n_edges
    if network.capacitance is None:
        return [DEFAULT_CAPACITANCE] * network.n_edges
    caps = [float(c) for c in network.capacitance]
    bad = [j for j, c in enumerate(caps) if not lo <= c <= hi]
    if bad:
        j = bad[0]
        raise ConfigError(f"edge {network.edge_labels[j]!r} of the network has `capacitance`={caps[j]!r} "
                          f"({len(bad)} of {len(caps)} edges are outside {_CAPACITANCE_TEXT}); "
                          "give one value for every edge with `capacitance` (command line: --capacitance FARAD)")
    return caps


def check_part_count(n_parts: int, max_parts: int, name: str) -> None:
    """Refuse a board of more than ``max_parts`` parts.

    Parameters
    ----------
    n_parts : int
        Parts of the board (:func:`~spicelearn.kicad.design.part_count`).
    max_parts : int
        The limit, a positive integer (:data:`MAX_PARTS` by default).
    name : str
        Network name, for the message.
    """
    if isinstance(max_parts, bool) or not isinstance(max_parts, numbers.Integral) or max_parts < 1:
        raise ConfigError(f"`max_parts` must be a positive integer, got {max_parts!r}")
    if n_parts > max_parts:
        raise ConfigError(f"the board of network {name!r} would have {n_parts:,} parts, more than "
                          f"`max_parts`={max_parts!r}; raise `max_parts` (command line: --max-parts N) "
                          "to export it anyway")


def size_notes(n_parts: int) -> list:
    """A note when a board of ``n_parts`` parts is larger than :data:`NOTE_PARTS`, else nothing."""
    if n_parts <= NOTE_PARTS:
        return []
    return [(f"the board has {n_parts:,} parts (more than {NOTE_PARTS:,}): KiCad's PCB editor is slow to "
             "import and place a netlist this large; a smaller network gives a smaller board")]


def task_voltage_notes(task) -> list:
    """Warnings where the task's voltages leave the board's working range.

    Node voltages stay within the driven voltages (sources, clamped targets),
    so ``|dv| <= spread``; the front end handles ``|dv| <= VREF`` and every
    pot terminal must stay within 0..VDD. Learning is unchanged when every
    task voltage is shifted by the same offset.
    """
    volts = list(task.sources.values()) + list(task.targets.values())
    lo, hi = min(volts), max(volts)
    vref = SUPPLY_VOLTS * VREF_RATIO
    limit = min(vref, SUPPLY_VOLTS - COMPARATOR_HEADROOM - vref)
    notes = []
    if lo < 0 or hi > SUPPLY_VOLTS:
        notes.append(f"task voltages span {lo:g}..{hi:g} V, outside the pots' 0..{SUPPLY_VOLTS:g} V: "
                     f"add {-lo:+g} V to every source and target (learning is unchanged by a common offset)")
    if hi - lo > limit:
        notes.append(f"task voltages spread over {hi - lo:g} V; the front end resolves drops up to "
                     f"{limit:.3g} V (VREF = {vref:.3g} V): scale every task voltage down by one factor "
                     f"(the comparators see only signs, so the xor rule is unchanged)")
    return notes


def power_budget(pcb) -> dict:
    """Worst-case current (mA) the board draws from its 5 V supply.

    Parameters
    ----------
    pcb : Pcb
        A board from :func:`~spicelearn.kicad.design.build_board`.

    Returns
    -------
    dict
        ``ics``: maximum quiescent currents of the packages; ``pullups``: every
        resistor from +5V with its other end at ground (comparator outputs low,
        ~CS low); ``front_end``: the averaging resistors of every edge at the
        largest drop the front end resolves; ``total``. The network currents come
        from the supervisor's source and clamp drivers, not from this supply.
    """
    ics = sum(c.part_type.supply_ma for c in pcb.components)
    pins = {rp: name for name, nodes in pcb.nets for rp in nodes}
    pullups = sum(SUPPLY_VOLTS / parse_si(c.value) * 1e3 for c in pcb.components
                  if c.part == "R" and VDD in (pins[c.ref, "1"], pins[c.ref, "2"]))
    n_edges = sum(c.part == "AD5220" for c in pcb.components) // 2
    front_end = n_edges * 2 * SUPPLY_VOLTS * VREF_RATIO / (2 * AVERAGE_OHMS) * 1e3
    return {"ics": ics, "pullups": pullups, "front_end": front_end, "total": ics + pullups + front_end}
