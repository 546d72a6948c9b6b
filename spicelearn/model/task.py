"""Allosteric tasks: source voltages in, desired target voltages out.

A task is network-independent data (node ids and volts); :meth:`Task.bind`
checks it against a compiled network and gives index arrays.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType

import numpy as np

from ..checks import check_seed, text_or_path
from ..errors import TaskError
from .network import CompiledNetwork

__all__ = ["Task", "BoundTask", "load_task", "random_task", "bind", "nudge"]


#: Largest task voltage (volt) accepted: far beyond any board's supply, small enough that squared
#: errors stay finite.
MAX_VOLTS = 1e3


def _voltages(mapping, what: str) -> MappingProxyType:
    if not isinstance(mapping, dict) and not hasattr(mapping, "items"):
        raise TaskError(f"task `{what}` must be a mapping node -> volts, got {type(mapping).__name__}")
    out = {}
    for node, value in mapping.items():
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TaskError(f"task `{what}`[{node!r}]={value!r} is not a number of volts; write it as a "
                            "JSON number, e.g. 0.25")
        v = float(value)
        if not math.isfinite(v):
            raise TaskError(f"task `{what}`[{node!r}]={value!r} is not finite; give a finite voltage")
        if abs(v) > MAX_VOLTS:
            raise TaskError(f"task `{what}`[{node!r}]={v:g} V is beyond +/-{MAX_VOLTS:g} V; no board drives "
                            "that (learning is unchanged when all task voltages are scaled by one factor)")
        if str(node) in out:  # (node ids are strings: 0 and "0" are one node)
            raise TaskError(f"task `{what}` names node {str(node)!r} twice (as {node!r} and as another id of the same "
                            "text); give each node once")
        out[str(node)] = v
    return MappingProxyType(out)


@dataclass(frozen=True)
class Task:
    """Sources held at fixed voltages and targets with desired voltages.

    Attributes
    ----------
    sources : mapping str -> float
        Source node ids and their voltages V_S (volts).
    targets : mapping str -> float
        Target node ids and their desired voltages V_T (volts).
    """

    sources: MappingProxyType
    targets: MappingProxyType

    def __init__(self, sources, targets):
        object.__setattr__(self, "sources", _voltages(sources, "sources"))
        object.__setattr__(self, "targets", _voltages(targets, "targets"))
        if not self.sources:
            raise TaskError("task has no `sources`; give at least one driven node")
        if not self.targets:
            raise TaskError("task has no `targets`; give at least one node with a desired voltage")
        both = sorted(set(self.sources) & set(self.targets))
        if both:
            raise TaskError(f"nodes {both} are both source and target; a node can be only one of them")

    def to_dict(self) -> dict:
        return {"sources": dict(self.sources), "targets": dict(self.targets)}

    def to_json(self, path) -> None:
        """Write the task as JSON (the format :func:`load_task` reads), atomically."""
        from ..files import atomic_write

        atomic_write(path, json.dumps(self.to_dict(), indent=2) + "\n", what="path")

    def bind(self, network: CompiledNetwork) -> "BoundTask":
        """Check the task against ``network`` and return index arrays.

        Raises
        ------
        TaskError
            For a node the network does not have, or a part of the network
            that no source drives (its voltages would be undefined).
        """
        if not isinstance(network, CompiledNetwork):
            raise TaskError(f"`network` must be a compiled network (load_network), got {type(network).__name__}")
        idx = network.node_index
        for role, nodes in (("source", self.sources), ("target", self.targets)):
            unknown = [n for n in nodes if n not in idx]
            if unknown:
                sample = ", ".join(network.nodes[:6])
                raise TaskError(
                    f"{role} nodes {unknown} are not in network {network.name!r} "
                    f"(its node ids: {sample}{', ...' if network.n_nodes > 6 else ''})"
                )
        src = np.array([idx[n] for n in self.sources], dtype=int)
        tgt = np.array([idx[n] for n in self.targets], dtype=int)
        driven = set(src.tolist())
        for comp in network.components():
            if not driven.intersection(comp):
                names = [network.nodes[i] for i in comp]
                raise TaskError(
                    f"nodes {names[:8]}{'...' if len(names) > 8 else ''} form a floating island with no "
                    f"driven node: their voltages are undefined; add a source there or remove them"
                )
        return BoundTask(
            task=self, network=network, source_index=src, target_index=tgt,
            source_voltage=np.array(list(self.sources.values())),
            target_voltage=np.array(list(self.targets.values())),
        )


@dataclass(frozen=True, eq=False)
class BoundTask:
    """A task checked against a network.

    Attributes
    ----------
    source_index, target_index : ndarray of int, shapes (M_S,), (M_T,)
    source_voltage, target_voltage : ndarray, shapes (M_S,), (M_T,)
    """

    task: Task
    network: CompiledNetwork
    source_index: np.ndarray
    target_index: np.ndarray
    source_voltage: np.ndarray
    target_voltage: np.ndarray

    def impose(self, v_free, v_clamped, clamp) -> tuple:
        """Copies of twin node voltages (N,) with the sources, and the clamped targets at ``clamp``, imposed."""
        v_free = np.array(v_free, dtype=float)
        v_clamped = np.array(v_clamped, dtype=float)
        clamp = np.array(clamp, dtype=float)
        v_free[self.source_index] = self.source_voltage
        v_clamped[self.source_index] = self.source_voltage
        v_clamped[self.target_index] = clamp
        return v_free, v_clamped, clamp

    # -- the twin node partition (DESIGN.md section 1) ----------------------------
    @cached_property
    def free_floating(self) -> np.ndarray:
        """Nodes that float in the free twin (every node but the sources), sorted, shape (N - M_S,)."""
        driven = np.zeros(self.network.n_nodes, bool)
        driven[self.source_index] = True
        return np.flatnonzero(~driven)

    @cached_property
    def clamped_floating(self) -> np.ndarray:
        """Nodes that float in the clamped twin (neither source nor target), sorted, shape (N - M_S - M_T,)."""
        driven = np.zeros(self.network.n_nodes, bool)
        driven[self.source_index] = True
        driven[self.target_index] = True
        return np.flatnonzero(~driven)

    def driven_voltages(self, clamp=None) -> np.ndarray:
        """Node voltages (N,) that are zero but at the sources (and, given ``clamp`` (M_T,), the clamped targets)."""
        v = np.zeros(self.network.n_nodes)
        v[self.source_index] = self.source_voltage
        if clamp is not None:
            v[self.target_index] = clamp
        return v

    # -- the supervisor -------------------------------------------------------------
    def nudge(self, v_free, eta: float) -> np.ndarray:
        """The clamps the supervisor sets (:func:`nudge`) from free node voltages (..., N), shape (..., M_T)."""
        return nudge(np.asarray(v_free)[..., self.target_index], self.target_voltage, eta)

    def mse(self, v: np.ndarray) -> np.ndarray:
        """Squared target error ``sum_T (V_T - v_T)^2`` of node voltages ``v`` (..., N)."""
        return np.sum((self.target_voltage - np.asarray(v)[..., self.target_index]) ** 2, axis=-1)


def nudge(v_target, target_voltage, eta: float) -> np.ndarray:
    """The supervisor's clamp values ``v_T + eta (V_T - v_T)`` from the free targets' voltages ``v_T`` (..., M_T)."""
    return v_target + eta * (target_voltage - v_target)


_RANDOM = re.compile(r"^random:(\d+),(\d+),(\d+)$")


def random_task(network: CompiledNetwork, n_sources: int, n_targets: int, seed: int | None = 0) -> Task:
    """A random task: ``V_S ~ N(0, 1)``, ``V_T ~ N(0, 0.2^2)`` on distinct random nodes."""
    if not isinstance(network, CompiledNetwork):
        raise TaskError(f"`network` must be a compiled network (load_network), got {type(network).__name__}")
    for name, n in (("n_sources", n_sources), ("n_targets", n_targets)):
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
            raise TaskError(f"`{name}` must be an integer >= 1, got {n!r}")
    check_seed("seed", seed, allow_none=True)
    if n_sources < 1 or n_targets < 1:
        raise TaskError(f"a random task needs >= 1 source and >= 1 target, got MS={n_sources}, MT={n_targets}")
    if n_sources + n_targets > network.n_nodes:
        raise TaskError(
            f"network {network.name!r} has {network.n_nodes} nodes, too few for MS={n_sources} "
            f"sources plus MT={n_targets} targets"
        )
    rng = np.random.default_rng(seed)
    chosen = rng.choice(network.n_nodes, size=n_sources + n_targets, replace=False)
    vs = rng.normal(0.0, 1.0, n_sources)
    vt = rng.normal(0.0, 0.2, n_targets)
    nodes = [network.nodes[i] for i in chosen]
    return Task(dict(zip(nodes[:n_sources], vs)), dict(zip(nodes[n_sources:], vt)))


def load_task(spec, network: CompiledNetwork) -> Task:
    """Read a task: a :class:`Task`, a dict, a JSON file, ``random:MS,MT,SEED`` or ``default``.

    ``default`` is the network's own task (``lab16`` has one).
    """
    if not isinstance(network, CompiledNetwork):
        raise TaskError(f"`network` must be a compiled network (load_network), got {type(network).__name__}")
    if isinstance(spec, Task):
        return spec
    if isinstance(spec, dict):
        return _from_dict(spec, "task")
    spec = text_or_path("task", spec, "a Task, a dict, a JSON file, 'random:MS,MT,SEED' or 'default'")
    m = _RANDOM.match(spec.strip())
    if m:
        return random_task(network, int(m.group(1)), int(m.group(2)), int(m.group(3)))
    if spec.startswith("random"):
        raise TaskError(f"`TASK`={spec!r}: write random tasks as random:MS,MT,SEED with integers MS, MT >= 1 "
                        "and SEED >= 0, e.g. random:5,3,0")
    if spec == "default":
        from .generators import LAB16_TASK

        if network.name == "lab16":
            return _from_dict(LAB16_TASK, "lab16 default task")
        raise TaskError(f"network {network.name!r} has no default task; give a JSON file or random:MS,MT,SEED")
    if not os.path.isfile(spec):
        raise TaskError(f"`TASK`={spec!r} is not a JSON file, `random:MS,MT,SEED` or `default`"
                        + (" (it is a folder)" if os.path.isdir(spec) else ""))
    try:
        with open(spec, encoding="utf-8") as fh:
            data = json.load(fh, object_pairs_hook=_no_duplicates(spec))
    except UnicodeDecodeError:
        raise TaskError(f"task file {spec!r} is not text (UTF-8 JSON); give a JSON file "
                        '{"sources": {node: volts}, "targets": {node: volts}}') from None
    except json.JSONDecodeError as exc:
        raise TaskError(f"task file {spec!r} is not valid JSON: {exc}") from None
    except RecursionError:
        raise TaskError(f"task file {spec!r} nests its JSON too deeply; give "
                        '{"sources": {node: volts}, "targets": {node: volts}}') from None
    return _from_dict(data, f"task file {spec!r}")


def _no_duplicates(path: str):
    """A JSON ``object_pairs_hook`` that refuses a key given twice (json keeps the last one silently)."""
    def hook(pairs):
        keys = [k for k, _ in pairs]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise TaskError(f"task file {path!r} gives {twice} more than once; give each node once")
        return dict(pairs)

    return hook


def _from_dict(data, where: str) -> Task:
    extra = sorted(map(str, set(data) - {"sources", "targets"})) if isinstance(data, dict) else []
    if not isinstance(data, dict) or extra:
        raise TaskError(f'{where} must be an object {{"sources": {{node: volts}}, "targets": {{node: volts}}}}'
                        + (f"; unknown key(s) {extra}" if extra else ""))
    return Task(data.get("sources", {}), data.get("targets", {}))


def bind(network, task, *, network_seed: int = 0) -> BoundTask:
    """Load a network and a task (any form :func:`load_network` and :func:`load_task` take) and bind them.

    The one place that turns the user's network and task into a :class:`BoundTask`
    (``.network`` is the compiled network, ``.task`` the task).
    """
    from .network import load_network

    net = load_network(network, network_seed=network_seed)
    return load_task(task, net).bind(net)
