"""spicelearn: circuit-level simulation of physical learning in resistor networks."""
__version__ = "0.1.0"
