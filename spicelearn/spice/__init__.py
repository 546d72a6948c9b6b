"""SPICE netlists of the twin networks: the circuit (:mod:`.netlist`) and standalone exports (:mod:`.export`)."""
