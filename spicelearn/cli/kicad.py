"""``spicelearn export-kicad``: the KiCad netlist and BOM of the learning board."""

from __future__ import annotations

import sys
from collections import Counter

from ..kicad.checks import MAX_PARTS, NOTE_PARTS
from ..kicad.parts import CAPACITANCE_RANGE, MAX_CONNECTOR_PINS, PACKAGES

__all__ = ["register"]


def _cmd_export(args) -> int:
    from ..files import check_target
    from ..kicad.checks import power_budget, size_notes, task_voltage_notes
    from ..kicad.writers import export_kicad
    from ..model.network import load_network
    from ..model.task import load_task

    check_target(args.out, "--out")  # before the board is built
    net = load_network(args.network, network_seed=args.network_seed)
    task = load_task(args.task, net)
    pcb, npath, bpath = export_kicad(net, task, args.out, capacitance=args.capacitance, package=args.package,
                                     connector_pins=args.connector_pins, max_parts=args.max_parts)
    counts = Counter(c.part for c in pcb.components)
    summary = ", ".join(f"{n} x {k}" for k, n in sorted(counts.items()))
    print(f"wrote {npath} ({len(pcb.components)} components, {len(pcb.nets)} nets: {summary})")
    print(f"wrote {bpath}")
    print("5 V supply, worst case: {total:.1f} mA (ICs {ics:.1f}, pull-ups {pullups:.1f}, "
          "front end {front_end:.1f})".format(**power_budget(pcb)))
    for note in size_notes(len(pcb.components)) + task_voltage_notes(task):
        print(f"spicelearn: note: {note}", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    """Add ``spicelearn export-kicad``."""
    p = subparsers.add_parser(
        "export-kicad", help="write the KiCad netlist and BOM of the learning board",
        description="Write the learning board of NETWORK and TASK as a KiCad netlist (s-expression export "
                    "format, KiCad 6+: PCB editor > File > Import > Netlist) and its bill of materials as "
                    "<stem>_bom.csv in the same folder as the netlist.")
    p.add_argument("network", metavar="NETWORK", help="GraphML file or built-in: lab16, delaunay64")
    p.add_argument("--task", default="default", metavar="TASK",
                   help="JSON file, random:MS,MT,SEED, or 'default' (lab16's own task)")
    p.add_argument("--network-seed", type=int, default=0, help="seed of random built-in networks")
    p.add_argument("--capacitance", type=float, default=None, metavar="FARAD",
                   help=f"edge capacitance, {CAPACITANCE_RANGE[0]:g}..{CAPACITANCE_RANGE[1]:g} "
                        "(default: the network's per-edge values, else 2.2e-6)")
    p.add_argument("--package", default="dip", metavar="STYLE",
                   help=f"part packages: {' or '.join(PACKAGES)} (default dip: through-hole)")
    p.add_argument("--connector-pins", type=int, default=None, metavar="N",
                   help=f"pins of the task connector J3, at most {MAX_CONNECTOR_PINS} "
                        "(default: sources + 2 x targets + 1)")
    p.add_argument("--max-parts", type=int, default=MAX_PARTS, metavar="N",
                   help=f"refuse a board of more than N parts (default {MAX_PARTS}, about 1,000 edges; "
                        f"boards over {NOTE_PARTS} get a note)")
    p.add_argument("-o", "--out", required=True, metavar="BOARD.net",
                   help="netlist path; the BOM is written beside it as <stem>_bom.csv")
    p.set_defaults(func=_cmd_export)
