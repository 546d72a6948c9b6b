"""The model: networks, tasks, the hardware design, boards (one realisation of a design), learning rules."""
