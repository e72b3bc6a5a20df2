"""Verifying a plug-in's claim: time and verdict at the default budget, beside the built-in.

Run: ``cd benchmarks && python bench_claims.py [samples]``. Prints, in one run, on the one-shot
prisoner's dilemma (``tests/gold/tiny.toml``: sigmoid, K = K_out = 2, L = 1) and on a two-step
game (``tests/claims/horizon_two.toml``), for the DiCE ports of ``examples/dice_meta_mapg.py``
claiming ``= "meta-mapg"`` in statistical mode at ``samples`` (default 20000, the default
budget): the verdict, the paired test's p-value, what a pass rules out, and the seconds taken by
the whole verification (truth, every check, the claim), against the same verification of the
built-in ``meta-mapg`` (whose claim is its fingerprint, judged exactly).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from examples import dice_meta_mapg as dice  # noqa: E402
from mapg_verify import check_estimator  # noqa: E402
from mapg_verify.casefile.reader import load_case  # noqa: E402
from mapg_verify.pipeline import evaluate  # noqa: E402

CASES = {"one-shot PD": ROOT / "tests/gold/tiny.toml", "two-step game": ROOT / "tests/claims/horizon_two.toml"}
PORTS = (
    dice.meta_mapg,
    dice.meta_mapg_loo,
    dice.stop_one_level,
    dice.whole_batch_magic,
    dice.no_peer_log_probs,
    dice.baseline_unstopped,
    dice.reward_target,
)


def built_in_seconds(path: Path, samples: int) -> float:
    case = load_case(path)
    settings = dataclasses.replace(case.estimators, names=("meta-mapg",), samples=samples)
    started = time.perf_counter()
    evaluate(dataclasses.replace(case, estimators=settings), seed=0)
    return time.perf_counter() - started


def main(samples: int) -> None:
    print(f"claim = meta-mapg, statistical mode, {samples:,} samples")
    print(
        f"{'case':<15}{'estimator':<20}{'verdict':>8}{'p-value':>10}{'rules out':>11}{'seconds':>9}{'vs built-in':>13}"
    )
    for label, path in CASES.items():
        reference = built_in_seconds(path, samples)
        print(f"{label:<15}{'meta-mapg (built-in)':<20}{'':>8}{'':>10}{'':>11}{reference:>9.1f}{1:>12.0f}x")
        for function in PORTS:
            started = time.perf_counter()
            result = check_estimator(function, path, claim="meta-mapg", samples=samples, mode="statistical")
            seconds = time.perf_counter() - started
            (claim,) = [c for c in result.checks if c.kind == "claim"]
            figures = claim.figures
            p_value = _short(figures.get("p-value"))
            ruled = _short(figures.get("smallest relative difference detected (99% power)"))
            print(
                f"{'':<15}{function.__name__:<20}{claim['verdict']:>8}{p_value:>10}{ruled:>11}"
                f"{seconds:>9.1f}{seconds / reference:>12.0f}x",
                flush=True,
            )


def _short(value: float | None) -> str:
    return "-" if value is None else f"{value:.2g}"


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
