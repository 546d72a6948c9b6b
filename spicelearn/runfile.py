"""Run files: the schema of DESIGN.md section 4 (netCDF written through xarray), save/load, restore, summary.

A run file says everything needed to repeat its run: the network (for a built-in
its name and seed with a content hash, otherwise the graph itself as GraphML in
the attribute ``network_graphml``), the task (JSON), every parameter of the
design and the board's part values (``r_ab (twin, edge)``, ``capacitance (edge)``
or ``(node)`` (``(twin, ...)`` where the twins' capacitors differ), ``offset (comparator, edge)``,
and where the board has them ``wiper`` and ``leakage (twin, edge)``), the relaxation time of
every step where the clock jitters (``duration (step)``), the start positions, and the
package version. :func:`run_inputs` rebuilds network, task and board from it.
"""

from __future__ import annotations

import json
import math
import os
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import xarray as xr

from . import __version__
from .checks import finite, is_real, positive, show, text_or_path
from .errors import ConfigError, SpicelearnError
from .files import atomic_path, check_target
from .model.board import COMPARATORS, TWINS, Board
from .model.hardware import Hardware
from .model.network import CompiledNetwork, compile_network, load_network
from .model.task import BoundTask, load_task

__all__ = ["make_dataset", "network_attrs", "run_inputs", "save_run", "write_netcdf", "open_netcdf", "local_file_locks",
           "load_run", "check_dataset", "relative", "tau", "summary",
           "REQUIRED_VARIABLES", "LAYOUT", "TIME_UNITS"]

REQUIRED_VARIABLES = ("mse", "mse_eq", "v_free", "v_clamped", "mse0")
#: Units of the ``time`` coordinate: seconds of the board's clock, or training steps of the paper's model.
TIME_UNITS = ("s", "training steps")


def network_attrs(net: CompiledNetwork) -> dict:
    """What identifies the network in a run file: built-in name and seed, or the GraphML; and a content hash."""
    attrs = {"network": net.name, "network_hash": net.content_hash()}
    if net.builtin is not None:
        attrs["network_seed"] = int(net.builtin[1])
    else:
        attrs["network_graphml"] = net.to_graphml()
    return attrs


def make_dataset(task: BoundTask, board: Board | None, *, record: dict, time, time_units: str,
                 attrs: dict, like: xr.Dataset | None = None) -> xr.Dataset:
    """Assemble the run file of DESIGN.md section 4 (every backend writes this one schema).

    Parameters
    ----------
    task : BoundTask
        The task on its network.
    board : Board or None
        The board of a hardware run (its part values are recorded), None for the paper's model.
    record : dict
        ``mse``, ``mse_eq`` (steps,), ``v_free``, ``v_clamped`` (steps, N), ``mse0``; and
        ``position`` (steps, E) with ``position_start`` (E,), or ``conductance`` (steps, E).
    time : array, shape (steps,)
    time_units : {"s", "training steps"}
    attrs : dict
        Parameters of the run (``backend``, ``seed``, ...).
    like : xarray.Dataset, optional
        A run file made by this function whose layout this one may share (same network, length, variables and
        units): it is then copied with this run's values, 5x faster than building anew (a batch's run files).
        The result is the same either way.
    """
    if time_units not in TIME_UNITS:
        raise ConfigError(f"`time_units` must be one of {TIME_UNITS}, got {time_units!r}")
    net = task.network
    steps = len(record["mse"])
    data = {
        "mse": ("step", np.asarray(record["mse"], dtype=float)),
        "mse_eq": ("step", np.asarray(record["mse_eq"], dtype=float)),
        "v_free": (("step", "node"), record["v_free"]),
        "v_clamped": (("step", "node"), record["v_clamped"]),
        "mse0": ((), float(record["mse0"])),
    }
    if "position" in record:
        data["position"] = (("step", "edge"), np.asarray(record["position"]).astype(np.int32, copy=False))
        data["position_start"] = ("edge", np.asarray(record["position_start"]).astype(np.int32))
    if "conductance" in record:
        data["conductance"] = (("step", "edge"), record["conductance"])
    if board is not None:
        data["r_ab"] = (("twin", "edge"), board.r_ab)
        cap_dim = "edge" if board.hardware.capacitance_model == "per_edge" else "node"
        data["capacitance"] = ((cap_dim,) if board.capacitance.ndim == 1 else ("twin", cap_dim), board.capacitance)
        data["offset"] = (("comparator", "edge"), board.offset)
        if np.any(board.wiper):
            data["wiper"] = (("twin", "edge"), board.wiper)
        if board.has_leakage:
            data["leakage"] = (("twin", "edge"), board.leakage)
    if "duration" in record:
        data["duration"] = ("step", np.asarray(record["duration"], dtype=float))
    time = np.asarray(time, dtype=float)
    out = {"spicelearn_version": __version__, **network_attrs(net), "steps": steps,
           "task": json.dumps(task.task.to_dict())}
    if board is not None:
        out.update(board.hardware.attrs())
        out.update(capacitance=board.typical_capacitance, gamma_l=board.gamma_l, R=board.R,
                   board_nominal=int(board.is_nominal(net)))
    out.update(attrs)
    file_attrs = {k: (-1 if v is None else v) for k, v in out.items()}
    if like is not None and _same_layout(like, data, time_units, file_attrs):
        ds = like.copy(deep=False, data={k: v for k, (_, v) in data.items()})
        ds.variables["time"].data = time
        ds.attrs = file_attrs
        return ds
    coords = {"step": np.arange(steps), "time": ("step", time), "edge": net.edge_labels, "node": list(net.nodes)}
    if board is not None:
        coords.update(twin=list(TWINS), comparator=list(COMPARATORS))
    ds = xr.Dataset(data, coords=coords)
    ds["time"].attrs["units"] = time_units
    ds["mse"].attrs["long_name"] = "nonequilibrium error sum_T (V_T - v_T^F)^2 after relaxation"
    ds["mse_eq"].attrs["long_name"] = "equilibrium error of the free network after the tick"
    if board is not None:
        ds["r_ab"].attrs.update(units="ohm", long_name="end-to-end resistance of every pot of the board")
        ds["capacitance"].attrs.update(units="F", long_name=f"capacitance of every {cap_dim} of the board")
        ds["offset"].attrs.update(units="V", long_name="input offset of the two comparators of every edge")
        for v, text in (("wiper", "wiper resistance in series with every pot"),
                        ("leakage", "leakage resistance in parallel with every edge capacitor")):
            if v in ds:
                ds[v].attrs.update(units="ohm", long_name=text)
    if "duration" in ds:
        ds["duration"].attrs.update(units="s", long_name="relaxation time before each tick (clock jitter)")
    ds.attrs.update(file_attrs)
    return ds


def _same_layout(like: xr.Dataset, data: dict, time_units: str, attrs: dict) -> bool:
    """Whether the run file ``like`` has the variables (names, dimensions, shapes, types), network and time units
    that a run file of ``data`` would have (:func:`make_dataset`'s ``like``)."""
    if (set(like.data_vars) != set(data) or like.variables["time"].attrs.get("units") != time_units
            or any(like.attrs.get(k) != attrs[k] for k in ("network", "network_hash"))):
        return False
    for name, (dims, values) in data.items():
        v, values = like.variables[name], np.asarray(values)
        if v.dims != ((dims,) if isinstance(dims, str) else tuple(dims)) or v.shape != values.shape \
                or v.dtype != values.dtype:
            return False
    return True


def restore_network(attrs) -> CompiledNetwork:
    """The network a run file records; checked against its content hash where the file has one."""
    name = str(attrs.get("network", ""))
    if "network_graphml" in attrs:
        import networkx as nx

        graph = nx.parse_graphml(str(attrs["network_graphml"]))
        net = compile_network(graph, name=name, allow_disconnected=True)
    else:
        net = load_network(name, network_seed=int(attrs.get("network_seed", 0)))
    want = attrs.get("network_hash")
    if want is not None and net.content_hash() != str(want):
        raise ConfigError(f"the run's network {name!r} does not match the one it records (content hash "
                          f"{str(want)[:12]} against {net.content_hash()[:12]}): was it made by another version "
                          f"of the generator? Replay it with the network it was made on")
    return net


def run_inputs(ds: xr.Dataset, network=None, network_seed: int | None = None) -> tuple[BoundTask, Board, np.ndarray]:
    """The task (bound to its network), board and start positions (E,) of a hardware run file.

    Parameters
    ----------
    ds : xarray.Dataset
        A run file of the ``exact`` or ``ngspice`` backend.
    network : optional
        The network to use instead of the recorded one (any form ``load_network``
        takes); it must be the run's network (same nodes, edges and attributes).
    network_seed : int, optional
        Seed of a built-in ``network`` (default: the recorded one).
    """
    if "position" not in ds:
        raise ConfigError("the run file has no `position` variable (an `ode` run?); this needs a hardware run")
    try:
        return _run_inputs(ds, network, network_seed)
    except SpicelearnError:
        raise
    except KeyError as exc:  # what a file edited or made by another tool lacks, named
        raise SpicelearnError(f"the run file lacks the attribute or variable {exc.args[0]!r} that repeating it "
                              "needs; is it a spicelearn run file of a hardware backend?") from None
    except (ValueError, TypeError, SyntaxError) as exc:  # (SyntaxError: the recorded GraphML's XML ParseError)
        raise SpicelearnError(f"the run file's attributes are damaged: {type(exc).__name__}: {exc}"[:300]) from None


def _run_inputs(ds: xr.Dataset, network, network_seed) -> tuple[BoundTask, Board, np.ndarray]:
    a = ds.attrs
    recorded = restore_network(a) if network is None or "network_hash" in a else None
    net = recorded
    if network is not None:
        seed = int(a.get("network_seed", 0)) if network_seed is None else network_seed
        net = load_network(network, network_seed=seed)
        if recorded is not None and net.content_hash() != recorded.content_hash():
            raise ConfigError(f"network {net.name!r} is not the run's network {a.get('network')!r} "
                              f"(different nodes, edges or edge attributes)")
    if list(net.nodes) != [str(x) for x in ds["node"].values] or net.edge_labels != [str(x) for x in ds["edge"].values]:
        raise ConfigError(f"network {net.name!r} does not have the run's nodes and edges; "
                          "give the network the run was made on")
    task = load_task(json.loads(a["task"]), net).bind(net)
    hw = Hardware.from_attrs(a)
    if "r_ab" in ds:
        board = Board(hardware=hw, gamma_l=float(a["gamma_l"]), r_ab=ds["r_ab"].values,
                      capacitance=ds["capacitance"].values, offset=ds["offset"].values,
                      wiper=ds["wiper"].values if "wiper" in ds else None,
                      leakage=ds["leakage"].values if "leakage" in ds else None)
    else:  # files of spicelearn before boards: nominal parts, the clock as recorded
        cap = None if a.get("capacitance_per_edge") else float(a["capacitance"])
        board = Board.nominal(net, replace(hw, capacitance=cap, R=None, gamma_l=float(a["gamma_l"])))
    start = ds["position_start"].values if "position_start" in ds else \
        (net.position if net.position is not None else np.full(net.n_edges, hw.pot.start))
    return task, board, hw.pot.check_positions(start, net.n_edges)


@contextmanager
def local_file_locks():
    """A context in which xarray guards netCDF files with this process's locks.

    xarray takes the lock of the dask scheduler it finds: where a distributed client is active (a
    sweep's client, every worker of a cluster) a lock held by the scheduler, one network round trip
    per access of a file, measured at 0.2 s per small run file (a 100-point job: 20 s of locks
    against 6 s of training). A run file is written or read whole by one process; a local lock
    suffices.
    """
    try:
        import dask
    except ImportError:
        yield
        return
    with dask.config.set(scheduler="synchronous"):
        yield


def open_netcdf(path) -> xr.Dataset:
    """The whole of the netCDF file ``path``, loaded into memory (:func:`local_file_locks`)."""
    with local_file_locks(), xr.open_dataset(path, engine="netcdf4") as ds:  # (netCDF-C reads netCDF3 too; a
        return ds.load()  # file of another format is then one line, not xarray's search for a reader)


def write_netcdf(ds: xr.Dataset, path) -> None:
    """Write ``ds`` to ``path`` as netCDF4 with its numeric variables zlib-compressed (not atomic: see save_run).

    Level 1: a 3000-step lab16 run file writes in 16 ms against 20 ms at level 4, for 1% more bytes (delaunay64: 71
    against 82 ms); a sweep's point files are most of its time (``benchmarks/bench_sweep.py``)."""
    encoding = {v: {"zlib": True, "complevel": 1} for v in ds.data_vars if ds[v].dtype.kind in "fiub"}
    try:
        with local_file_locks():
            ds.to_netcdf(path, engine="netcdf4", encoding=encoding)
    except RuntimeError as exc:  # netCDF-C reports a full disk as "NetCDF: HDF error"
        raise SpicelearnError(f"cannot write {os.fspath(path)!r}: {exc} (is the disk full?)") from None


def save_run(ds: xr.Dataset, path) -> None:
    """Write ``ds`` to ``path`` (compressed netCDF); an existing file is replaced only once the new one is complete."""
    if not isinstance(ds, xr.Dataset):
        raise ConfigError(f"`ds` must be an xarray.Dataset (a run file), got {type(ds).__name__}")
    bad = [k for k, v in ds.attrs.items()
           if not (isinstance(v, (str, np.ndarray, list, tuple)) or is_real(v))]  # what netCDF attributes hold
    if bad:
        raise ConfigError(f"`ds` has attribute(s) {bad} that netCDF cannot hold ({type(ds.attrs[bad[0]]).__name__}); "
                          "give text, numbers or lists of numbers")
    path = check_target(path, "--out")
    with atomic_path(path, "--out", suffix=".nc.part") as tmp:
        try:
            write_netcdf(ds, tmp)
        except SpicelearnError as exc:
            raise SpicelearnError(f"{exc}; an existing file is unchanged") from None


def load_run(path) -> xr.Dataset:
    """Read a run file and check that it has the run-file variables."""
    path = text_or_path("path", path, "a run file's path")
    if not os.path.exists(path):
        raise ConfigError(f"run file {path!r} does not exist")
    try:
        ds = open_netcdf(path)
    except (OSError, ValueError) as exc:
        raise SpicelearnError(f"cannot read run file {path!r} as netCDF: {exc}") from None
    missing = [v for v in REQUIRED_VARIABLES if v not in ds]
    if missing:
        raise SpicelearnError(f"{path!r} is not a spicelearn run file: it lacks {missing}")
    _check_layout(ds, f"run file {path!r}")
    return ds


def check_dataset(ds, names=REQUIRED_VARIABLES) -> None:
    """``ds`` a run file in memory (the Dataset of train or load_run) with the variables ``names``, of the contract's
    layout (:func:`_check_layout`); else one error naming `ds`."""
    missing = [v for v in names if v not in ds] if isinstance(ds, xr.Dataset) else None
    if missing is None or missing:
        raise ConfigError(f"`ds` must be a run file (the Dataset of train or load_run), got {type(ds).__name__}"
                          + (f" without {missing}" if missing else ""))
    _check_layout(ds, "`ds`")


#: The dimensions of a run file's variables (DESIGN.md, the run-file contract).
LAYOUT = {"mse": ("step",), "mse_eq": ("step",), "v_free": ("step", "node"), "v_clamped": ("step", "node"),
           "mse0": (), "time": ("step",)}


def _check_layout(ds: xr.Dataset, what: str) -> None:
    """The variables of a run file numbers of the contract's dimensions, at least one step, and the numbers its
    summary prints (``R``, ``eta``) numbers: else one error naming ``what`` (the file) and what is wrong (a file
    edited or made by another tool)."""
    for name, dims in LAYOUT.items():
        if name not in ds.variables:
            continue  # (time: files of spicelearn before it; the rest were checked by load_run)
        v = ds.variables[name]
        if v.dims != dims or v.dtype.kind not in "fiu":
            raise SpicelearnError(f"{what}: `{name}` must be numbers over {dims or 'no dimension'}, "
                                  f"got {v.dtype} over {v.dims}; is it a spicelearn run file?")
    if not ds.sizes.get("step"):
        raise SpicelearnError(f"{what} has no steps")
    bad = [k for k in ("R", "eta") if k in ds.attrs and not isinstance(ds.attrs[k], (int, float, np.number))]
    if bad:
        raise SpicelearnError(f"{what}: the attribute(s) {bad} must be numbers, got "
                              f"{[ds.attrs[k] for k in bad]!r:.80}")


def relative(errors, mse0: float):
    """``errors / mse0`` (a number or an array); NaN where ``mse0`` is 0 (the targets met at the start: no error to
    measure learning by)."""
    e = np.asarray(errors, dtype=float)
    out = e / mse0 if mse0 > 0 else np.full(e.shape, np.nan)
    return float(out) if out.ndim == 0 else out


def tau(errors, mse0: float, threshold: float = 1e-3, window: int = 10) -> float:
    """Training time: the first step k with ``errors[k : k + window] < threshold * mse0``.

    Parameters
    ----------
    errors : array, shape (steps,)
        ``mse`` (the lab's criterion) or ``mse_eq``.
    mse0 : float
    threshold : float
        Relative to ``mse0`` (default 1e-3, the lab's).
    window : int
        Steps the error must stay below the threshold (default 10).

    Returns
    -------
    float
        The step index, or NaN when the error never stays below the threshold.
    """
    positive("threshold", threshold)
    if not is_real(window) or not math.isfinite(window) or int(window) != window or window < 1:
        raise ConfigError(f"`window` must be an integer >= 1, got {show(window)}")
    if not finite("mse0", mse0) >= 0:
        raise ConfigError(f"`mse0` must be >= 0 (a squared error), got {show(mse0)}")
    errors = np.asarray(errors)
    if errors.ndim != 1 or errors.dtype.kind not in "iuf":
        raise ConfigError(f"`errors` must be a 1-d array of numbers (one per step), got dtype {errors.dtype} and "
                          f"shape {errors.shape}")
    below = errors < threshold * mse0
    if below.size < window:
        return float("nan")
    run = np.convolve(below.astype(int), np.ones(int(window), dtype=int), mode="valid")
    hits = np.flatnonzero(run == window)
    return float(hits[0]) if hits.size else float("nan")


def summary(ds: xr.Dataset, threshold: float = 1e-3, window: int = 10) -> str:
    """A few lines: parameters, final and median errors, tau."""
    check_dataset(ds, ("mse", "mse_eq", "mse0"))
    mse0 = float(ds["mse0"])
    n = ds.sizes["step"]
    tail = slice(max(0, n - 500), n)
    lines = [f"run: network {ds.attrs.get('network')}, backend {ds.attrs.get('backend')}, {n} steps, "
             f"R = {ds.attrs.get('R', float('nan')):.4g}, eta = {ds.attrs.get('eta', float('nan')):.4g}, "
             f"{ds.attrs.get('capacitance_model', '')} capacitance",
             f"mse0 = {mse0:.6g}"]
    for name in ("mse", "mse_eq"):
        err = ds[name].values
        t = tau(err, mse0, threshold, window)
        t_real = float(ds["time"].values[int(t)]) if np.isfinite(t) and "time" in ds.coords else float("nan")
        lines.append(
            f"{name:7s} final {relative(err[-1], mse0):.3e} x mse0, median of last {tail.stop - tail.start} steps "
            f"{relative(np.median(err[tail]), mse0):.3e} x mse0, tau = "
            + (f"{int(t)} steps ({t_real:.4g} {ds['time'].attrs.get('units', 's')})" if np.isfinite(t) else "not reached")
        )
    lines.append(f"tau: first step where the error stays below {threshold:g} x mse0 for {window} steps"
                 + ("; mse0 = 0: the targets are met at the start, there is nothing to learn" if mse0 == 0 else ""))
    return "\n".join(lines)
