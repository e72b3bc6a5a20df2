"""Running a campaign on Dask (``dask.distributed``): a local cluster by default, or a running one.

Tasks (:func:`mapg_verify.campaign.run_task`) go to the workers as futures; each finished
task's record is appended to ``DIR/tasks.jsonl`` as it arrives (one JSON line, flushed and
synced), so an interrupted campaign loses only the tasks in flight, and ``resume`` reads the
store and submits only the tasks it lacks. A worker that dies takes its running tasks with it;
the scheduler gives them to the other workers (Dask's ``allowed-failures``: a task that kills
three workers is reported, not retried for ever). The aggregate, the report and the failing
games' case files are written at the end, atomically, from the store alone: the same spec gives
the same aggregate whatever the workers, their number or their losses (``timings`` aside).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from distributed import Client, LocalCluster, as_completed

from mapg_verify.campaign import CampaignSpec, aggregate, case_toml, run_task
from mapg_verify.problem.errors import InputError
from mapg_verify.progress import Progress
from mapg_verify.report import render_campaign
from mapg_verify.results import dumps, write_atomic

STORE = "tasks.jsonl"


def read_store(path: Path) -> dict[int, dict]:
    """The finished tasks' records by task number; a last line cut short by a crash is ignored."""
    records = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            records[record["task"]] = record
    return records


def _append(path: Path, record: dict) -> None:
    with path.open("a") as store:
        store.write(json.dumps(record, sort_keys=True, allow_nan=False) + "\n")
        store.flush()
        os.fsync(store.fileno())


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int | None):
    """A client of the cluster at ``scheduler``, or of a new local one (one single-threaded
    worker process per core, or ``workers``; its dashboard, where bokeh is installed, on a free
    port). Dask's nannies set ``OMP_NUM_THREADS=1`` and the like in this process's environment to
    pass them to the workers, and leave them there; the environment is restored on the way out,
    so later subprocesses get this process's BLAS threads, not the workers'."""
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as error:
            raise InputError("--scheduler", f"no Dask scheduler answered at {scheduler!r} ({error})") from None
        with client:
            yield client
        return
    environment = dict(os.environ)
    try:
        cores = workers or os.cpu_count() or 1
        with (
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
    ``after_each(client, finished)`` is called after each stored record (progress, tests)."""
    out = Path(out)
    store = out / STORE
    if store.exists() and not resume:
        raise InputError("--out", f"already holds a campaign ({store}): add --resume to finish it, or choose another")
    done = read_store(store)
    todo = [index for index in range(spec.games) if index not in done]
    bar = Progress(spec.games, "games", delay=0.0 if progress else float("inf"))
    for _ in done:
        bar.advance()
    if todo:
        with _client(scheduler, workers) as client:
            out.mkdir(parents=True, exist_ok=True)
            link = dashboard(client)
            if link and progress:
                print(f"Dask dashboard: {link}", flush=True)
            futures = client.map(run_task, [spec] * len(todo), todo, pure=False)
            for finished, future in enumerate(as_completed(futures), start=1):
                record = future.result()
                _append(store, record)
                bar.advance(record["case"]["name"] + (": FAIL" if record["failed"] else ": pass"))
                if after_each:
                    after_each(client, finished)
    bar.close()
    return write_outputs(spec, out, read_store(store))


def write_outputs(spec: CampaignSpec, out: Path, records: dict[int, dict]) -> dict:
    """``aggregate.json``, ``campaign.html`` and ``failures/NAME.toml`` (a case file per failing game)."""
    result = aggregate(spec, list(records.values()))
    timings = {"task seconds": sum(r["seconds"] for r in records.values())}
    page = render_campaign(result)
    for failure in result["failures"]:
        write_atomic(out / "failures" / f"{failure['case']}.toml", case_toml(records[failure["task"]]["case"]))
    write_atomic(out / "aggregate.json", dumps(result | {"timings": timings}))
    write_atomic(out / "campaign.html", page)
    return result
