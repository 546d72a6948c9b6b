"""KiCad netlist and BOM of the learning board, checked through an independent parser (kinparse).

The pinouts below are typed in again from the datasheets, independently of
spicelearn/kicad/parts.py, so that a wrong pin number there fails here.
"""

import csv
import errno
import functools
import importlib
import io
import json
import math
import os
import re
import uuid
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from spicelearn.cli import main
from spicelearn.errors import ConfigError
from spicelearn.kicad import writers
from spicelearn.kicad.checks import MAX_PARTS, NOTE_PARTS, power_budget, task_voltage_notes
from spicelearn.kicad.design import build_board, part_count
from spicelearn.kicad.parts import CAPACITANCE_RANGE, parse_si, si_value
from spicelearn.kicad.writers import bom_text, netlist_text
from spicelearn.model.generators import square_lattice
from spicelearn.model.network import load_network
from spicelearn.model.rules import xor_legacy_rule, xor_rule
from spicelearn.model.task import Task, load_task

#: ``make test-kicad`` sets this: a missing kinparse or pcbnew then fails the KiCad test instead of skipping it.
REQUIRE_KICAD = os.environ.get("SPICELEARN_REQUIRE_KICAD") == "1"


def _import_or_skip(module):
    return importlib.import_module(module) if REQUIRE_KICAD else pytest.importorskip(module)


kinparse = _import_or_skip("kinparse")
#: kinparse takes seconds per netlist (pyparsing); the tests parse each text once.
parse_netlist = functools.lru_cache(maxsize=None)(kinparse.parse_netlist)

ROOT = Path(__file__).resolve().parent.parent

# Datasheet facts: pin count, supply pins, and per unit the (in+, in-, out) or (a, b, y) pins.
OPAMP_UNITS = [("3", "2", "1"), ("5", "6", "7"), ("10", "9", "8"), ("12", "13", "14")]        # MCP6004
COMPARATOR_UNITS = [("5", "4", "2"), ("7", "6", "1"), ("9", "8", "14"), ("11", "10", "13")]   # LM339
XOR_UNITS = [("1", "2", "3"), ("4", "5", "6"), ("9", "10", "8"), ("12", "13", "11")]           # 74HC86
POWER = {"AD5220": {"7": "+5V", "4": "GND"}, "MCP6004": {"4": "+5V", "11": "GND"},
         "LM339": {"3": "+5V", "12": "GND"}, "74HC86": {"14": "+5V", "7": "GND"}}
POT = {"CLK": "1", "UD": "2", "A": "3", "W": "5", "CS": "6", "B": "8"}                         # AD5220
PIN_COUNT = {"AD5220": 8, "MCP6004": 14, "LM339": 14, "74HC86": 14, "R": 2, "C": 2, "C_Polarized": 2}
KICAD6_LIBRARIES = {"Package_DIP", "Package_SO", "Resistor_THT", "Resistor_SMD", "Capacitor_THT",
                    "Capacitor_SMD", "Connector_PinHeader_2.54mm"}


def square_with_diagonal():
    """4 nodes, 5 edges: an odd edge count leaves spare comparator and XOR units to tie."""
    g = nx.Graph(name="sq5")
    g.add_edges_from([("a", "b"), ("b", "c"), ("c", "d"), ("d", "a"), ("a", "c")])
    return g


SQ5_TASK = {"sources": {"b": 0.0, "d": 1.0}, "targets": {"a": 0.3}}  # no edge joins two sources


def board_sources(task, net):
    return set(load_task(task, net).sources)


def board_targets(task, net):
    return set(load_task(task, net).targets)


class Parsed:
    """The netlist as kinparse reads it: components by reference, nets, pin -> net."""

    def __init__(self, text):
        nl = parse_netlist(text)
        self.parts = {p.ref: p for p in nl.parts}
        assert len(self.parts) == len(nl.parts), "duplicate references"
        self.symbol = {p.ref: p.name for p in nl.parts}
        self.props = {p.ref: {q.name: q.value for q in p.properties} for p in nl.parts}
        self.nets = {}
        self.codes = []
        for n in nl.nets:
            self.codes.append(int(n.code))
            self.nets[n.name] = [(x.ref, x.num) for x in n.pins]
        assert len(self.nets) == len(nl.nets), "duplicate net names"
        self.pin_net = {}
        self.twice = []
        for name, nodes in self.nets.items():
            for rp in nodes:
                if rp in self.pin_net:
                    self.twice.append(rp)
                self.pin_net[rp] = name

    def refs(self, symbol):
        return sorted((r for r, s in self.symbol.items() if s == symbol), key=lambda r: int(r[1:]))

    def net(self, ref, pin):
        return self.pin_net[ref, pin]

    def pots(self):
        """{(edge label, 'free'|'clamped'): ref}."""
        return {(self.props[r]["spicelearn:edge"], self.props[r]["spicelearn:network"]): r for r in self.refs("AD5220")}

    def node_nets(self, network, side):
        """Node id -> net of the pot terminals in network ``side``; checks the pots draw the network graph."""
        out = {}
        for (label, s), ref in self.pots().items():
            if s != side:
                continue
            u, v = label.split("|")
            assert self.net(ref, POT["A"]) == self.net(ref, POT["W"]), "rheostat: A tied to W"
            for node, pin in ((u, POT["W"]), (v, POT["B"])):
                assert out.setdefault(node, self.net(ref, pin)) == self.net(ref, pin), f"node {node} split"
        assert sorted(out) == sorted(network.nodes)
        assert len(set(out.values())) == network.n_nodes, "two nodes merged"
        return out


@pytest.fixture(scope="module", params=[pytest.param("lab16", marks=pytest.mark.slow),
                                        pytest.param("sq5", marks=pytest.mark.slow)])
def case(request):
    """A board and its netlist read back by kinparse (lab16: ~30 s, sq5: ~12 s of kinparse; `make test-slow` only;
    the netlist's text is checked in the default suite by the other tests)."""
    if request.param == "lab16":
        net, task = load_network("lab16"), "default"
    else:
        net, task = load_network(square_with_diagonal()), SQ5_TASK
    board = build_board(net, task)
    text = netlist_text(board)
    return net, task, board, text, Parsed(text)


def test_every_component_and_net_reads_back(case):
    net, task, board, text, p = case
    assert len(p.parts) == len(board.components) and len(p.nets) == len(board.nets)
    assert sorted(p.codes) == list(range(1, len(p.nets) + 1))
    stamps = [p.parts[r].tstamps for r in p.parts]
    assert len(set(stamps)) == len(stamps)
    for r, comp in p.parts.items():
        assert re.fullmatch(r"[A-Z]+[0-9]+", r)
        assert comp.value
        lib, _, name = comp.footprint.partition(":")
        assert lib in KICAD6_LIBRARIES and name, comp.footprint
        assert uuid.UUID(comp.tstamps)
    assert not p.twice, f"pins on two nets: {p.twice[:5]}"


def test_part_count_per_edge(case):
    net, task, board, text, p = case
    per_edge = {}
    for ref, props in p.props.items():
        if "spicelearn:edge" in props:
            per_edge.setdefault(props["spicelearn:edge"], []).append(p.symbol[ref])
    assert sorted(per_edge) == sorted(net.edge_labels)
    for label, symbols in per_edge.items():
        # 2 pots, 2 edge capacitors, 2 x (4 difference-amplifier + 1 averaging) resistors, 2 pull-ups.
        assert sorted(symbols) == sorted(["AD5220"] * 2 + ["C"] * 2 + ["R"] * 12), label
    E, N, M_S, M_T = net.n_edges, net.n_nodes, len(board_sources(task, net)), len(board_targets(task, net))
    n_buffers = 1 + (N - M_S) + (N - M_S - M_T)  # VREF, floating free nodes, floating clamped nodes
    assert len(p.refs("LM339")) == math.ceil(2 * E / 4)
    assert len(p.refs("74HC86")) == math.ceil(E / 4)
    assert len(p.refs("MCP6004")) == math.ceil(2 * E / 4) + math.ceil(n_buffers / 4)
    edge_caps = [r for r in p.refs("C") if "spicelearn:edge" in p.props[r]]
    assert {p.parts[r].value for r in edge_caps} == {"2.2u"}


def test_every_pin_connected_once_only_spare_outputs_float(case):
    net, task, board, text, p = case
    spare_outputs = set()
    for ref in p.refs("LM339"):
        spare_outputs |= {(ref, out) for _, _, out in COMPARATOR_UNITS}
    for ref in p.refs("74HC86"):
        spare_outputs |= {(ref, y) for _, _, y in XOR_UNITS}
    n_float = 0
    for ref, symbol in p.symbol.items():
        count = int(symbol[len("Conn_01x"):]) if symbol.startswith("Conn_01x") else PIN_COUNT[symbol]
        pins = {pin for (r, pin) in p.pin_net if r == ref}
        assert pins == {str(i) for i in range(1, count + 1)}, f"{ref} ({symbol}) pins {sorted(pins)}"
    for name, nodes in p.nets.items():
        if len(nodes) == 1:
            n_float += 1
            assert nodes[0] in spare_outputs, f"net {name} holds a lone non-output pin {nodes[0]}"
            assert name.startswith("unconnected-")
    E = net.n_edges
    assert n_float == (-2 * E) % 4 + (-E) % 4  # spare comparator and XOR outputs


def test_power_pins_and_decoupling(case):
    net, task, board, text, p = case
    n_ics = 0
    for symbol, pins in POWER.items():
        for ref in p.refs(symbol):
            n_ics += 1
            for pin, rail in pins.items():
                assert p.net(ref, pin) == rail, f"{ref} pin {pin}"
    decoupling = [r for r in p.refs("C") if {p.net(r, "1"), p.net(r, "2")} == {"+5V", "GND"}
                  and p.parts[r].value == "100n"]
    assert len(decoupling) == n_ics
    assert p.net("J1", "1") == "+5V" and p.net("J1", "2") == "GND"


def test_pots_share_clock_chip_select_and_their_edge_xor(case):
    net, task, board, text, p = case
    pots = p.pots()
    clk = {p.net(r, POT["CLK"]) for r in pots.values()}
    cs = {p.net(r, POT["CS"]) for r in pots.values()}
    assert clk == {p.net("J2", "1")} and cs == {p.net("J2", "2")}
    xor_outputs = {(ref, y) for ref in p.refs("74HC86") for _, _, y in XOR_UNITS}
    ud_nets = set()
    for label in net.edge_labels:
        free, clamped = pots[label, "free"], pots[label, "clamped"]
        ud = p.net(free, POT["UD"])
        assert p.net(clamped, POT["UD"]) == ud
        drivers = [rp for rp in p.nets[ud] if rp not in {(free, POT["UD"]), (clamped, POT["UD"])}]
        assert len(drivers) == 1 and drivers[0] in xor_outputs, (label, p.nets[ud])
        ud_nets.add(ud)
    assert len(ud_nets) == net.n_edges


def test_free_and_clamped_share_only_sources(case):
    net, task, board, text, p = case
    free, clamped = p.node_nets(net, "free"), p.node_nets(net, "clamped")
    sources = board_sources(task, net)
    shared = set(free.values()) & set(clamped.values())
    assert shared == {free[s] for s in sources} == {clamped[s] for s in sources}
    # The edge capacitors sit across the pots, each in its own network.
    for ref in p.refs("C"):
        props = p.props[ref]
        if "spicelearn:edge" in props:
            u, v = props["spicelearn:edge"].split("|")
            nodes = free if props["spicelearn:network"] == "free" else clamped
            assert {p.net(ref, "1"), p.net(ref, "2")} == {nodes[u], nodes[v]}


def test_task_connector(case):
    net, task, board, text, p = case
    free, clamped = p.node_nets(net, "free"), p.node_nets(net, "clamped")
    sources = [n for n in net.nodes if n in board_sources(task, net)]
    targets = [n for n in net.nodes if n in board_targets(task, net)]
    j3 = [p.net("J3", str(i + 1)) for i in range(len(sources) + 2 * len(targets) + 1)]
    assert j3[:len(sources)] == [free[s] for s in sources]
    reads = j3[len(sources):len(sources) + len(targets)]
    for t, read in zip(targets, reads):
        # The free target is read through a unity buffer: op-amp output = in-, in+ = the node.
        ref, unit = next((r, u) for r in p.refs("MCP6004") for u in OPAMP_UNITS if p.net(r, u[2]) == read)
        assert p.net(ref, unit[1]) == read and p.net(ref, unit[0]) == free[t]
    assert j3[len(sources) + len(targets):-1] == [clamped[t] for t in targets]
    assert j3[-1] == "GND"


def solve_front_end(p, net, v_free, v_clamped):
    """Ideal-op-amp DC solution of the front end; returns net -> volts and the UP state of each edge."""
    free, clamped = p.node_nets(net, "free"), p.node_nets(net, "clamped")
    fixed = {"GND": 0.0, "+5V": 5.0}
    for nodes, v in ((free, v_free), (clamped, v_clamped)):
        for n, name in nodes.items():
            assert fixed.setdefault(name, v[n]) == v[n]
    resistors = [(p.net(r, "1"), p.net(r, "2"), float(p.parts[r].value.replace("k", "e3")))
                 for r in p.refs("R")]
    opamps = [tuple(p.net(r, pin) for pin in unit) for r in p.refs("MCP6004") for unit in OPAMP_UNITS]
    unknown = sorted(({n for a, b, _ in resistors for n in (a, b)} | {n for u in opamps for n in u}) - set(fixed))
    idx = {n: i for i, n in enumerate(unknown)}
    A, rhs = np.zeros((len(unknown), len(unknown))), np.zeros(len(unknown))
    for a, b, r in resistors:
        for x, y in ((a, b), (b, a)):
            if x in idx:
                A[idx[x], idx[x]] += 1 / r
                if y in idx:
                    A[idx[x], idx[y]] -= 1 / r
                else:
                    rhs[idx[x]] += fixed[y] / r
    for plus, minus, out in opamps:  # the output's KCL row becomes the virtual short v+ = v-
        row = idx[out]
        A[row], rhs[row] = 0.0, 0.0
        for n, sign in ((plus, 1.0), (minus, -1.0)):
            if n in idx:
                A[row, idx[n]] += sign
            else:
                rhs[row] -= sign * fixed[n]
    volts = dict(fixed)
    volts.update(zip(unknown, np.linalg.solve(A, rhs)))
    high = {}
    for ref in p.refs("LM339"):
        for plus, minus, out in COMPARATOR_UNITS:
            high[p.net(ref, out)] = volts[p.net(ref, plus)] > volts[p.net(ref, minus)]
    up = {}
    for ref in p.refs("74HC86"):
        for a, b, y in XOR_UNITS:
            na, nb = p.net(ref, a), p.net(ref, b)
            if na != "GND":
                up[p.net(ref, y)] = high[na] ^ high[nb]
    pots = p.pots()
    return volts, np.array([up[p.net(pots[label, "free"], POT["UD"])] for label in net.edge_labels])


def test_front_end_implements_the_xor_rule(case):
    """Solve the board's front end for random node voltages: UP must be DESIGN.md's `xor` rule."""
    net, task, board, text, p = case
    rng = np.random.default_rng(5)
    src = board_sources(task, net)
    B = net.incidence
    differs_from_legacy = False
    for _ in range(12):
        vf = rng.uniform(0.2, 1.4, net.n_nodes)
        vc = np.where([n in src for n in net.nodes], vf, vf + rng.normal(0, 0.3, net.n_nodes))
        volts, up = solve_front_end(p, net, dict(zip(net.nodes, vf)), dict(zip(net.nodes, vc)))
        assert volts["/VREF"] == pytest.approx(5 / 3)
        dv_f, dv_c = B @ vf, B @ vc
        np.testing.assert_array_equal(up, xor_rule(dv_f, dv_c))
        np.testing.assert_array_equal(up, np.abs(dv_c) > np.abs(dv_f))
        differs_from_legacy |= bool(np.any(up != xor_legacy_rule(dv_f, dv_c)))
    assert differs_from_legacy


def test_output_is_deterministic_and_stamps_follow_roles():
    a = build_board("lab16", "default")
    assert netlist_text(a) == netlist_text(build_board("lab16", "default"))
    b = build_board("lab16", "default", package="smd", capacitance=10e-6)
    assert [c.tstamp for c in a.components] == [c.tstamp for c in b.components]
    assert {c.footprint.split(":")[0] for c in b.components if c.part == "MCP6004"} == {"Package_SO"}
    assert {c.value for c in b.components if c.part == "C_edge"} == {"10u"}
    other = build_board(load_network(square_with_diagonal()), SQ5_TASK)
    assert not {c.tstamp for c in a.components} & {c.tstamp for c in other.components}


def test_committed_lab16_files_are_current():
    board = build_board("lab16", "default")
    assert (ROOT / "netlists" / "lab16.net").read_text() == netlist_text(board), \
        "regenerate: spicelearn export-kicad lab16 -o netlists/lab16.net"
    assert (ROOT / "netlists" / "lab16_bom.csv").read_text() == bom_text(board)


def test_bom_groups_identical_parts():
    board = build_board("lab16", "default")
    rows = list(csv.DictReader(io.StringIO(bom_text(board))))
    refs = [r for row in rows for r in row["References"].split()]
    assert sorted(refs) == sorted(c.ref for c in board.components)
    assert sum(int(row["Quantity"]) for row in rows) == len(board.components)
    keys = [(row["Value"], row["Tolerance"], row["Footprint"], row["MPN"]) for row in rows]
    assert len(set(keys)) == len(keys)
    by_value = {row["MPN"]: row for row in rows if row["MPN"]}
    assert int(by_value["AD5220BN100"]["Quantity"]) == 32
    assert int(by_value["LM339N"]["Quantity"]) == 8 and int(by_value["SN74HC86N"]["Quantity"]) == 4
    assert int(next(r for r in rows if r["Value"] == "100k")["Quantity"]) == 16 * 8


def test_cli_writes_netlist_and_bom(tmp_path, capsys):
    out = tmp_path / "board.net"
    assert main(["export-kicad", "lab16", "--task", "default", "-o", str(out)]) == 0
    board = build_board("lab16", "default")
    assert out.read_text() == netlist_text(board)
    assert (tmp_path / "board_bom.csv").read_text() == bom_text(board)
    assert "344 components" in capsys.readouterr().out


@pytest.mark.parametrize("kwargs, match", [
    (dict(package="qfn"), r"`package` must be one of \('dip', 'smd'\), got 'qfn'"),
    (dict(connector_pins=3), r"`connector_pins`=3 is too small for this task: J3 needs 7 pins"),
    (dict(connector_pins=41), r"`connector_pins` must be an integer in 1..40"),
    (dict(capacitance=-1e-6), r"`capacitance` must be finite and > 0"),
    (dict(capacitance=2.0), r"`capacitance`=2.0 is outside 1pF\.\.1F"),
    (dict(max_parts=0), r"`max_parts` must be a positive integer, got 0"),
    (dict(max_parts=343), r"network 'lab16' would have 344 parts, more than `max_parts`=343"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build_board("lab16", "default", **kwargs)


def test_task_too_large_for_the_connector():
    with pytest.raises(ConfigError, match=r"needs 45 pins on the task connector J3.*largest 1-row pin header"):
        build_board("delaunay64", "random:20,12,0")


def test_spare_connector_pins_are_grounded():
    board = build_board("lab16", "default", connector_pins=10)
    j3 = {pin: name for name, nodes in board.nets for ref, pin in nodes if ref == "J3"}
    assert [j3[str(i)] for i in range(7, 11)] == ["GND"] * 4


def test_cli_bad_option_is_one_line_error(tmp_path, capsys):
    out = tmp_path / "x.net"
    assert main(["export-kicad", "lab16", "--package", "bga", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "`package` must be one of" in err and "Traceback" not in err
    assert not out.exists()


def test_si_values():
    values = (2.2e-6, 1e-7, 1e5, 4.7e-12, 999.96e-9, 10e3, 0.5)
    assert [si_value(x) for x in values] == ["2.2u", "100n", "100k", "4.7p", "1u", "10k", "500m"]
    np.testing.assert_allclose([parse_si(si_value(x)) for x in values], values, rtol=1e-3)


def test_si_values_never_show_an_exponent_in_the_capacitance_range():
    lo, hi = CAPACITANCE_RANGE
    values = np.concatenate([np.geomspace(lo, hi, 487), [lo, hi, 0.99949e-12, 999.96e-3, 1e9, 4.7e-15]])
    texts = [si_value(x) for x in values]
    bad = [t for t in texts if not re.fullmatch(r"[0-9]+(\.[0-9]+)?[fpnumkMG]?", t)]
    assert not bad, bad[:5]
    np.testing.assert_allclose([parse_si(t) for t in texts], values, rtol=5e-3)


def test_power_budget_of_lab16():
    """32 pots x 40 uA, 12 MCP6004 x 4 x 175 uA, 8 LM339 x 2 mA, 4 74HC86 x 20 uA; 33 pull-ups of 10k and
    the 20k divider top at 5 V; 16 edges x 2 VREF over the 2 x 10k averaging pair."""
    budget = power_budget(build_board("lab16", "default"))
    assert budget["ics"] == pytest.approx(32 * 0.04 + 12 * 0.7 + 8 * 2.0 + 4 * 0.02)
    assert budget["pullups"] == pytest.approx(33 * 0.5 + 0.25)
    assert budget["front_end"] == pytest.approx(16 * (10 / 3) / 20e3 * 1e3)
    assert budget["total"] == pytest.approx(budget["ics"] + budget["pullups"] + budget["front_end"])


def test_task_voltage_notes():
    assert task_voltage_notes(load_task("default", load_network("lab16"))) == []
    notes = task_voltage_notes(Task({"0": -1.0, "8": 1.5}, {"4": 0.2}))
    assert any("add +1 V" in n for n in notes) and any("spread over 2.5 V" in n for n in notes)


def test_kicad_loads_the_netlist_into_a_board(tmp_path):
    """KiCad's own Python module places every footprint and assigns every pad its net."""
    pcbnew = _import_or_skip("pcbnew")
    root = next((d for d in (os.environ.get("KICAD6_FOOTPRINT_DIR"), os.environ.get("KICAD_FOOTPRINT_DIR"),
                             "/usr/share/kicad/footprints") if d and os.path.isdir(d)), None)
    assert root, "KiCad's footprint libraries are missing: apt-get install kicad-footprints"
    nl = parse_netlist(netlist_text(build_board(load_network(square_with_diagonal()), SQ5_TASK)))
    board = pcbnew.BOARD()
    loaded = {}  # each footprint read once (a read scans its library: ~0.3 s), then duplicated with fresh UUIDs
    for comp in nl.parts:
        if comp.footprint not in loaded:
            lib, name = comp.footprint.split(":")
            loaded[comp.footprint] = pcbnew.FootprintLoad(os.path.join(root, lib + ".pretty"), name)
            assert loaded[comp.footprint] is not None, comp.footprint
        fp = loaded[comp.footprint].Duplicate().Cast()
        fp.SetReference(comp.ref)
        fp.SetValue(comp.value)
        board.Add(fp)
    for n in nl.nets:
        info = pcbnew.NETINFO_ITEM(board, n.name)
        board.Add(info)
        for node in n.pins:
            fp = board.FindFootprintByReference(node.ref)
            find = getattr(fp, "FindPadByNumber", None) or fp.FindPadByName
            pad = find(node.num)
            assert pad is not None, f"{node.ref} has no pad {node.num}"
            pad.SetNet(info)
    path = str(tmp_path / "board.kicad_pcb")
    pcbnew.SaveBoard(path, board)
    reread = pcbnew.LoadBoard(path)
    assert sorted(fp.GetReference() for fp in reread.GetFootprints()) == sorted(p.ref for p in nl.parts)
    names = {pad.GetNetname() for fp in reread.GetFootprints() for pad in fp.Pads()}
    assert names == {n.name for n in nl.nets}


@pytest.mark.slow  # kinparse takes ~5 s to read even this small board
def test_odd_node_ids_give_safe_distinct_net_names():
    g = nx.Graph(name="odd")
    g.add_edges_from([("n 1", "n_1"), ("n_1", 'q"x'), ('q"x', "n 1")])
    board = build_board(load_network(g), {"sources": {"n 1": 0.0}, "targets": {'q"x': 0.5}})
    names = [name for name, _ in board.nets]
    assert {"/S_N0", "/F_N1", "/C_N1", "/F_N2_BUF", "/C_N2"} <= set(names)
    assert all(re.fullmatch(r"[A-Za-z0-9_.+/()-]+", n) for n in names)
    p = Parsed(netlist_text(board))
    assert len(p.parts) == len(board.components)


def test_part_count_is_known_before_building(case):
    net, task, board, text, p = case
    bound = load_task(task, net)
    assert part_count(net.n_nodes, net.n_edges, len(bound.sources), len(bound.targets)) == len(board.components)
    assert len(build_board(net, task, max_parts=len(board.components)).components) == len(board.components)


@pytest.mark.parametrize("where", ["netlist_text", "bom_text"])
def test_interrupted_export_leaves_the_old_files(tmp_path, monkeypatch, capsys, where):
    """Ctrl-C while the texts are built: the old netlist and BOM stay whole, no temporary file is left."""
    out, bom = tmp_path / "board.net", tmp_path / "board_bom.csv"
    out.write_text("old netlist\n")
    bom.write_text("old bom\n")

    def interrupt(pcb):
        raise KeyboardInterrupt

    monkeypatch.setattr(writers, where, interrupt)
    assert main(["export-kicad", "lab16", "-o", str(out)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert out.read_text() == "old netlist\n" and bom.read_text() == "old bom\n"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["board.net", "board_bom.csv"]


def test_full_disk_leaves_the_old_netlist(tmp_path, monkeypatch, capsys):
    out = tmp_path / "board.net"
    out.write_text("old netlist\n")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    assert main(["export-kicad", "lab16", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spicelearn: error: `path`=") and "the disk is full" in err and err.count("\n") == 1
    assert out.read_text() == "old netlist\n"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["board.net"]


def test_bom_path_that_is_a_folder_fails_before_building(tmp_path, capsys):
    (tmp_path / "board_bom.csv").mkdir()
    assert main(["export-kicad", "lab16", "-o", str(tmp_path / "board.net")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spicelearn: error: `BOM`=") and "exists and is a folder" in err
    assert not (tmp_path / "board.net").exists()


def lattice_files(tmp_path, rows, cols):
    """A GraphML square lattice and a JSON task (corners driven, the middle node a target)."""
    graphml, task = tmp_path / f"lattice{rows}x{cols}.graphml", tmp_path / "task.json"
    nx.write_graphml(nx.Graph(square_lattice(rows, cols).edges), graphml)  # GraphML cannot store the `pos` tuples
    n = rows * cols
    task.write_text(json.dumps({"sources": {"0": 0.0, str(n - 1): 1.0}, "targets": {str(n // 2): 0.5}}))
    return str(graphml), str(task)


def test_large_board_gets_a_note_and_the_limit_can_be_lowered(tmp_path, capsys):
    graphml, task = lattice_files(tmp_path, 12, 12)  # 264 edges: 5,562 parts
    n_parts = part_count(144, 264, 2, 1)
    assert NOTE_PARTS < n_parts <= MAX_PARTS
    out = tmp_path / "big.net"
    assert main(["export-kicad", graphml, "--task", task, "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"({n_parts} components" in captured.out
    notes = [line for line in captured.err.splitlines() if "parts" in line]
    assert notes == [f"spicelearn: note: the board has {n_parts:,} parts (more than {NOTE_PARTS:,}): KiCad's PCB "
                     "editor is slow to import and place a netlist this large; a smaller network gives a smaller board"]
    assert main(["export-kicad", graphml, "--task", task, "--max-parts", "5000", "-o", str(tmp_path / "x.net")]) == 2
    err = capsys.readouterr().err
    assert err == (f"spicelearn: error: the board of network 'lattice12x12' would have {n_parts:,} parts, more than "
                   "`max_parts`=5000; raise `max_parts` (command line: --max-parts N) to export it anyway\n")
    assert not (tmp_path / "x.net").exists()


def test_board_beyond_the_limit_is_refused_before_building(tmp_path, capsys):
    graphml, task = lattice_files(tmp_path, 24, 24)  # 1,104 edges: 23,214 parts
    out = tmp_path / "huge.net"
    assert main(["export-kicad", graphml, "--task", task, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spicelearn: error: the board of network 'lattice24x24' would have 23,214 parts, "
                          f"more than `max_parts`={MAX_PARTS}") and "--max-parts N" in err and err.count("\n") == 1
    assert not out.exists() and not (tmp_path / "huge_bom.csv").exists()


@pytest.mark.parametrize("farad", ["1e-30", "0.5e-12", "2", "1e3"])
def test_cli_refuses_capacitances_no_part_has(tmp_path, capsys, farad):
    out = tmp_path / "x.net"
    assert main(["export-kicad", "lab16", "--capacitance", farad, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (f"spicelearn: error: `capacitance`={float(farad)!r} is outside 1pF..1F (1e-12..1 farad), the range "
                   "of real capacitors; give the edge capacitance in farad, e.g. 2.2e-06\n")
    assert not out.exists()


def test_cli_accepts_the_ends_of_the_capacitance_range(tmp_path):
    for farad, value in (("1e-12", "1p"), ("1", "1")):
        out = tmp_path / "x.net"
        assert main(["export-kicad", "lab16", "--capacitance", farad, "-o", str(out)]) == 0
        rows = list(csv.DictReader(io.StringIO((tmp_path / "x_bom.csv").read_text())))
        assert [r["Value"] for r in rows if r["Description"].startswith("Edge capacitor")] == [value]


def test_network_capacitance_outside_the_range_is_refused():
    g = square_with_diagonal()
    nx.set_edge_attributes(g, 2.2e-6, "capacitance")
    g.edges["a", "c"]["capacitance"] = 1e-30
    net = load_network(g)
    with pytest.raises(ConfigError, match=r"edge '.*' of the network has `capacitance`=1e-30 \(1 of 5 edges are "
                                          r"outside 1pF\.\.1F .*--capacitance FARAD"):
        build_board(net, SQ5_TASK)
    assert {c.value for c in build_board(net, SQ5_TASK, capacitance=1e-6).components if c.part == "C_edge"} == {"1u"}
