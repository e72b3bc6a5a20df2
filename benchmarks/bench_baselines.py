"""Variance reduction by baselines: replicates for a 10% relative error, bias and time per draw.

Run: ``cd benchmarks && python bench_baselines.py [samples]``. On ``cases/baselines.toml`` (the
IPD cut to 2 steps, gamma 0.8, K = K_out = 4, L = 1, the timestep pairing), for every estimator
it lists, side by side in one process: the exact expectation's relative bias against model E
and against model S (computed with the estimator's own inner loop: with its inner baseline),
the replicates ``tr(Sigma) / (0.1 ||E||)^2`` for a 10% relative spread about its own mean, the
replicates for a 10% root-mean-square error against model S (bias included: "never" when the
bias alone exceeds it), and the milliseconds per 1,000 Monte-Carlo replicates; ``Sigma`` from
``samples`` replicates (default 20000, the default budget) at a fixed seed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mapg_verify.casefile.reader import load_case  # noqa: E402
from mapg_verify.checks.estimator import samples_needed  # noqa: E402
from mapg_verify.checks.result import relative_bias  # noqa: E402
from mapg_verify.checks.sweep import model_s  # noqa: E402
from mapg_verify.estimators.dispatch import builtin_for, draw_rows, exact_expectation  # noqa: E402
from mapg_verify.exact.compiled import compile_game  # noqa: E402
from mapg_verify.exact.truths import Truths  # noqa: E402

TARGET = 0.1


def main(samples: int) -> None:
    case = load_case(ROOT / "cases/baselines.toml")
    compiled = compile_game(case.game, case.policy)
    truths = Truths(case, compiled)
    header = (
        "estimator", "inner / outer baseline", "bias vs E", "bias vs S", "n spread", "n vs S", "ms / 1000"
    )  # fmt: skip
    rows = []
    for name in case.estimators.names:
        estimator = builtin_for(case, name)
        exact = exact_expectation(case, compiled, name).total
        model_s_total = model_s(case, truths, name, case.inner.alpha).total
        start = time.perf_counter()
        draws = draw_rows(case, compiled, name, samples, np.random.default_rng(0))
        milliseconds = 1000 * (time.perf_counter() - start) / samples * 1000
        covariance = np.atleast_2d(np.cov(draws, rowvar=False))
        spread = samples_needed(np.zeros_like(exact), covariance, float(np.linalg.norm(exact)), TARGET)
        error = samples_needed(exact - model_s_total, covariance, float(np.linalg.norm(model_s_total)), TARGET)
        lam = f", GAE {estimator.gae_lambda:g}" if estimator.baseline != "none" and estimator.gae_lambda != 1 else ""
        rows.append(
            (
                name,
                f"{estimator.inner_baseline} / {estimator.baseline}{lam}",
                f"{relative_bias(exact, truths.expected().total):.3f}",
                f"{relative_bias(exact, model_s_total):.3f}",
                f"{spread:,.0f}",
                "never" if np.isinf(error) else f"{error:,.0f}",
                f"{milliseconds:.1f}",
            )
        )
    widths = [max(len(str(r[c])) for r in [header, *rows]) for c in range(len(header))]
    print(f"{case.name}: {samples} replicates per estimator, target relative error {TARGET}")
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
