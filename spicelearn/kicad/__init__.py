"""KiCad netlist and bill of materials of the learning board: parts, design, checks, writers."""
