"""Campaign throughput: games per minute, a local Dask cluster against ``run``'s process pool on the same games.

Run: ``cd benchmarks && python bench_campaign.py [GAMES]`` (default 24). Prints, in one run, for
the campaign below (``GAMES`` games of 1 to 2 states, horizons 1 to 2, ``meta-mapg`` and
``meta-pg`` with the four planted bugs, 1,000 samples): the wall-clock seconds and games per
minute of ``run_campaign`` on a local cluster of one worker per core (start-up included) and of
``pipeline.run_cases`` with one process per core over the same case files, and their ratio.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import tomllib

from mapg_verify.campaign import parse_spec, task_document
from mapg_verify.casefile.reader import parse_case
from mapg_verify.cluster import run_campaign
from mapg_verify.pipeline import run_cases

SPEC = """
[campaign]
games = {games}
states = [1, 2]
actions = [2, 2]
horizon = [1, 2]
estimators = ["meta-mapg", "meta-pg"]
mutants = true
samples = 1000
seed = 3
"""


def main(games: int) -> None:
    spec = parse_spec(tomllib.loads(SPEC.format(games=games)))
    cores = os.cpu_count() or 1
    print(f"{games} games, {len(spec.names)} estimators each, {cores} cores")
    print(f"{'engine':<34}{'seconds':>10}{'games/min':>12}{'ratio':>8}")
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        run_campaign(spec, folder, workers=cores, progress=False)
        dask_seconds = time.perf_counter() - started
    cases = [parse_case(task_document(spec, j), f"game-{j}") for j in range(games)]
    started = time.perf_counter()
    run_cases(cases, 0, cores)
    pool_seconds = time.perf_counter() - started
    for label, seconds in (("run's process pool", pool_seconds), ("Dask LocalCluster (campaign)", dask_seconds)):
        print(f"{label:<34}{seconds:>10.1f}{60 * games / seconds:>12.1f}{seconds / pool_seconds:>7.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 24)
