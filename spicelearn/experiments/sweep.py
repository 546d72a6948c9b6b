"""Sweeps: many training runs, in parallel, that survive being killed and end in one dataset.

A sweep (:class:`~spicelearn.experiments.spec.SweepSpec`) is the product of a grid of
``train`` options. Each point runs once and is written atomically to
``DIR/points/<id>.nc`` (a compressed run file, with the point's options in its
attributes); a failed point leaves ``DIR/points/<id>.error.txt`` with its message, and
the sweep goes on. Rerunning the same sweep skips every point that has its file, and
retries the failed ones. At the end the points are combined into ``DIR/sweep.nc``
(:func:`combine`, also ``spicelearn sweep --combine DIR``): the swept options as
dimensions, the per-step error traces, and summaries (final and median errors, tau).

Points that share a network, the task's nodes and steps on the ``exact`` engine run in
batches on the batched engine (``batch = true``, the default; the files are the same
as one by one); every other point is a job of its own.

Jobs run on Dask: a ``distributed.LocalCluster`` of worker processes on this
machine (one per core; processes, since a process holds at most two ngspice
instances), an existing cluster given by its scheduler address, or, with
``workers=0``, one after another in this process. Workers return the point's file
as bytes and the client writes it, so a remote cluster needs no shared folder.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace

import numpy as np

from ..errors import ConfigError, SpicelearnError
from ..files import atomic_path, atomic_write, check_target, make_folder
from ..progress import Progress
from ..runfile import LAYOUT, open_netcdf, save_run, write_netcdf
from .spec import SweepSpec, batch_key, check_options, point_id, run, run_batch

__all__ = ["run_sweep", "open_cluster", "combine", "run_point", "point_paths", "read_point", "SUMMARY_THRESHOLD",
           "SUMMARY_WINDOW"]

#: The lab's criterion for tau in the summaries: the error below 1e-3 of its start for 10 steps.
SUMMARY_THRESHOLD, SUMMARY_WINDOW = 1e-3, 10
#: Steps at the end whose median error the summary reports.
_TAIL = 500


def point_paths(out_dir: str, options: dict) -> tuple[str, str]:
    """``(result, error)`` files of the point with these options."""
    pid = point_id(options)
    folder = os.path.join(out_dir, "points")
    return os.path.join(folder, f"{pid}.nc"), os.path.join(folder, f"{pid}.error.txt")


def _reduce(ds, keep: str):
    """What a point's file keeps of its run file: all of it, or the errors per step and the final state."""
    if keep == "full":
        return ds
    drop = [v for v in ("v_free", "v_clamped", "position", "conductance") if v in ds]
    out = ds.drop_vars(drop)
    for v in drop:
        out[f"{v}_final"] = ds[v].isel(step=-1, drop=True)
    return out


def run_point(options: dict, keep: str = "full", attrs: dict | None = None) -> bytes:
    """Run one point and return its file (compressed netCDF) as bytes; raises what the run raises.

    Pure in its arguments: the same options give the same file on any worker.
    """
    return _point_bytes(run(check_options(options, "sweep point")), options, keep, attrs)


def _point_bytes(ds, options: dict, keep: str, attrs: dict | None) -> bytes:
    """A point's file, as bytes: what it keeps of its run file (``keep``), with its options."""
    ds = _reduce(ds, keep)
    ds.attrs.update({"sweep_options": json.dumps(options, sort_keys=True), "sweep_keep": keep, **(attrs or {})})
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "point.nc")
        write_netcdf(ds, path)
        with open(path, "rb") as fh:
            return fh.read()


def _point_job(options: dict, keep: str, attrs: dict):
    """One point: ``("ok", bytes, seconds)`` or ``("failed", message, seconds)``."""
    t0 = time.perf_counter()
    try:
        return "ok", run_point(options, keep, attrs), time.perf_counter() - t0
    except SpicelearnError as exc:
        return "failed", f"{type(exc).__name__}: {exc}", time.perf_counter() - t0


def _job(points: list, keep: str, attrs: dict, batched: bool) -> list:
    """A worker's job: its points' results (:func:`_point_job`), in order. Batched points run together on the
    batched engine (:func:`~spicelearn.experiments.spec.run_batch`); should the batch fail, each point runs
    alone, so that each gets its own result or error."""
    if not batched:
        return [_point_job(p, keep, attrs) for p in points]
    t0 = time.perf_counter()
    try:
        runs = run_batch([check_options(p, "sweep point") for p in points])
    except SpicelearnError:
        return [_point_job(p, keep, attrs) for p in points]
    out = [_point_bytes(ds, p, keep, attrs) for ds, p in zip(runs, points)]
    seconds = (time.perf_counter() - t0) / len(points)
    return [("ok", payload, seconds) for payload in out]


#: Points of one batched job at most: a killed sweep loses at most the jobs in flight.
MAX_BATCH = 256


def _jobs(points: list, spec: SweepSpec, workers: int) -> list:
    """The jobs of the points to run: ``(points, batched)``. With ``spec.batch``, points of one
    :func:`~spicelearn.experiments.spec.batch_key` form batches (at least one per worker, at most
    :data:`MAX_BATCH` points); every other point is a job of its own."""
    groups, jobs = {}, []
    for options in points:
        key = batch_key(check_options(options, "sweep point")) if spec.batch else None
        if key is None:
            jobs.append(([options], False))
        else:
            groups.setdefault(key, []).append(options)
    for group in groups.values():
        n = max(min(workers, len(group)), -(-len(group) // MAX_BATCH))
        size = -(-len(group) // n)
        jobs.extend((group[i:i + size], True) for i in range(0, len(group), size))  # one point too: the same bits
    return jobs


class _Runner:
    """Where jobs run: a context manager with ``run(jobs)`` yielding ``(key, results)`` as jobs finish."""

    dashboard_link = None
    workers = 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        pass


class _Local(_Runner):
    """Runs jobs one after another in this process (``workers=0``)."""

    def run(self, jobs):
        for key, job in jobs:
            yield key, _job(*job)


def _reachable(address: str) -> None:
    """Fail at once, with one line, when nothing listens at a ``tcp://host:port`` scheduler address."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(address if "://" in address else f"tcp://{address}")
    if url.scheme != "tcp" or not url.hostname or not url.port:
        return  # other protocols: left to Dask
    try:
        socket.create_connection((url.hostname, url.port), timeout=3).close()
    except OSError as exc:
        raise ConfigError(f"`--scheduler`={address!r}: cannot reach a Dask scheduler there ({exc})") from None


class _Dask(_Runner):
    """A Dask client on a new LocalCluster of ``workers`` processes, or on the scheduler at ``address``.

    Connected at its first use: several sweeps share one (a figure's, a comparison's) and none of them may
    have points left to run."""

    def __init__(self, workers: int | None, address: str | None):
        self._args, self._client, self._cluster = (workers, address), None, None

    @property
    def client(self):
        if self._client is None:
            self._client = self._connect(*self._args)
        return self._client

    @property
    def dashboard_link(self):
        return getattr(self.client, "dashboard_link", None)

    @property
    def workers(self):
        return max(1, sum(self.client.nthreads().values()))

    def _connect(self, workers: int | None, address: str | None):
        try:
            import distributed
        except ImportError as exc:
            raise ConfigError(f"parallel sweeps need Dask distributed (pip install 'dask[distributed]'): {exc}; "
                              "or give `--workers 0` to run the points one after another") from None
        if address is not None:
            _reachable(address)
            try:
                return distributed.Client(address, timeout="10s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise ConfigError(f"`--scheduler`={address!r}: cannot reach a Dask scheduler there ({exc})") from None
        else:
            import dask

            n = workers or os.cpu_count() or 1
            # Points are long and CPU-bound: no statistical profiler sampling them every 10 ms. And no
            # MALLOC_TRIM_THRESHOLD_ in the workers' environment, which Dask sets by default: with it glibc
            # serves every allocation of 128 KiB or more by mmap, and numpy's temporaries (a Jacobian, a
            # stack of ticks) then cost fresh pages each time: a sweep's points ran 1.2 to 1.4x slower.
            environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
                       if k != "MALLOC_TRIM_THRESHOLD_"}
            with dask.config.set({"distributed.worker.profile.enabled": False,
                                  "distributed.nanny.pre-spawn-environ": environ}):
                self._cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                         dashboard_address=":0", silence_logs=40)
            return distributed.Client(self._cluster)

    def run(self, jobs):
        import distributed

        futures = {self.client.submit(_job, *job, key=f"spicelearn-job-{key}", pure=False): (key, len(job[0]))
                   for key, job in jobs}
        for future in distributed.as_completed(futures):
            key, n = futures[future]
            try:
                results = future.result()
            except Exception as exc:  # a worker died or the job could not run: recorded, the sweep goes on
                results = [("failed", f"{type(exc).__name__}: {exc}", float("nan"))] * n
            yield key, results

    def close(self):
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()


#: A local cluster has at most this many worker processes a core (more only wait for the cores, each with its
#: own interpreter's memory; a thousand of them exhaust the machine).
WORKERS_PER_CORE = 4


def _check_workers(workers) -> None:
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise ConfigError(f"`workers` must be an integer >= 0, got {workers!r}")
    most = WORKERS_PER_CORE * (os.cpu_count() or 1)
    if workers is not None and workers > most:
        raise ConfigError(f"`workers`={workers} is over {WORKERS_PER_CORE} processes a core of this machine's "
                          f"{os.cpu_count()}; give at most {most}, or a running Dask `scheduler` for a larger cluster")


def open_cluster(workers: int | None = None, scheduler: str | None = None) -> _Runner:
    """Where a sweep's points run, for several sweeps in a row (``with open_cluster(2) as c: run_sweep(..., cluster=c)``):
    a local cluster of ``workers`` processes (default one per core), the scheduler at ``scheduler``, or, with
    ``workers=0``, this process."""
    _check_workers(workers)
    return _Local() if workers == 0 and scheduler is None else _Dask(workers, scheduler)


def run_sweep(spec: SweepSpec, out_dir, *, workers: int | None = None, scheduler: str | None = None,
              progress: bool = True, log=None, cluster: _Runner | None = None, label: str = "sweep"):
    """Run every point of ``spec`` not yet done in ``out_dir``; write and return ``out_dir/sweep.nc``.

    Parameters
    ----------
    spec : SweepSpec
    out_dir : str
        The sweep's folder (created if missing); ``points/`` holds one file per point.
    workers : int, optional
        Worker processes of a new local cluster (default: one per core); 0 runs the
        points one after another in this process.
    scheduler : str, optional
        Address of a running Dask scheduler to use instead (``tcp://host:8786``).
    progress : bool
        A progress bar with the counts done, failed and left.
    log : file, optional
        Where the sweep's notes go (points already done, failures, the dashboard); default stderr.
    cluster : optional
        An :func:`open_cluster` to run on (left open), instead of ``workers`` and ``scheduler``.
    label : str
        What the progress bar and the notes call the sweep.

    Returns
    -------
    xarray.Dataset
        The combined sweep (:func:`combine`).
    """
    if not isinstance(spec, SweepSpec):
        raise ConfigError(f"`spec` must be a SweepSpec (load_spec), got {type(spec).__name__}")
    _check_workers(workers)
    if scheduler is not None and not isinstance(scheduler, str):
        raise ConfigError(f"`scheduler` must be a Dask scheduler's address (tcp://host:8786), got {scheduler!r:.40}")
    if log is not None and not callable(getattr(log, "write", None)):
        raise ConfigError(f"`log` must be a text file (with a write method), got {type(log).__name__}")
    log = sys.stderr if log is None else log
    out_dir = make_folder(out_dir, "--out")
    os.makedirs(os.path.join(out_dir, "points"), exist_ok=True)
    check_target(os.path.join(out_dir, "sweep.nc"), "--out")  # a folder we cannot write fails now, not at the end
    grid_attrs = {"sweep_grid": json.dumps({k: list(v) for k, v in spec.grid.items()})}
    todo, done = [], 0
    for options in spec.points():
        result, _ = point_paths(out_dir, options)
        if os.path.exists(result):
            done += 1
        else:
            todo.append(options)
    total = done + len(todo)
    if done:
        print(f"{label}: {done} of {total} points already done in {out_dir}"
              + (f"; running the other {len(todo)}" if todo else ""), file=log)
    failed = n = 0
    if todo:
        engine = cluster if cluster is not None else open_cluster(workers, scheduler)
        if engine.dashboard_link and engine is not cluster:  # who opened the cluster says where it is
            print(f"{label}: Dask dashboard at {engine.dashboard_link}", file=log)
        jobs = {f"{point_id(group[0])}-{len(group)}": (group, batched)
                for group, batched in _jobs(todo, spec, engine.workers)}
        bar = Progress(len(todo), label=f"{label}: {total} points", enabled=progress, unit="points")
        try:
            for key, results in engine.run([(k, (group, spec.keep, grid_attrs, batched))
                                            for k, (group, batched) in jobs.items()]):
                for options, (status, payload, seconds) in zip(jobs[key][0], results):
                    n += 1
                    result, error = point_paths(out_dir, options)
                    if status == "ok":
                        with atomic_path(result, "point file", suffix=".nc.part") as tmp:
                            with open(tmp, "wb") as fh:
                                fh.write(payload)
                        if os.path.exists(error):
                            os.remove(error)
                    else:
                        failed += 1
                        atomic_write(error, payload + "\n", what="point error file")
                        print(f"{label}: point {options} failed and is left out (NaN): {payload}", file=log)
                bar.label = f"{label} ({done + n - failed} done, {failed} failed, {len(todo) - n} left)"
                bar.update(n)
        finally:
            bar.close()
            if engine is not cluster:
                engine.close()
    ds = combine(out_dir, spec)
    save_run(ds, os.path.join(out_dir, "sweep.nc"))
    return ds


def _point_files(out_dir: str) -> list:
    folder = os.path.join(out_dir, "points")
    if not os.path.isdir(folder):
        raise ConfigError(f"{out_dir!r} is not a sweep folder: it has no points/ folder")
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith((".nc", ".error.txt")))


def _summary(point: "_Point") -> dict:
    """The summaries of one point's run: final and median errors (relative to the start), taus."""
    from ..runfile import relative, tau

    mse0 = float(point.values("mse0"))
    mse, mse_eq = point.values("mse"), point.values("mse_eq")
    tail = slice(max(0, mse.size - _TAIL), mse.size)
    return {"final_mse": relative(mse[-1], mse0), "median_mse": relative(np.median(mse[tail]), mse0),
            "final_mse_eq": relative(mse_eq[-1], mse0), "median_mse_eq": relative(np.median(mse_eq[tail]), mse0),
            "tau": tau(mse, mse0, SUMMARY_THRESHOLD, SUMMARY_WINDOW),
            "tau_eq": tau(mse_eq, mse0, SUMMARY_THRESHOLD, SUMMARY_WINDOW),
            "run_gamma_l": float(point.attrs.get("gamma_l", np.nan)), "run_R": float(point.attrs.get("R", np.nan)),
            "mse0": mse0}


#: The variables of a point file that :func:`combine` reads.
_COMBINED = ("mse", "mse_eq", "mse0", "conductance_final", "position_final", "v_free_final")


@dataclass(frozen=True)
class _Point:
    """What :func:`combine` reads of one point file: its attributes and :data:`_COMBINED` variables,
    ``name -> (dims, values)``."""

    attrs: dict
    variables: dict

    def values(self, name: str) -> np.ndarray:
        return self.variables[name][1]

    @property
    def steps(self) -> int:
        return self.variables["mse"][1].size


def read_point(path: str, names=_COMBINED) -> _Point:
    """A point file's attributes and its variables ``names`` (those it has), read with netCDF4 directly: a tenth
    of the time of opening it with xarray (22 ms a file), which made combining a sweep of a thousand points, or
    gathering a Monte Carlo's parts, take 20 s."""
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        nc.set_auto_mask(False)
        variables = {v: (tuple(nc[v].dimensions), np.asarray(nc[v][...])) for v in names if v in nc.variables}
        return _Point(attrs={k: nc.getncattr(k) for k in nc.ncattrs()}, variables=variables)


def _checked(point: _Point, path: str) -> _Point:
    """``point``, after checking that it is what a sweep writes: ``mse``, ``mse_eq`` over at least one step, ``mse0``,
    and the sweep's grid and options (JSON objects, decoded in place); else one error naming the file."""
    def fail(what):
        raise SpicelearnError(f"point file {path!r} is not a point of a spicelearn sweep ({what}); delete it to run "
                              "the point again")

    for name in ("mse", "mse_eq", "mse0"):
        dims = LAYOUT[name]
        if name not in point.variables:
            fail(f"it lacks `{name}`")
        d, v = point.variables[name]
        if d != dims or v.dtype.kind not in "fiu":
            fail(f"`{name}` must be numbers over {dims or 'no dimension'}, got {v.dtype} over {d}")
    if not point.steps:
        fail("it has no steps")
    attrs = dict(point.attrs)
    for name in ("sweep_grid", "sweep_options"):
        try:
            attrs[name] = json.loads(attrs[name])
        except KeyError:
            fail(f"it lacks the attribute `{name}`")
        except (TypeError, ValueError):
            fail(f"its attribute `{name}` is not JSON")
        if not isinstance(attrs[name], dict):
            fail(f"its attribute `{name}` must be a JSON object, got {attrs[name]!r:.60}")
    return replace(point, attrs=attrs)


def combine(out_dir, spec: SweepSpec | None = None):
    """The sweep of ``out_dir`` as one dataset, from its point files alone.

    Dimensions: the swept options (in the spec's order; each point file records the
    grid) and ``step``. Variables: ``mse``, ``mse_eq`` (..., step), ``mse0``,
    ``final_mse``, ``median_mse`` (last 500 steps), ``final_mse_eq``,
    ``median_mse_eq``, ``tau`` (the lab's criterion on ``mse``), ``tau_eq``, ``run_R``,
    ``run_gamma_l`` (the rates the run used); the final state where the points kept it (``conductance_final``,
    ``position_final``: (..., edge)); ``error`` (the message of a failed point, "not run"
    for a missing one, "" for the others). Points of another grid in the folder are
    left out.
    """
    import xarray as xr

    out_dir = os.fspath(out_dir)
    files = _point_files(out_dir)
    wanted = None if spec is None else {point_id(p) for p in spec.points()}
    results, errors, stamped, paths = {}, {}, [], {}
    for path in files:
        pid = os.path.basename(path).split(".")[0]
        if wanted is not None and pid not in wanted:
            continue  # a point of another sweep in the same folder
        if path.endswith(".error.txt"):
            with open(path, encoding="utf-8") as fh:
                errors[pid] = fh.read().strip()
            continue
        try:
            results[pid] = _checked(read_point(path), path)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise SpicelearnError(f"point file {path!r} cannot be read ({exc}); delete it to run the point again") \
                from None
        paths[pid] = path
        stamped.append((os.path.getmtime(path), pid))
    if spec is None:
        if not stamped:
            raise ConfigError(f"sweep folder {out_dir!r} has no point files yet; run the sweep first")
        newest = results[max(stamped)[1]]  # the grid of the newest point (a folder may hold an older grid too)
        grid, opts = (newest.attrs[k] for k in ("sweep_grid", "sweep_options"))
        spec = SweepSpec(base={k: v for k, v in opts.items() if k not in grid}, grid=grid,
                         keep=newest.attrs.get("sweep_keep", "full"))
    points = spec.points()
    other = len({os.path.basename(f).split(".")[0] for f in files} - {point_id(p) for p in points})
    shape = spec.shape
    steps = max([point.steps for point in results.values()], default=1)
    first = next(iter(results), None)
    template = None if first is None else results[first]
    summaries = {name: np.full(shape, np.nan) for name in
                 ("final_mse", "median_mse", "final_mse_eq", "median_mse_eq", "tau", "tau_eq", "run_gamma_l", "run_R",
                  "mse0")}
    traces = {name: np.full(shape + (steps,), np.nan) for name in ("mse", "mse_eq")}
    finals = {}
    if template is not None:
        for v in ("conductance_final", "position_final", "v_free_final"):
            if v in template.variables:
                dims, values = template.variables[v]
                finals[v] = (dims, np.full(shape + values.shape, np.nan))
    error = np.full(shape, "not run", dtype=object)
    for flat, options in enumerate(points):
        idx = np.unravel_index(flat, shape)
        pid = point_id(options)
        point = results.get(pid)
        if point is None:
            if pid in errors:
                error[idx] = errors[pid]
            continue
        error[idx] = ""
        for name, value in _summary(point).items():
            summaries[name][idx] = value
        for name in traces:
            traces[name][idx + (slice(0, point.steps),)] = point.values(name)
        for v, (dims, arr) in finals.items():
            if v in point.variables and point.values(v).shape == arr.shape[len(shape):]:
                arr[idx] = point.values(v)
    dims = spec.dims
    coords = {k: list(v) for k, v in spec.grid.items()}
    coords["step"] = np.arange(steps)
    data = {name: (dims, arr) for name, arr in summaries.items()}
    data.update({name: (dims + ("step",), arr) for name, arr in traces.items()})
    data.update({v: (dims + tuple(d), arr) for v, (d, arr) in finals.items()})
    data["error"] = (dims, error.astype(str))
    if template is not None and finals:  # the labels of the final state's axes, from one file
        labels = open_netcdf(paths[first])
        for d in ("edge", "node"):
            if d in labels.coords and any(d in dd for dd, _ in finals.values()):
                coords[d] = labels[d].values
    out = xr.Dataset(data, coords=coords)
    out.attrs.update(sweep_base=json.dumps(dict(spec.base), sort_keys=True), sweep_keep=spec.keep,
                     tau_threshold=SUMMARY_THRESHOLD, tau_window=SUMMARY_WINDOW, points=len(points),
                     points_done=int((error == "").sum()),
                     points_failed=int(((error != "") & (error != "not run")).sum()), points_other_grid=other)
    out["mse"].attrs["long_name"] = "nonequilibrium error per step (not normalised; see mse0)"
    out["tau"].attrs["long_name"] = "first step with mse < 1e-3 mse0 for 10 steps (NaN: not reached)"
    return out
