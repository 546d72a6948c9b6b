"""The learning board's circuit: :func:`build_board` places the parts and nets of a :class:`Pcb`.

The board realises DESIGN.md's hardware for a compiled network and a task:

- every edge ``j = (u, v)`` has two AD5220-100k digital potentiometers used
  as rheostats between W (tied to A) and B, one in the *free* and one in the
  *clamped* network, each with its edge capacitor in parallel. Counting up
  (U/D high) moves the wiper towards A, so R_WB, the edge resistance, goes up.
- the analog front end forms ``D_F = VREF + dv_F`` and ``D_C = VREF + dv_C``
  (``dv = v_u - v_v``) with two difference amplifiers (quad MCP6004, 100 kOhm
  0.1 % resistors) fed from unity-gain buffers on the floating nodes, so that
  no resistor of the front end loads the networks; driven nodes (sources,
  clamped targets) feed the amplifiers directly.
- two LM339 comparator units decide ``GT = D_F > D_C`` (dv_F > dv_C) and
  ``POS = (D_F + D_C) / 2 > VREF`` (dv_F > -dv_C, the average is taken by two
  equal resistors); a 74HC86 gate gives ``UP = XOR(GT, POS)``, DESIGN.md's
  ``xor`` rule, which drives U/D of both pots of the edge. All pots share the
  global CLK (falling edge steps) and ~CS.
- VREF = VDD / 3 from a divider and a buffer; one 100 nF decoupling capacitor
  per IC, a bulk capacitor at the power input; pin headers for power (J1),
  clock and chip select (J2), and the task lines (J3: sources, buffered free
  targets to read, clamped targets to drive, ground).

Every component's timestamp is a UUID derived from the network name and its
role, so that re-importing an updated netlist (:mod:`spicelearn.kicad.writers`)
keeps the placement.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass
from types import MappingProxyType

from ..errors import ConfigError
from .checks import MAX_PARTS, capacitance_values, check_options, check_part_count
from .parts import (AVERAGE_OHMS, DIFF_OHMS, GND, POT_MPN, PULLUP_OHMS, SUPPLY_VOLTS, VDD, VREF_RATIO, PartType,
                    connector, part, si_value)

__all__ = ["Component", "Pcb", "build_board", "part_count", "natural_key", "VREF"]

#: The buffered reference net, VDD * VREF_RATIO.
VREF = "/VREF"
_NAMESPACE = uuid.UUID("9b0c6f3e-2f1a-5d7c-8e4b-5a1d2c3b4f60")
_SAFE = re.compile(r"[^A-Za-z0-9_.+-]")
_UNIT_LETTERS = "ABCD"


@dataclass(frozen=True)
class Component:
    """One placed component.

    Attributes
    ----------
    ref : str
        Unique reference (``U12``, ``R3``, ...).
    part : str
        Key of its :class:`~spicelearn.kicad.parts.PartType`.
    value, footprint : str
    role : str
        Stable description of what it does (``"edge 0|1 pot free"``); the
        timestamp is derived from the network name and the role.
    tstamp : str
        UUID.
    properties : tuple of (str, str)
    """

    ref: str
    part: str
    value: str
    footprint: str
    role: str
    tstamp: str
    properties: tuple = ()

    @property
    def part_type(self) -> PartType:
        return part(self.part)


@dataclass(frozen=True)
class Pcb:
    """The learning board as a printed circuit board: its components and nets.

    Not :class:`spicelearn.model.board.Board`, which is one realisation of a
    hardware design with per-part values.

    Attributes
    ----------
    name : str
        Network name.
    components : tuple of Component
        Sorted by reference.
    nets : tuple of (str, tuple of (ref, pin))
        Net name and its nodes, sorted by name; pins never appear twice.
    comments : tuple of str
        Title-block comments (network, task, rule, front-end range).
    package : str
    """

    name: str
    components: tuple
    nets: tuple
    comments: tuple
    package: str

    def component(self, ref: str) -> Component:
        return next(c for c in self.components if c.ref == ref)


def natural_key(s: str) -> list:
    """Sort key of references and net names: ``R2`` before ``R10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


class _Builder:
    """Mutable accumulator of components and pin-to-net links; :meth:`pcb` freezes it."""

    def __init__(self, name: str, package: str):
        self.name, self.package = name, package
        self._count = Counter()
        self._records = {}           # ref -> dict: part, value, role, props (in order of placement)
        self._types = {}             # ref -> PartType
        self._links = {}             # (ref, pin) -> net
        self._floating = set()       # (ref, pin) outputs allowed to stay unconnected

    def add(self, key: str, role: str, value: str, props=(), mpn: str | None = None) -> str:
        pt = part(key)
        self._count[pt.prefix] += 1
        ref = f"{pt.prefix}{self._count[pt.prefix]}"
        self._records[ref] = {"part": key, "value": value, "role": role, "props": list(props), "mpn": mpn}
        self._types[ref] = pt
        for rail, pin in pt.power.items():
            self.connect(rail, ref, pin)
        return ref

    def add_property(self, ref: str, name: str, value: str) -> None:
        self._records[ref]["props"].append((name, value))

    def connect(self, net: str, ref: str, pin: str) -> None:
        if all(p.number != pin for p in self._types[ref].pins):
            raise RuntimeError(f"internal error: {ref} ({self._types[ref].key}) has no pin {pin}")
        if (ref, pin) in self._links:
            raise RuntimeError(f"internal error: pin {ref}.{pin} connected to {self._links[ref, pin]!r} and {net!r}")
        self._links[ref, pin] = net

    def two(self, key: str, role: str, value: str, net1: str, net2: str, props=()) -> str:
        """A two-terminal part between ``net1`` (pin 1) and ``net2`` (pin 2)."""
        ref = self.add(key, role, value, props)
        self.connect(net1, ref, "1")
        self.connect(net2, ref, "2")
        return ref

    def may_float(self, ref: str, pin: str) -> None:
        self._floating.add((ref, pin))

    def ics(self) -> list:
        """``(ref, role)`` of every part with supply pins."""
        return [(ref, r["role"]) for ref, r in self._records.items() if self._types[ref].power]

    def pcb(self, comments) -> Pcb:
        nets = {}
        for (ref, pin), net in self._links.items():
            nets.setdefault(net, []).append((ref, pin))
        for ref in self._records:
            for p in self._types[ref].pins:
                if (ref, p.number) in self._links:
                    continue
                if (ref, p.number) not in self._floating:
                    raise RuntimeError(f"internal error: required pin {ref}.{p.number} ({p.name}) is unconnected")
                nets[f"unconnected-({ref}-Pad{p.number})"] = [(ref, p.number)]
        comps = []
        for ref, rec in self._records.items():
            pt = self._types[ref]
            props = [("Sheetname", ""), ("spicelearn:role", rec["role"])] + rec["props"]
            mpn = rec["mpn"] or pt.mpn.get(self.package)
            if mpn:
                props += [("Manufacturer", pt.manufacturer), ("MPN", mpn)]
            tstamp = str(uuid.uuid5(_NAMESPACE, f"{self.name}\n{rec['role']}"))
            comps.append(Component(ref=ref, part=rec["part"], value=rec["value"],
                                   footprint=pt.footprint(self.package), role=rec["role"], tstamp=tstamp,
                                   properties=tuple(props)))
        comps.sort(key=lambda c: natural_key(c.ref))
        net_items = tuple((name, tuple(sorted(nodes, key=lambda rp: (natural_key(rp[0]), natural_key(rp[1])))))
                          for name, nodes in sorted(nets.items(), key=lambda kv: natural_key(kv[0])))
        return Pcb(name=self.name, components=tuple(comps), nets=net_items, comments=tuple(comments),
                   package=self.package)


class _UnitPool:
    """Hands out the units of multi-unit chips in order; a new chip when the last one is full."""

    def __init__(self, builder: _Builder, key: str, role: str):
        self.b, self.key, self.role = builder, key, role
        self.units = part(key).units
        self.chips = []
        self.labels = []

    def take(self, label: str):
        """Return ``(ref, pins)`` of the next free unit; ``pins`` maps role -> pin number."""
        chip, u = divmod(len(self.labels), len(self.units))
        if chip == len(self.chips):
            self.chips.append(self.b.add(self.key, f"{self.role} {chip}", self.key))
        self.labels.append(label)
        return self.chips[chip], self.units[u]

    def finish(self, tie) -> None:
        """Tie every spare unit with ``tie(ref, pins, spare_index)``; label each chip's units."""
        n_units = len(self.units)
        for chip, ref in enumerate(self.chips):
            labels = self.labels[chip * n_units:(chip + 1) * n_units]
            for u in range(len(labels), n_units):
                tie(ref, self.units[u], u)
            text = "; ".join(f"{_UNIT_LETTERS[i]}: {lab}" for i, lab in enumerate(labels))
            self.b.add_property(ref, "spicelearn:units", text + ("; spare units tied" if len(labels) < n_units else ""))


def _node_tokens(nodes) -> dict:
    """Net-name-safe token of every node id (the id itself where possible)."""
    tokens = [_SAFE.sub("_", n) for n in nodes]
    if len(set(tokens)) != len(tokens):
        tokens = [f"N{i}" for i in range(len(nodes))]
    return dict(zip(nodes, tokens))


@dataclass(frozen=True)
class _NetNames:
    """Net names of the network nodes on the board.

    Node ``n`` is ``/S_n`` where it is a source (shared by both networks),
    else ``/F_n`` in the free and ``/C_n`` in the clamped network; a floating
    node's buffered copy is ``/F_n_BUF`` or ``/C_n_BUF``.
    """

    nodes: tuple
    sources: frozenset
    targets: frozenset
    tokens: MappingProxyType

    def node(self, side: str, n: str) -> str:
        return f"/S_{self.tokens[n]}" if n in self.sources else f"/{side}_{self.tokens[n]}"

    def sense(self, side: str, n: str) -> str:
        """What the difference amplifiers read for ``n``: driven nodes directly, floating ones buffered."""
        if n in self.sources or (side == "C" and n in self.targets):
            return self.node(side, n)
        return f"/{side}_{self.tokens[n]}_BUF"

    def in_order(self, names) -> list:
        return [n for n in self.nodes if n in names]


def _add_connectors_and_supply(b: _Builder, names: _NetNames, n_j3: int) -> None:
    j1 = b.add(connector(2).key, "connector power", "POWER")
    b.connect(VDD, j1, "1")
    b.connect(GND, j1, "2")
    j2 = b.add(connector(3).key, "connector clock", "CLOCK")
    for pin, net in (("1", "/CLK"), ("2", "/CS_N"), ("3", GND)):
        b.connect(net, j2, pin)
    j3 = b.add(connector(n_j3).key, "connector task", "TASK")
    lines = ([names.node("F", n) for n in names.in_order(names.sources)]
             + [names.sense("F", n) for n in names.in_order(names.targets)]
             + [names.node("C", n) for n in names.in_order(names.targets)])
    for i in range(n_j3):
        b.connect(lines[i] if i < len(lines) else GND, j3, str(i + 1))
    b.two("CP", "supply bulk", "10u", VDD, GND)
    b.two("R", "chip select pull-up", si_value(PULLUP_OHMS), "/CS_N", VDD, [("Tolerance", "5%")])
    # VREF = VDD * 10k / (20k + 10k) = VDD * VREF_RATIO, filtered, buffered below.
    b.two("R", "vref divider top", "20k", VDD, "/VREF_DIV", [("Tolerance", "1%")])
    b.two("R", "vref divider bottom", "10k", "/VREF_DIV", GND, [("Tolerance", "1%")])
    b.two("C", "vref filter", "100n", "/VREF_DIV", GND)


def _add_buffers(b: _Builder, pool: _UnitPool, names: _NetNames) -> None:
    def follower(label: str, inp: str, out: str) -> None:
        ref, pins = pool.take(label)
        b.connect(inp, ref, pins["in+"])
        b.connect(out, ref, pins["in-"])
        b.connect(out, ref, pins["out"])

    follower("VREF buffer", "/VREF_DIV", VREF)
    for n in names.in_order(set(names.nodes) - names.sources):
        follower(f"free node {n}", names.node("F", n), names.sense("F", n))
    for n in names.in_order(set(names.nodes) - names.sources - names.targets):
        follower(f"clamped node {n}", names.node("C", n), names.sense("C", n))


def _add_edge(b: _Builder, j: int, u: str, v: str, capacitance: float, names: _NetNames, pools: dict,
              pot_part: str) -> None:
    """Twin pots (``pot_part``, a key of POT_MPN) and capacitors, the two drops, the comparator pair and the XOR
    gate of edge ``j``."""
    label, e = f"{u}|{v}", f"/E{j}"
    eprops = [("spicelearn:edge", label)]
    pot_pins = part("AD5220").units[0]
    for side, name in (("F", "free"), ("C", "clamped")):
        nu, nv = names.node(side, u), names.node(side, v)
        props = eprops + [("spicelearn:network", name)]
        pot = b.add("AD5220", f"edge {label} pot {name}", pot_part, props, mpn=POT_MPN[pot_part][b.package])
        for role, net in (("clk", "/CLK"), ("ud", f"{e}_UP"), ("a", nu), ("w", nu), ("cs", "/CS_N"), ("b", nv)):
            b.connect(net, pot, pot_pins[role])
        b.two("C_edge", f"edge {label} capacitor {name}", si_value(capacitance), nu, nv, props)
        # Difference amplifier, four equal resistors: D = VREF + (sense_u - sense_v).
        d, plus, minus = f"{e}_D{side}", f"{e}_D{side}_P", f"{e}_D{side}_N"
        rprops = props + [("Tolerance", "0.1%")]
        for what, n1, n2 in (("in+", names.sense(side, u), plus), ("ref", plus, VREF),
                             ("in-", names.sense(side, v), minus), ("feedback", minus, d)):
            b.two("R", f"edge {label} {name} diff {what}", si_value(DIFF_OHMS), n1, n2, rprops)
        ref, pins = pools["diff"].take(f"edge {label} {name} drop")
        for role, net in (("in+", plus), ("in-", minus), ("out", d)):
            b.connect(net, ref, pins[role])
        b.two("R", f"edge {label} {name} average", si_value(AVERAGE_OHMS), d, f"{e}_MID", rprops)
    # GT: dv_F > dv_C.  POS: (D_F + D_C) / 2 > VREF, i.e. dv_F > -dv_C.  UP = XOR(GT, POS).
    for what, plus, minus, out in (("gt", f"{e}_DF", f"{e}_DC", f"{e}_GT"), ("pos", f"{e}_MID", VREF, f"{e}_POS")):
        ref, pins = pools["comparator"].take(f"edge {label} {what}")
        for role, net in (("in+", plus), ("in-", minus), ("out", out)):
            b.connect(net, ref, pins[role])
        b.two("R", f"edge {label} {what} pull-up", si_value(PULLUP_OHMS), out, VDD, eprops + [("Tolerance", "5%")])
    ref, pins = pools["xor"].take(f"edge {label} up")
    for role, net in (("a", f"{e}_GT"), ("b", f"{e}_POS"), ("y", f"{e}_UP")):
        b.connect(net, ref, pins[role])


def _tie_spares(b: _Builder, pools: dict) -> None:
    """Spare op-amps follow VREF; spare comparators get + on GND, - on VREF; spare XORs both inputs on GND."""
    def opamp(ref, pins, u):
        spare = f"/SPARE_{ref}_{_UNIT_LETTERS[u]}"
        b.connect(VREF, ref, pins["in+"])
        b.connect(spare, ref, pins["in-"])
        b.connect(spare, ref, pins["out"])

    def comparator(ref, pins, u):
        b.connect(GND, ref, pins["in+"])
        b.connect(VREF, ref, pins["in-"])
        b.may_float(ref, pins["out"])

    def xor(ref, pins, u):
        b.connect(GND, ref, pins["a"])
        b.connect(GND, ref, pins["b"])
        b.may_float(ref, pins["y"])

    for key, tie in (("buffer", opamp), ("diff", opamp), ("comparator", comparator), ("xor", xor)):
        pools[key].finish(tie)


def part_count(n_nodes: int, n_edges: int, n_sources: int, n_targets: int) -> int:
    """Number of components :func:`build_board` places, known before building.

    Parameters
    ----------
    n_nodes, n_edges : int
        Size of the network.
    n_sources, n_targets : int
        Size of the task.

    Returns
    -------
    int
        8 fixed parts (J1, J2, J3, bulk capacitor, ~CS pull-up, VREF divider and
        filter), 16 per edge (twin pots and capacitors, 10 front-end resistors, 2
        pull-ups), the multi-unit chips, and one decoupling capacitor per IC.
        :func:`build_board` checks that its board has exactly this many.
    """
    def chips(key: str, units: int) -> int:
        return -(-units // len(part(key).units))

    floating_free = n_nodes - n_sources
    floating_clamped = floating_free - n_targets
    n_chips = (chips("MCP6004", 1 + floating_free + floating_clamped)     # VREF and node buffers
               + chips("MCP6004", 2 * n_edges) + chips("LM339", 2 * n_edges) + chips("74HC86", n_edges))
    n_pots = 2 * n_edges
    return 8 + 16 * n_edges + n_chips + (n_pots + n_chips)


def build_board(network, task, *, capacitance: float | None = None, package: str = "dip",
                connector_pins: int | None = None, max_parts: int = MAX_PARTS, network_seed: int = 0,
                pot: str = "AD5220-100k") -> Pcb:
    """The printed circuit board of ``network`` trained on ``task``.

    Parameters
    ----------
    network : str, path, graph or CompiledNetwork
    task : str, path, dict or Task
    capacitance : float, optional
        Edge capacitance in farad for every edge, within
        :data:`~spicelearn.kicad.parts.CAPACITANCE_RANGE`; default: the
        network's per-edge ``capacitance`` attributes, else 2.2 uF.
    package : {"dip", "smd"}
        Through-hole (DIP ICs, axial/radial passives) or surface-mount (SOIC,
        0805/1206) parts.
    connector_pins : int, optional
        Pins of the task connector J3 (at most 40); default: as many as the
        task needs. Spare pins are grounded.
    max_parts : int
        Largest board to build (:data:`~spicelearn.kicad.checks.MAX_PARTS`
        by default); about 20 parts per edge.
    network_seed : int
        Seed of random built-in networks.
    pot : str
        The digital potentiometer: ``AD5220-10k``, ``AD5220-50k`` or ``AD5220-100k`` (default, the lab's).

    Returns
    -------
    Pcb

    Raises
    ------
    ConfigError
        For an unknown package, a capacitance no real part has, a task that
        does not fit the connector, or a board of more than ``max_parts`` parts
        (checked before anything is built).
    """
    from ..model.network import load_network
    from ..model.task import load_task

    if pot not in POT_MPN:
        raise ConfigError(f"`pot`={pot!r} is not in the part library; known pots: {sorted(POT_MPN)}")
    net = load_network(network, network_seed=network_seed)
    task = load_task(task, net)
    task.bind(net)
    names = _NetNames(nodes=net.nodes, sources=frozenset(task.sources), targets=frozenset(task.targets),
                      tokens=MappingProxyType(_node_tokens(net.nodes)))
    n_j3 = check_options(package, connector_pins, len(task.sources) + 2 * len(task.targets) + 1)
    caps = capacitance_values(net, capacitance)
    n_parts = part_count(net.n_nodes, net.n_edges, len(names.sources), len(names.targets))
    check_part_count(n_parts, max_parts, net.name)

    b = _Builder(net.name, package)
    _add_connectors_and_supply(b, names, n_j3)
    pools = {"buffer": _UnitPool(b, "MCP6004", "op-amp buffers")}
    _add_buffers(b, pools["buffer"], names)
    pools.update(diff=_UnitPool(b, "MCP6004", "op-amp difference amplifiers"),
                 comparator=_UnitPool(b, "LM339", "comparators"), xor=_UnitPool(b, "74HC86", "xor gates"))
    for j, (u, v) in enumerate(net.edges):
        _add_edge(b, j, u, v, caps[j], names, pools, pot)
    _tie_spares(b, pools)
    for ref, role in b.ics():
        b.two("C", f"decoupling {role}", "100n", VDD, GND, [("spicelearn:decouples", ref)])

    def volts(d):
        return ", ".join(f"{n}={d[n]:g} V" for n in names.in_order(set(d)))

    comments = (
        f"network {net.name}: {net.n_nodes} nodes, {net.n_edges} edges; package {package}",
        f"sources {volts(task.sources)}; targets {volts(task.targets)}",
        "rule xor: UP = XOR(dv_F > dv_C, dv_F > -dv_C), dv = v_u - v_v; UP raises R_WB",
        f"VREF = VDD/3; drops |dv| <= {SUPPLY_VOLTS * VREF_RATIO:.3g} V; node voltages 0..{SUPPLY_VOLTS:g} V",
    )
    pcb = b.pcb(comments)
    if len(pcb.components) != n_parts:
        raise RuntimeError(f"internal error: built {len(pcb.components)} parts, part_count() says {n_parts}")
    return pcb
