"""Where many independent draws run: in a loop here, or on a Dask cluster from a laptop to SLURM.

The one engine of the study's many-draw work: the Monte Carlo validation's replications
(:mod:`analysis.montecarlo`), the firm bootstrap of the production functions
(:mod:`analysis.productivity`, ``tfp.engine``) and the randomization inference of the robustness
reports (:mod:`analysis.robustness`, ``robustness.ri.engine``).

- :func:`open_client` opens a ``dask.distributed`` client: a ``LocalCluster`` on the machine's
  cores (``"local"``), a ``dask_jobqueue`` cluster (``"slurm"``, ``"pbs"``) or a running scheduler
  (``"tcp://host:8786"``); only the cluster object changes, the code path is the same.
- :func:`map_draws` is ``[fn(seed, *args) for seed in seeds]``, in a plain loop or on a client, in
  seed order, large arguments sent once to each worker.
- :func:`check_engine` checks an engine value from a parameter set, the error naming its key;
  :func:`draws_mapper` turns it into the ``mapper`` the estimators take (``None``: their own loop).

The estimators themselves (:mod:`analysis.tfp`, :mod:`analysis.did`) know nothing of Dask: they
take a ``mapper`` with the contract of :func:`map_draws` and seed each draw (or chunk of draws)
with its own child of ``numpy.random.SeedSequence(seed)``, so their results are the same on
every engine.

Examples
--------
>>> def draw(seed, scale):
...     return float(np.random.default_rng(seed).normal() * scale)
>>> seeds = np.random.SeedSequence(5).spawn(3)
>>> with draws_mapper(None, key="tfp.engine") as mapper:   # engine null: the caller's own loop
...     mapper is None
True
>>> map_draws(draw, seeds, 2.0, progress=False) == [draw(s, 2.0) for s in seeds]
True
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis.config import ParameterError
from analysis.inference import blas_threads
from analysis.io import progress_options

__all__ = ["ENGINE_KEYS", "WORKER_ENV", "check_engine", "draws_mapper", "map_draws", "open_client"]

#: keys of an engine mapping (config/validation.yaml ``engine``, ``tfp.engine``, ``robustness.ri.engine``)
ENGINE_KEYS = {"cluster", "n_workers", "threads_per_worker", "memory_limit", "dashboard_address", "jobqueue", "jobs"}
#: environment of every worker process: one thread for BLAS, OpenMP, numba and Rust (pyfixest)
WORKER_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "RAYON_NUM_THREADS")}


# ---------------------------------------------------------------------------------------------
# the cluster
# ---------------------------------------------------------------------------------------------
def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def open_client(engine: Mapping[str, Any] | str | None = None, *, n_workers: int | None = None, quiet: bool = False) -> Iterator[Any]:
    """A ``dask.distributed.Client`` on the cluster ``engine`` describes; closed (with its cluster) on exit.

    Parameters
    ----------
    engine : mapping or str, optional
        ``"local"`` (default), ``"slurm"``, ``"pbs"``, a scheduler address (``"tcp://host:8786"``), or
        a mapping with ``cluster`` (one of those) and its options: ``n_workers`` (local workers; default
        the machine's cores), ``threads_per_worker`` (1: replications are single-threaded),
        ``memory_limit``, ``dashboard_address``, ``jobqueue`` (keyword arguments of
        ``dask_jobqueue.SLURMCluster`` / ``PBSCluster``: ``cores``, ``memory``, ``walltime``,
        ``queue``, ``account``, ``job_script_prologue`` ...) and ``jobs`` (batch jobs to start).
    n_workers : int, optional
        Overrides ``engine["n_workers"]`` (local) or ``engine["jobs"]`` (SLURM, PBS).
    quiet : bool, default False
        Do not print the cluster and dashboard lines.

    Notes
    -----
    Every worker process gets :data:`WORKER_ENV` (one thread for BLAS, OpenMP, numba and Rust),
    so workers do not fight over the cores; replications also cap BLAS themselves.
    """
    from distributed import Client

    eng = {"cluster": engine} if isinstance(engine, str) or engine is None else dict(engine)
    kind = eng.get("cluster") or "local"
    cluster = None
    if kind == "local":
        from distributed import LocalCluster

        n = int(n_workers or eng.get("n_workers") or _cores())
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=int(eng.get("threads_per_worker") or 1), processes=True,
            memory_limit=eng.get("memory_limit", "auto"), dashboard_address=eng.get("dashboard_address", ":0"),
            env=dict(WORKER_ENV), silence_logs=40,
        )
    elif kind in ("slurm", "pbs"):
        import dask_jobqueue

        cls = dask_jobqueue.SLURMCluster if kind == "slurm" else dask_jobqueue.PBSCluster
        kwargs = dict(eng.get("jobqueue") or {})
        prologue = list(kwargs.pop("job_script_prologue", []) or [])
        prologue += [f"export {k}={v}" for k, v in WORKER_ENV.items()]
        cluster = cls(job_script_prologue=prologue, **kwargs)
        cluster.scale(jobs=int(n_workers or eng.get("jobs") or 1))
    elif "://" in str(kind):
        pass
    else:
        raise ParameterError(f"engine.cluster must be 'local', 'slurm', 'pbs' or a scheduler address (tcp://host:port), not {kind!r}")
    client = Client(cluster) if cluster is not None else Client(kind)
    try:
        if not quiet:
            print(_describe(client, kind), file=sys.stderr)
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _describe(client: Any, kind: str) -> str:
    try:
        import bokeh  # noqa: F401

        dash = f"dashboard: {client.dashboard_link}"
    except ImportError:
        dash = "dashboard: not available (it needs the bokeh package: pip install 'bokeh>=3.1')"
    n = len(client.scheduler_info().get("workers", {}))
    return f"Dask {kind} cluster, scheduler {client.scheduler.address}, {n} worker(s) now; {dash}"


# ---------------------------------------------------------------------------------------------
# mapping any function over seeds (Monte Carlo replications, randomization inference, bootstraps)
# ---------------------------------------------------------------------------------------------
def _nbytes(value: Any) -> int:
    """Bytes of a data frame (its columns and index) or of anything with ``nbytes`` (arrays, series,
    :class:`analysis.tfp.arrays.PanelData`); 0 for the rest."""
    if isinstance(value, pd.DataFrame):
        return int(value.memory_usage(index=True).sum())
    n = getattr(value, "nbytes", None)
    return int(n) if isinstance(n, (int, np.integer)) else 0


def _run_batch(fn: Callable, seeds: Sequence[Any], args: tuple, kwargs: dict) -> list:
    with blas_threads(1):
        return [fn(s, *args, **kwargs) for s in seeds]


def map_draws(
    fn: Callable[..., Any],
    seeds: Sequence[Any] | int,
    *args: Any,
    client: Any = None,
    engine: Mapping[str, Any] | str | None = None,
    n_workers: int | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
    desc: str = "draws",
    **kwargs: Any,
) -> list:
    """``[fn(seed, *args, **kwargs) for seed in seeds]``, on a Dask cluster when asked, in order.

    The one function the study's many-draw loops (randomization inference, bootstraps) use to run
    on the Monte Carlo engine. Each draw must depend only on its seed and the arguments, so the
    result is the same locally and on any number of workers.

    Parameters
    ----------
    fn : callable
        Called as ``fn(seed, *args, **kwargs)``; must be importable by the workers (a module-level
        function, not a lambda defined in a notebook, when running on a cluster).
    seeds : sequence of object or int
        The draws' seeds (ints or ``numpy.random.SeedSequence``), or an int ``n`` for
        ``numpy.random.SeedSequence(0).spawn(n)``... pass your own seeds to keep your parameter set's ``seed``.
    *args, **kwargs
        Passed to every call. Large arguments (data frames, arrays, anything with an ``nbytes``
        above 100 kB) are sent to each worker once.
    client : object, optional
        An open ``distributed.Client``. Without ``client`` and ``engine`` the draws run here in a
        plain loop (no Dask), which is fastest for cheap draws on one machine.
    engine, n_workers : mapping or str, optional; int, optional
        Start a cluster for this call (see :func:`open_client`), e.g. ``engine="local"`` or
        ``"slurm"``.
    batch_size : int, optional
        Draws per task (default: about four tasks per worker, at most 1,000 draws a task), so that
        millisecond draws are not dominated by the scheduler's per-task overhead.
    progress, desc : bool, optional; str, default 'draws'
        Progress bar over batches.

    Examples
    --------
    >>> def draw(seed, scale):
    ...     return float(np.random.default_rng(seed).normal() * scale)
    >>> local = map_draws(draw, np.random.SeedSequence(1).spawn(4), 2.0, progress=False)
    >>> len(local), local == map_draws(draw, np.random.SeedSequence(1).spawn(4), 2.0, progress=False)
    (4, True)
    """
    if isinstance(seeds, (int, np.integer)):
        seeds = np.random.SeedSequence(0).spawn(int(seeds))
    seeds = list(seeds)
    if client is None and engine is None:
        return [fn(s, *args, **kwargs) for s in tqdm(seeds, desc=desc, **progress_options(progress))]
    ctx = contextlib.nullcontext(client) if client is not None else open_client(engine, n_workers=n_workers)
    with ctx as cl:
        workers = max(1, len(cl.scheduler_info().get("workers", {})))
        size = batch_size or max(1, min(1000, math.ceil(len(seeds) / (4 * workers))))
        big = lambda v: _nbytes(v) > 1e5
        args_f = tuple(cl.scatter(a, broadcast=True) if big(a) else a for a in args)
        kwargs_f = {k: (cl.scatter(v, broadcast=True) if big(v) else v) for k, v in kwargs.items()}
        batches = [seeds[i:i + size] for i in range(0, len(seeds), size)]
        futures = [cl.submit(_run_batch, fn, b, args_f, kwargs_f, pure=False, priority=-i) for i, b in enumerate(batches)]
        from distributed import as_completed

        bar = tqdm(total=len(seeds), desc=desc, **progress_options(progress))
        for fut in as_completed(futures):
            bar.update(len(batches[futures.index(fut)]))
        bar.close()
        out = []
        for fut in futures:
            out.extend(fut.result())
        return out


def check_engine(engine: Any, key: str = "engine") -> Mapping[str, Any] | str | None:
    """``engine`` if :func:`open_client` can take it; else a :class:`~analysis.config.ParameterError` naming ``key``.

    ``None`` (the draws run in a plain loop here), ``"local"``, ``"slurm"``, ``"pbs"``, a scheduler
    address (``"tcp://host:8786"``) or a mapping with ``cluster`` (one of those) and the options of
    :func:`open_client` (``n_workers``, ``threads_per_worker``, ``memory_limit``, ``dashboard_address``,
    ``jobqueue``, ``jobs``). Checked when a parameter set is read, before any long loop starts.

    Examples
    --------
    >>> check_engine({"cluster": "local", "n_workers": 2}, "tfp.engine")
    {'cluster': 'local', 'n_workers': 2}
    >>> check_engine("lokal", "tfp.engine")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    analysis.config.ParameterError: tfp.engine must be null (a plain loop here), 'local', 'slurm', 'pbs', ...; got 'lokal'
    """
    what = ("must be null (a plain loop here), 'local', 'slurm', 'pbs', a scheduler address such as 'tcp://host:8786', "
            "or a mapping with 'cluster' and its options")
    kind_ok = lambda k: k in ("local", "slurm", "pbs") or (isinstance(k, str) and "://" in k)  # noqa: E731
    if engine is None or (isinstance(engine, str) and kind_ok(engine)):
        return engine
    if not isinstance(engine, Mapping):
        raise ParameterError(f"{key} {what}; got {engine!r}")
    unknown = sorted(set(map(str, engine)) - ENGINE_KEYS)
    if unknown:
        raise ParameterError(f"unknown parameter(s) {', '.join(f'{key}.{u}' for u in unknown)}; known keys here: {', '.join(sorted(ENGINE_KEYS))}")
    if engine.get("cluster") is not None and not kind_ok(engine["cluster"]):
        raise ParameterError(f"{key}.cluster must be 'local', 'slurm', 'pbs' or a scheduler address such as 'tcp://host:8786'; got {engine['cluster']!r}")
    for k in ("n_workers", "threads_per_worker", "jobs"):
        v = engine.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise ParameterError(f"{key}.{k} must be a positive whole number, got {v!r}")
    if engine.get("jobqueue") is not None and not isinstance(engine["jobqueue"], Mapping):
        raise ParameterError(f"{key}.jobqueue must be a mapping of dask_jobqueue options, got {engine['jobqueue']!r}")
    return engine


@contextlib.contextmanager
def draws_mapper(engine: Any, *, key: str = "engine", quiet: bool = False) -> Iterator[Callable[..., list] | None]:
    """The ``mapper`` of the many-draw loops (TFP bootstrap, randomization inference) on ``engine``.

    Yields ``None`` for ``engine=None`` (the loops then run here, as without an engine), else
    :func:`map_draws` bound to a client of :func:`open_client` (``functools.partial(map_draws,
    client=client)``), the cluster started once for every loop inside the ``with`` and closed after.
    ``engine`` is checked first (:func:`check_engine`), the error naming ``key``.

    Examples
    --------
    >>> with draws_mapper(None, key="tfp.engine") as mapper:
    ...     mapper is None
    True
    """
    engine = check_engine(engine, key)
    if engine is None:
        yield None
        return
    with open_client(engine, quiet=quiet) as client:
        yield functools.partial(map_draws, client=client)
