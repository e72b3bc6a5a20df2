"""Running a campaign on Dask (``dask.distributed``): a local cluster by default, or a running one.

Tasks (:func:`mapg_verify.campaign.run_task`) go to the workers as futures; each finished task's
record, sealed with the spec's fingerprint and its own checksum (:func:`seal`), is appended to
``DIR/tasks.jsonl`` as it arrives (one JSON line, flushed and synced), so an interrupted campaign
loses only the tasks in flight. The spec's result-relevant fields are in ``DIR/spec.json``:
``resume`` refuses another spec, naming the keys that differ, then checks the store line by line
(:func:`read_store`), moves the damaged lines to ``DIR/tasks.jsonl.damaged`` (each reported on
standard error), rewrites the store without them (atomically) and submits only the games it
lacks. A record that cannot be written (a full disk) stops the campaign; the store stays
resumable. A worker that dies takes its running tasks with it; the scheduler gives them to the
other workers (Dask's ``allowed-failures``: a task that kills three workers is reported, and its
game left to ``resume``). The aggregate, the report and the failing games' case files are
written at the end, atomically, from the records alone, one per game: the same spec gives the
same aggregate whatever the workers, their number or their losses (``timings`` aside). Dask's
own log (its warnings as workers shut down among them) goes to ``DIR/dask.log``, not the console.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dask.config
from distributed import Client, LocalCluster, as_completed

from mapg_verify.campaign import (
    CampaignError,
    CampaignSpec,
    aggregate,
    case_toml,
    fingerprint,
    run_task,
    settings,
)
from mapg_verify.output import write_atomic
from mapg_verify.problem.errors import InputError
from mapg_verify.progress import Progress
from mapg_verify.report import render_campaign
from mapg_verify.results import canonical, digest, dumps, loads

STORE = "tasks.jsonl"
DAMAGED = STORE + ".damaged"
SPEC_FILE = "spec.json"
DASK_LOG = "dask.log"
DASK_LOGGERS = ("distributed", "tornado", "bokeh")  # those distributed sends to standard error


@dataclass(frozen=True)
class Store:
    """A store as read: its records by game (in line order), and its damaged lines as
    ``(line number, the line's bytes, the reason)``."""

    records: dict[int, dict]
    damaged: tuple[tuple[int, bytes, str], ...] = ()


def seal(record: dict, key: str) -> dict:
    """``record`` with the spec's fingerprint ``key`` and its own ``checksum`` (the :func:`digest` of the rest)."""
    record = {name: value for name, value in record.items() if name != "checksum"} | {"fingerprint": key}
    return record | {"checksum": digest(record)}


def record_problem(record: object, key: str, games: int) -> str | None:
    """Why a parsed line of a store is not a record of the campaign of fingerprint ``key`` (``None``: it is one)."""
    if not isinstance(record, dict):
        return f"is not a record but a JSON {type(record).__name__}"
    task = record.get("task")
    if isinstance(task, bool) or not isinstance(task, int):
        return f"has task {task!r}, not a game's number"
    if not 0 <= task < games:
        return f"has task {task}, not one of the spec's {games} games"
    if record.get("checksum") != digest({name: value for name, value in record.items() if name != "checksum"}):
        return "fails its checksum (its content changed)"
    if record.get("fingerprint") != key:
        return "was written under another spec (its fingerprint differs)"
    return None


def read_store(path: Path, key: str, games: int) -> Store:
    """The store at ``path`` of the campaign of fingerprint ``key``, line by line: a line is damaged
    when cut short (no newline at its end), not UTF-8 JSON, not a record of this campaign
    (:func:`record_problem`), or a game's second record."""
    if not path.exists():
        return Store({})
    lines = path.read_bytes().split(b"\n")
    tail = lines.pop()  # what follows the last newline: nothing, unless the last line was cut short
    records: dict[int, dict] = {}
    damaged = []
    for number, line in enumerate(lines, start=1):
        record, reason = _parse(line)
        reason = reason or record_problem(record, key, games)
        if reason is None and record["task"] in records:
            reason = f"is a second record of game {record['task']}"
        if reason:
            damaged.append((number, line, reason))
        else:
            records[record["task"]] = record
    if tail:
        damaged.append((len(lines) + 1, tail, "is cut short (no newline at its end)"))
    return Store(records, tuple(damaged))


def _parse(line: bytes) -> tuple[object, str | None]:
    """A line's JSON value, or why it has none (NaN and infinities are not JSON)."""
    if b"\0" in line:
        return None, "holds NUL bytes"
    try:
        return loads(line.decode()), None
    except UnicodeDecodeError:
        return None, "is not UTF-8 text"
    except ValueError as error:
        return None, f"is not JSON ({error})"


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


@contextlib.contextmanager
def _stops_campaign(path: Path):
    """An ``OSError`` writing ``path`` (a full disk, say) stops the campaign as a :class:`CampaignError`."""
    try:
        yield
    except OSError as error:
        reason = f"cannot be written ({error.strerror or error}): the campaign stopped; --resume finishes it"
        raise CampaignError(f"{path}: {reason}") from None


def check_spec(out: Path, spec: CampaignSpec) -> None:
    """Refuse to resume the campaign in ``out`` under another spec than its ``spec.json``'s, naming
    the keys that differ (or a store without a ``spec.json``: it cannot be matched to a spec)."""
    path = out / SPEC_FILE
    if not path.exists():
        if (out / STORE).exists():
            raise InputError("file", f"is missing beside {STORE}: its records cannot be matched to a spec", str(path))
        return
    try:
        written = loads(path.read_text())["campaign"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        reason = f"is not a campaign's spec.json ({type(error).__name__}: {error})"
        raise InputError("file", reason, str(path)) from None
    if not isinstance(written, dict):
        raise InputError("campaign", f"is not a table of the spec's fields, got {written!r}", str(path))
    current = settings(spec)
    differ = sorted(key for key in set(written) | set(current) if written.get(key) != current.get(key))
    if differ:
        detail = "; ".join(f"{key} {written.get(key)!r} there, {current.get(key)!r} here" for key in differ)
        raise InputError(
            ", ".join(f"campaign.{key}" for key in differ),
            f"differs from the spec the campaign in {out} was run with ({detail}): resume with that spec, "
            "or choose another --out",
            spec.path or None,
        )


def _prepare(out: Path, spec: CampaignSpec, store: Store) -> None:
    """The campaign folder ready for new records: its ``spec.json``, and a store without damaged
    lines (moved to ``tasks.jsonl.damaged``, each reported; the store rewritten atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    if not (out / SPEC_FILE).exists():
        write_atomic(out / SPEC_FILE, dumps({"fingerprint": fingerprint(spec), "campaign": settings(spec)}))
    if store.damaged:
        for number, _, reason in store.damaged:
            print(f"warning: {out / STORE}: line {number} {reason}: moved to {DAMAGED}", file=sys.stderr)
        _append(out / DAMAGED, b"".join(line + b"\n" for _, line, _ in store.damaged))
        write_atomic(out / STORE, "".join(canonical(record) + "\n" for record in store.records.values()))


@contextlib.contextmanager
def _dask_log(path: Path):
    """Dask's log records go to ``path``, not the console: this process's (the nannies' "Worker
    process still alive after 4.0 seconds, killing" among them) through a file handler on the
    loggers distributed configures, and a local cluster's workers' through the logging config
    they read from the environment as they start (``DASK_DISTRIBUTED__LOGGING``)."""
    form = dask.config.get("distributed.admin.log-format")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(form))
    saved = {name: (logging.getLogger(name).handlers, logging.getLogger(name).propagate) for name in DASK_LOGGERS}
    for name in DASK_LOGGERS:
        logging.getLogger(name).handlers, logging.getLogger(name).propagate = [handler], False
    workers = {
        "version": 1, "disable_existing_loggers": False, "formatters": {"dask": {"format": form}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(path), "formatter": "dask"}},
        "loggers": {name: {"handlers": ["file"], "propagate": False} for name in DASK_LOGGERS},
    }  # fmt: skip
    before = os.environ.get("DASK_DISTRIBUTED__LOGGING")
    os.environ["DASK_DISTRIBUTED__LOGGING"] = repr(workers)
    try:
        yield
    finally:
        for name, (handlers, propagate) in saved.items():
            logging.getLogger(name).handlers, logging.getLogger(name).propagate = handlers, propagate
        handler.close()
        if before is None:
            os.environ.pop("DASK_DISTRIBUTED__LOGGING", None)
        else:
            os.environ["DASK_DISTRIBUTED__LOGGING"] = before


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int | None, log: Path):
    """A client of the cluster at ``scheduler``, or of a new local one (one single-threaded
    worker process per core, or ``workers``; its dashboard, where bokeh is installed, on a free
    port), with Dask's log in file ``log`` (its folder made once the cluster answers). Dask's
    nannies set ``OMP_NUM_THREADS=1`` and the like in this process's environment to pass them to
    the workers, and leave them there; the environment is restored on the way out, so later
    subprocesses get this process's BLAS threads, not the workers'."""
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as error:
            raise InputError("--scheduler", f"no Dask scheduler answered at {scheduler!r} ({error})") from None
        log.parent.mkdir(parents=True, exist_ok=True)
        with _dask_log(log), client:
            yield client
        return
    environment = dict(os.environ)
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        cores = workers or os.cpu_count() or 1
        with (
            _dask_log(log),
            LocalCluster(n_workers=cores, threads_per_worker=1, dashboard_address=":0") as cluster,
            Client(cluster) as client,
        ):
            yield client
    finally:
        os.environ.clear()
        os.environ.update(environment)


def dashboard(client) -> str | None:
    """The dashboard's address, where the cluster serves one (it needs bokeh)."""
    services = client.scheduler_info().get("services", {})
    return client.dashboard_link if "dashboard" in services else None


def run_campaign(
    spec: CampaignSpec,
    out: str | Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    after_each: Callable | None = None,
    progress: bool = True,
) -> dict:
    """Run (or, with ``resume``, finish) the campaign into ``out``; return its aggregate.
    ``after_each(client, finished)`` is called after each stored record (progress, tests). A
    :class:`CampaignError` when a file cannot be written or a game has no record at the end."""
    out = Path(out)
    if not resume and ((out / STORE).exists() or (out / SPEC_FILE).exists()):
        raise InputError("--out", f"already holds a campaign ({out}): add --resume to finish it, or choose another")
    if resume:
        check_spec(out, spec)
    key = fingerprint(spec)
    store = read_store(out / STORE, key, spec.games)
    records = dict(store.records)
    todo = [index for index in range(spec.games) if index not in records]
    bar = Progress(spec.games, "games", delay=0.0 if progress else float("inf"))
    for _ in records:
        bar.advance()
    try:
        with _client(scheduler, workers, out / DASK_LOG) if todo else contextlib.nullcontext() as client:
            with _stops_campaign(out):
                _prepare(out, spec, store)
            if todo and progress and (link := dashboard(client)):
                print(f"Dask dashboard: {link}", flush=True)
            for finished, record in enumerate(_finished(client, spec, todo), start=1):
                with _stops_campaign(out / STORE):
                    _append(out / STORE, (canonical(record) + "\n").encode())
                records[record["task"]] = record
                bar.advance(record["case"]["name"] + (": FAIL" if "fail" in record["checks"].values() else ": pass"))
                if after_each:
                    after_each(client, finished)
    finally:
        bar.close()
    with _stops_campaign(out):
        return write_outputs(spec, out, records)


def _finished(client, spec: CampaignSpec, todo: list[int]):
    """Submit the games ``todo``; yield each one's sealed record as it finishes. A game whose task
    failed (it killed its workers, or a worker cannot import a plug-in) is reported and left out."""
    if not todo:
        return
    key = fingerprint(spec)
    futures = dict(zip(client.map(run_task, [spec] * len(todo), todo, pure=False), todo, strict=True))
    for future in as_completed(futures):
        try:
            record = future.result()
        except Exception as error:  # the others go on; --resume reruns this one
            print(f"warning: game {futures[future]} has no record: {type(error).__name__}: {error}", file=sys.stderr)
            continue
        yield seal(record, key)


def write_outputs(spec: CampaignSpec, out: Path, records: dict[int, dict]) -> dict:
    """``aggregate.json``, ``campaign.html`` and ``failures/NAME.toml`` (a case file per failing
    game); a :class:`CampaignError`, and nothing written, unless every game has its record."""
    result = aggregate(spec, list(records.values()))
    timings = {"task seconds": sum(r["seconds"] for r in records.values())}
    page = render_campaign(result)
    for failure in result["failures"]:
        write_atomic(out / "failures" / f"{failure['case']}.toml", case_toml(records[failure["task"]]["case"]))
    write_atomic(out / "aggregate.json", dumps(result | {"timings": timings}))
    write_atomic(out / "campaign.html", page)
    return result
