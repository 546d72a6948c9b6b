"""``spicelearn export-kicad``: the KiCad netlist and BOM of the learning board."""

from __future__ import annotations

import sys
from collections import Counter

from ..errors import ConfigError
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
    network, task, capacitance, network_seed, pot = args.network, args.task or "default", args.capacitance, \
        args.network_seed or 0, "AD5220-100k"
    if args.design is not None:
        network, task, capacitance, network_seed, pot = _from_design(args)
    elif network is None:
        raise ConfigError("give NETWORK, or `--design DESIGN.toml`")
    net = load_network(network, network_seed=network_seed)
    task = load_task(task, net)
    pcb, npath, bpath = export_kicad(net, task, args.out, capacitance=capacitance, package=args.package,
                                     connector_pins=args.connector_pins, max_parts=args.max_parts, pot=pot)
    counts = Counter(c.part for c in pcb.components)
    summary = ", ".join(f"{n} x {k}" for k, n in sorted(counts.items()))
    print(f"wrote {npath} ({len(pcb.components)} components, {len(pcb.nets)} nets: {summary})")
    print(f"wrote {bpath}")
    print("5 V supply, worst case: {total:.1f} mA (ICs {ics:.1f}, pull-ups {pullups:.1f}, "
          "front end {front_end:.1f})".format(**power_budget(pcb)))
    for note in size_notes(len(pcb.components)) + task_voltage_notes(task):
        print(f"spicelearn: note: {note}", file=sys.stderr)
    return 0


def _from_design(args) -> tuple:
    """Network, task, capacitance, network seed and pot of the design file; the options may not contradict it."""
    from ..experiments.design import load_design

    d = load_design(args.design)
    o = d.options
    if o["capacitance_model"] not in (None, "per_edge"):
        raise ConfigError(f"design file {args.design!r} is of the global model; a board has per-edge capacitors")
    chosen = {"NETWORK": (args.network, o["network"]), "--task": (args.task, o["task"]),
              "--capacitance": (args.capacitance, o["capacitance"]), "--network-seed": (args.network_seed,
                                                                                         o["network_seed"])}
    for name, (given, designed) in chosen.items():
        if given is not None and given != designed:
            raise ConfigError(f"`{name}`={given!r} contradicts the design file's {designed!r}; omit it (the "
                              "design says what is fabricated)")
    pot = o["pot_part"] or "AD5220-100k"
    if o["r_ab"] is not None and o["pot_part"] is None and o["r_ab"] != 100e3:
        raise ConfigError(f"design file {args.design!r} gives r_ab = {o['r_ab']:g} ohm but no [pot] `part`; name the "
                          "part to fabricate (AD5220-10k, AD5220-50k, AD5220-100k)")
    return o["network"], o["task"], o["capacitance"], o["network_seed"], pot


def register(subparsers) -> None:
    """Add ``spicelearn export-kicad``."""
    p = subparsers.add_parser(
        "export-kicad", help="write the KiCad netlist and BOM of the learning board",
        description="Write the learning board of NETWORK and TASK as a KiCad netlist (s-expression export "
                    "format, KiCad 6+: PCB editor > File > Import > Netlist) and its bill of materials as "
                    "<stem>_bom.csv in the same folder as the netlist.")
    p.add_argument("network", metavar="NETWORK", nargs="?", default=None,
                   help="GraphML file or built-in: lab16, delaunay64 (or give --design)")
    p.add_argument("--design", default=None, metavar="DESIGN.toml",
                   help="take network, task, capacitor value and pot part from a design file (the one `spicelearn "
                        "validate` checked), so that what was validated is what is fabricated")
    p.add_argument("--task", default=None, metavar="TASK",
                   help="JSON file, random:MS,MT,SEED, or 'default' (lab16's own task; the default)")
    p.add_argument("--network-seed", type=int, default=None, help="seed of random built-in networks (default 0)")
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
