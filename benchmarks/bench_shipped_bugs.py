"""Power table for the bugs that shipped (examples/shipped_bugs.py): does the toolkit catch each?

Run: ``python benchmarks/bench_shipped_bugs.py [SAMPLES]`` (default 2,000). Each bug's claim
(``meta-mapg``, or ``claim_of``'s built-in) is checked in exact mode (every expectation here
enumerates) and in statistical mode at ``SAMPLES`` draws: the paired test against that built-in on
the same batches, its p-value and the samples that detect the measured difference with 99% power.
The default is below the toolkit's 20,000 because one plug-in call takes about 10 ms on a shared
2-core machine (20,000: ~3 minutes a bug).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from examples.shipped_bugs import SHIPPED, UNCATCHABLE, claim_of, small_case  # noqa: E402
from mapg_verify import check_estimator  # noqa: E402


def claim_figures(name: str, mode: str, samples: int) -> dict:
    _, function, *_ = SHIPPED[name]
    result = check_estimator(function, small_case(name), claim=claim_of(name), mode=mode, samples=samples, seed=1)
    claim = next(c for c in result.checks if c.kind == "claim")
    return {"verdict": claim.verdict, **claim.figures}


def needed(figures: dict) -> str:
    """Samples at which the measured difference is detected with 99% power: the budget scaled by
    (smallest detected / measured)^2."""
    measured = figures.get("relative difference measured") or 0.0
    if measured <= 0.0:
        return "-"
    ratio = figures["smallest relative difference detected (99% power)"] / measured
    return f"{max(1, round(figures['samples'] * ratio**2)):,}"


def main(samples: int) -> None:
    print(f"| bug | source | caught (exact) | exact error | caught ({samples:,} samples) | p-value | samples needed |")
    print("|---|---|---|---|---|---|---|")
    for name, (source, *_) in SHIPPED.items():
        exact = claim_figures(name, "exact", 20)
        sampled = claim_figures(name, "statistical", samples)
        note = " (unbiased: its expectation is the claim's)" if name in UNCATCHABLE else ""
        p_value = sampled.get("p-value")
        print(
            f"| `{name}` | {source} | {'yes' if exact['verdict'] == 'fail' else 'no'}{note} | {exact['error']:.2g} | "
            f"{'yes' if sampled['verdict'] == 'fail' else 'no'} | {0.0 if p_value is None else p_value:.2g} | "
            f"{'-' if name in UNCATCHABLE else needed(sampled)} |",
            flush=True,
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2_000)
