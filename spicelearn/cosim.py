"""The hardware learning loop (DESIGN.md section 2): twin networks, supervisor, clock.

:func:`train` is the one driver; the engine that computes the transient
between ticks is looked up by name (``exact``; ``ngspice`` in its own module).
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import replace

import numpy as np
import xarray as xr
from threadpoolctl import threadpool_limits

from . import __version__
from .checks import check_steps
from .engines import get_engine
from .errors import ConfigError
from .hardware import Hardware
from .network import CompiledNetwork, load_network
from .progress import Progress
from .rules import comparator_rule
from .task import Task, load_task

__all__ = ["train", "resolve_hardware", "initial_positions", "make_dataset"]

#: Networks up to this many nodes run their linear algebra on one BLAS thread.
SMALL_NETWORK = 256


def resolve_hardware(network: CompiledNetwork, hardware: Hardware) -> Hardware:
    """Per-edge capacitances from the graph's ``capacitance`` attributes win over the default value."""
    if network.capacitance is not None and hardware.capacitance_model == "per_edge" and np.ndim(hardware.capacitance) == 0:
        return replace(hardware, capacitance=tuple(float(c) for c in network.capacitance))
    return hardware


def initial_positions(network: CompiledNetwork, hardware: Hardware, positions=None) -> np.ndarray:
    """Start positions: given, else the graph's ``position`` attributes, else the pots' start."""
    if positions is None:
        positions = network.position if network.position is not None else \
            np.full(network.n_edges, hardware.pot.start)
    return hardware.pot.check_positions(positions, network.n_edges)


def train(network, task, hardware: Hardware | None = None, *, steps: int = 3000, backend="exact",
          seed: int | None = 0, positions=None, progress: bool = False, network_seed: int = 0,
          rule=None) -> xr.Dataset:
    """Train the twin networks with the comparator-XOR rule of the hardware.

    Parameters
    ----------
    network : str, path, networkx.Graph or CompiledNetwork
    task : Task, dict, str (JSON path, ``random:MS,MT,SEED``, ``default``)
    hardware : Hardware, optional
        Defaults to the lab settings (per_edge, c = 2.2 uF, eta = 0.5, R = 1).
    steps : int
        Clock ticks.
    backend : {"exact", "ngspice"} or callable
        Engine of the transient between ticks: a name, or an engine class or factory
        ``(network, task, hardware) -> engine`` (for instance
        ``functools.partial(NgspiceEngine, parallel=False)``).
    seed : int or None
        Seed of the comparator noise.
    positions : array of int, shape (E,), optional
        Start positions (default: graph attributes, else the pots' start).
    progress : bool
        Show a progress bar on stderr for runs longer than a second.
    rule : str or callable, optional
        Override ``hardware.rule``: a rule name, or a function
        ``rule(dv_free, dv_clamped, comparator, rng) -> up`` (bool array, shape (E,)).

    Returns
    -------
    xarray.Dataset
        The run file of DESIGN.md section 4: ``position (step, edge)``,
        ``mse (step)``, ``mse_eq (step)``, ``v_free (step, node)``,
        ``v_clamped (step, node)``, scalar ``mse0``; coordinate ``time (step)``
        in seconds; every parameter in ``attrs``.
    """
    steps = check_steps(steps)
    net = load_network(network, network_seed=network_seed)
    task_obj: Task = load_task(task, net)
    bound = task_obj.bind(net)
    hw = resolve_hardware(net, hardware if hardware is not None else Hardware.from_R(1.0))
    if isinstance(rule, str):
        hw = replace(hw, rule=rule)
    rule_fn = comparator_rule(hw.rule) if rule is None or isinstance(rule, str) else rule
    if not callable(rule_fn):
        raise ConfigError(f"`rule` must be a rule name or a callable, got {rule!r}")
    p = initial_positions(net, hw, positions)
    engine = get_engine(backend)(net, bound, hw)
    backend = backend if isinstance(backend, str) else getattr(engine, "name", type(engine).__name__)
    rng = np.random.default_rng(seed)

    # Small dense linear algebra runs fastest on one BLAS thread (threads only contend at this size).
    blas = threadpool_limits(1, user_api="blas") if net.n_nodes <= SMALL_NETWORK else nullcontext()
    bar = Progress(steps, label=f"train {net.name} ({backend})", enabled=progress)
    try:
        with blas:
            record = _loop(engine, bound, hw, rule_fn, p, steps, rng, bar)
    finally:
        bar.close()
        close = getattr(engine, "close", None)
        if close is not None:
            close()
    return make_dataset(net, task_obj, hw, backend=backend, seed=seed, **record,
                        time=(np.arange(steps) + 1) * hw.period,
                        extra_attrs={"rule": getattr(rule_fn, "__name__", "custom")} if rule_fn is rule else None)


def _loop(engine, bound, hw: Hardware, rule_fn, p: np.ndarray, steps: int, rng, bar: Progress) -> dict:
    """Steps 1-5 of DESIGN.md section 2, ``steps`` times; returns the recorded arrays."""
    net = bound.network
    tgt, V_T, eta = bound.target_index, bound.target_voltage, hw.eta
    eu, ev = net.edge_nodes.T
    position = np.empty((steps, net.n_edges), dtype=np.int16)
    v_free = np.empty((steps, net.n_nodes))
    v_clamped = np.empty((steps, net.n_nodes))
    mse_eq = np.empty(steps)
    state = engine.init(p)
    d0 = V_T - state.v_free[tgt]
    period = hw.period
    for k in range(steps):
        vt = state.v_free[tgt]
        state = engine.relax(state, vt + eta * (V_T - vt), period)  # 1-2: clamps, relaxation
        vf, vc = state.v_free, state.v_clamped
        v_free[k], v_clamped[k] = vf, vc  # 3: record
        up = rule_fn(vf[eu] - vf[ev], vc[eu] - vc[ev], hw.comparator, rng)  # 4: clock tick
        p = hw.pot.step(p, up)
        position[k] = p
        state = engine.set_positions(state, p)
        d = V_T - engine.equilibrium_free(state)[tgt]  # 5: equilibrium error
        mse_eq[k] = d @ d
        if k % 64 == 0:
            bar.update(k)
    bar.update(len(mse_eq))
    mse = np.sum((V_T - v_free[:, tgt]) ** 2, axis=1)
    return dict(position=position, mse=mse, mse_eq=mse_eq, v_free=v_free, v_clamped=v_clamped, mse0=float(d0 @ d0))


def make_dataset(net: CompiledNetwork, task: Task, hw: Hardware | None, *, backend: str, seed, mse, mse_eq,
                 v_free, v_clamped, mse0: float, time, position=None, conductance=None,
                 extra_attrs: dict | None = None) -> xr.Dataset:
    """Assemble the run file of DESIGN.md section 4 (shared by every backend)."""
    steps = len(mse)
    data = {
        "mse": ("step", np.asarray(mse, dtype=float)),
        "mse_eq": ("step", np.asarray(mse_eq, dtype=float)),
        "v_free": (("step", "node"), v_free),
        "v_clamped": (("step", "node"), v_clamped),
        "mse0": ((), float(mse0)),
    }
    if position is not None:
        data["position"] = (("step", "edge"), np.asarray(position).astype(np.int32))
    if conductance is not None:
        data["conductance"] = (("step", "edge"), conductance)
    ds = xr.Dataset(
        data,
        coords={"step": np.arange(steps), "time": ("step", np.asarray(time, dtype=float)),
                "edge": net.edge_labels, "node": list(net.nodes)},
    )
    ds["time"].attrs["units"] = "training steps" if backend in ("ode", "quasistatic") else "s"
    ds["mse"].attrs["long_name"] = "nonequilibrium error sum_T (V_T - v_T^F)^2 after relaxation"
    ds["mse_eq"].attrs["long_name"] = "equilibrium error of the free network after the tick"
    attrs = {"spicelearn_version": __version__, "network": net.name, "backend": backend, "steps": steps,
             "seed": -1 if seed is None else int(seed), "task": json.dumps(task.to_dict())}
    if hw is not None:
        attrs.update(hw.attrs())
    attrs.update(extra_attrs or {})
    ds.attrs.update(attrs)
    return ds
