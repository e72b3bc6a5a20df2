"""Sampled estimators: estimates per second, the Hotelling test, one estimator verified end to end.

Run: ``cd benchmarks && python bench_estimators.py``. Prints, in one run:
1. estimates per second on the 10-step IPD (sigmoid policies), K = 64 inner and outer
   trajectories, L = 1, for every estimator: the vectorised fast path (sampling included)
   against the autograd DiCE reference on the same batches (sampling excluded), and the ratio;
2. Hotelling's T-squared on 20000 rows of 5 components;
3. verifying one estimator (checks 3 to 5) on a case at the default budget of 20000 samples,
   end to end, exact expectation and fingerprint included.
"""

from __future__ import annotations

import time

import numpy as np

from mapg_verify.casefile.reader import load_case, parse_case
from mapg_verify.checks.estimator import verify_estimator
from mapg_verify.checks.statistics import mean_test
from mapg_verify.estimators.dispatch import exact_expectation
from mapg_verify.estimators.montecarlo import draw, draw_recorded
from mapg_verify.estimators.reference import reference
from mapg_verify.estimators.surrogate import plan
from mapg_verify.estimators.table import ESTIMATORS
from mapg_verify.exact.compiled import compile_game
from mapg_verify.exact.truths import Truths

IPD10 = {
    "name": "ipd-10-steps",
    "game": {"builtin": "ipd_finite"},
    "policy": {"kind": "sigmoid"},
    "params": {"seed": 0, "scale": 0.5},
    "inner": {"model": ["expected"], "steps": 1, "batch": 64},
    "estimators": {"names": list(ESTIMATORS)},
}


def seconds_per(function, minimum: float = 1.0) -> float:
    """Mean seconds per call over at least ``minimum`` seconds (and at least 2 calls)."""
    calls, started = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - started < minimum:
        function()
        calls += 1
    return (time.perf_counter() - started) / calls


def throughput_table() -> None:
    case = parse_case(IPD10, "ipd-10-steps")
    compiled = compile_game(case.game, case.policy)
    print("IPD, 10 steps, sigmoid, K = K_out = 64, L = 1: estimates per second")
    print(f"{'estimator':<18}{'fast path':>12}{'autograd':>12}{'ratio':>10}")
    for name, estimator in ESTIMATORS.items():
        run = plan(case, compiled, estimator)
        rng = np.random.default_rng(0)
        fast = seconds_per(lambda run=run, rng=rng: draw(run, 2000, rng)) / 2000
        draws = draw_recorded(run, 3, rng)
        slow = seconds_per(lambda run=run, draws=draws: [reference(run, draws, r) for r in range(3)], 2.0) / 3
        print(f"{name:<18}{1 / fast:>12,.0f}{1 / slow:>12,.1f}{slow / fast:>9,.0f}x")


def hotelling_line() -> None:
    rows = np.random.default_rng(0).standard_normal((20000, 5))
    milliseconds = seconds_per(lambda: mean_test(rows, np.zeros(5))) * 1e3
    print(f"\nHotelling T^2 with Holm z-tests, 20000 x 5 rows: {milliseconds:.2f} ms")


def end_to_end_table() -> None:
    print("\nverify one estimator (checks 3 to 5), 20000 samples, seconds")
    print(f"{'case':<16}{'estimator':<18}{'expectation':>12}{'checks':>10}{'total':>10}")
    for path in ("../cases/pd.toml", "../cases/ipd_short.toml"):
        case = load_case(path)
        compiled = compile_game(case.game, case.policy)
        truths = Truths(case, compiled)
        started = time.perf_counter()
        exact = exact_expectation(case, compiled, "meta-mapg")
        middle = time.perf_counter()
        verify_estimator(case, compiled, truths, "meta-mapg", 0, exact)
        ended = time.perf_counter()
        print(
            f"{case.name:<16}{'meta-mapg':<18}{middle - started:>12.2f}{ended - middle:>10.2f}{ended - started:>10.2f}"
        )


if __name__ == "__main__":
    throughput_table()
    hotelling_line()
    end_to_end_table()
