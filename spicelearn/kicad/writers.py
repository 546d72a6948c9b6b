"""The files of the learning board: KiCad netlist and bill of materials, written atomically.

The netlist is KiCad's s-expression ``export`` format (version "E"), which
KiCad 6 and later read in the PCB editor (File > Import > Netlist); the BOM is
CSV, one row per group of identical parts.
"""

from __future__ import annotations

import csv
import io
import os

from ..files import atomic_write, check_target
from .design import Pcb, build_board, natural_key

__all__ = ["netlist_text", "bom_text", "bom_path", "export_kicad", "BOM_COLUMNS"]


def _q(s: str) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def netlist_text(pcb: Pcb) -> str:
    """The KiCad netlist (s-expression ``export`` format, version "E") of ``pcb``."""
    from .. import __version__

    out = ['(export (version "E")', "  (design", f"    (source {_q(pcb.name)})", '    (date "")',
           f"    (tool {_q('spicelearn ' + __version__)})",
           '    (sheet (number "1") (name "/") (tstamps "/")', "      (title_block",
           f"        (title {_q('spicelearn learning board: ' + pcb.name)})", '        (company "")',
           '        (rev "")', '        (date "")', f"        (source {_q(pcb.name)})"]
    out += [f"        (comment (number {_q(i + 1)}) (value {_q(c)}))" for i, c in enumerate(pcb.comments)]
    out[-1] += ")))"
    out.append("  (components")
    for c in pcb.components:
        pt = c.part_type
        out += [f"    (comp (ref {_q(c.ref)})", f"      (value {_q(c.value)})", f"      (footprint {_q(c.footprint)})",
                f"      (libsource (lib {_q(pt.lib)}) (part {_q(pt.symbol)}) (description {_q(pt.description)}))"]
        out += [f"      (property (name {_q(k)}) (value {_q(v)}))" for k, v in c.properties]
        out += ['      (sheetpath (names "/") (tstamps "/"))', f"      (tstamps {_q(c.tstamp)}))"]
    out[-1] += ")"
    out.append("  (libparts")
    types = {}
    for c in pcb.components:
        types.setdefault((c.part_type.lib, c.part_type.symbol), c.part_type)
    for (lib, symbol), pt in sorted(types.items()):
        out += [f"    (libpart (lib {_q(lib)}) (part {_q(symbol)})", f"      (description {_q(pt.description)})",
                '      (docs "~")', "      (fields",
                f"        (field (name \"Reference\") {_q(pt.prefix)})",
                f"        (field (name \"Value\") {_q(symbol)}))", "      (pins"]
        out += [f"        (pin (num {_q(p.number)}) (name {_q(p.name)}) (type {_q(p.type)}))" for p in pt.pins]
        out[-1] += "))"
    out[-1] += ")"
    out.append("  (nets")
    types_by_ref = {c.ref: c.part_type for c in pcb.components}
    for code, (name, nodes) in enumerate(pcb.nets, start=1):
        out.append(f"    (net (code {_q(code)}) (name {_q(name)})")
        for ref, pin in nodes:
            p = types_by_ref[ref].pin(pin)
            function = f" (pinfunction {_q(p.name)})" if p.name else ""
            out.append(f"      (node (ref {_q(ref)}) (pin {_q(pin)}){function} (pintype {_q(p.type)}))")
        out[-1] += ")"
    out[-1] += "))"
    return "\n".join(out) + "\n"


BOM_COLUMNS = ("References", "Value", "Tolerance", "Footprint", "Manufacturer", "MPN", "Description", "Quantity")


def bom_text(pcb: Pcb) -> str:
    """Bill of materials as CSV: one row per group of identical parts."""
    groups = {}
    for c in pcb.components:
        props = dict(c.properties)
        key = (c.part_type.description, c.value, props.get("Tolerance", ""), c.footprint,
               props.get("Manufacturer", ""), props.get("MPN", ""))
        groups.setdefault(key, []).append(c.ref)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(BOM_COLUMNS)
    for (desc, value, tol, fp, manu, mpn), refs in sorted(groups.items(), key=lambda kv: natural_key(kv[1][0])):
        w.writerow([" ".join(refs), value, tol, fp, manu, mpn, desc, len(refs)])
    return buf.getvalue()


def bom_path(netlist_path) -> str:
    """Where the BOM goes: ``<stem>_bom.csv`` beside the netlist."""
    root, _ = os.path.splitext(os.fspath(netlist_path))
    return root + "_bom.csv"


def export_kicad(network, task, path, **options) -> tuple:
    """Write the netlist to ``path`` and the BOM beside it.

    Parameters
    ----------
    network, task
        As for :func:`~spicelearn.kicad.design.build_board`.
    path : str or os.PathLike
        Netlist path; the BOM goes to :func:`bom_path` of it.
    **options
        Those of :func:`~spicelearn.kicad.design.build_board`.

    Returns
    -------
    tuple
        ``(pcb, netlist_path, bom_path)``.

    Notes
    -----
    Both paths are checked before the board is built, both texts are built
    before either file is written, and each file is replaced atomically
    (:func:`spicelearn.files.atomic_write`): an error, Ctrl-C or a full disk
    leaves an existing netlist and BOM as they were, never empty or partial.
    """
    path = check_target(path, "path")
    bpath = check_target(bom_path(path), "BOM")
    pcb = build_board(network, task, **options)
    netlist, bom = netlist_text(pcb), bom_text(pcb)
    atomic_write(path, netlist, what="path")
    atomic_write(bpath, bom, what="BOM")
    return pcb, path, bpath
