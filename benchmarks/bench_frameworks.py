"""Verifying an estimator written in JAX or PyTorch: seconds at the default budget, beside the built-in.

Run: ``cd benchmarks && python bench_frameworks.py [samples] [case]``. Prints, in one run, on the
case (default the one-shot prisoner's dilemma, ``tests/gold/tiny.toml``: sigmoid, K = K_out = 2,
L = 1; ``../tests/claims/ipd_two_steps.toml`` is the 2-step IPD with K = 2 of issue 29, whose
plug-ins' expectations are out of enumeration), the seconds taken by the whole verification
(truth, every check, the claim ``= "meta-mapg"`` in the case's own mode and in statistical mode,
paired and regression-adjusted) at ``samples`` replicates (default 20000, the default budget) of:

- the built-in ``meta-mapg`` (its claim, its fingerprint, judged exactly; no bias sweep, which
  plug-ins do not have);
- Meta-MAPG as DiCE code: in autograd (``examples/dice_meta_mapg.py``, one call per replicate), in
  JAX (``examples/jax_meta_mapg.py``: one replicate per call, compiled by the toolkit, and batched
  with ``jax.vmap``) and in torch (``examples/torch_meta_mapg.py``: batched with a leading
  replicate axis, and one replicate per call);

and, for what a user would do instead of verifying, the seconds to compute the same ``samples``
estimates alone with ``jax.jit(jax.vmap(...))`` (compiled, batches drawn beforehand). Each plug-in
runs first in the case's own mode: a JAX plug-in's compilation (once per process, about a second
here) is in that column, not in the statistical one. The 10-step IPD's estimates per second
against the JAX port are in ``bench_jax.py``.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_jax import jax_sampled  # noqa: E402

from examples import dice_meta_mapg, jax_meta_mapg, torch_meta_mapg  # noqa: E402
from mapg_verify import check_estimator  # noqa: E402
from mapg_verify.casefile.reader import load_case  # noqa: E402
from mapg_verify.pipeline import evaluate  # noqa: E402

CASE = ROOT / "tests/gold/tiny.toml"


def _single(function):
    def single(inner, outer, theta, settings):
        return function(inner, outer, theta, settings)

    return single


PLUG_INS = (
    ("autograd, one call per replicate", dice_meta_mapg.meta_mapg, "numpy"),
    ("JAX, one call per replicate (jit)", jax_meta_mapg.meta_mapg, "jax"),
    ("JAX, batched (vmap)", jax_meta_mapg.meta_mapg_batched, "jax"),
    ("torch, one call per replicate", _single(torch_meta_mapg.meta_mapg), "torch"),
    ("torch, batched", torch_meta_mapg.meta_mapg, "torch"),
)


def built_in_seconds(path: Path, samples: int, mode: str | None) -> float:
    case = load_case(path)
    settings = dataclasses.replace(case.estimators, names=("meta-mapg",), samples=samples)
    # no bias sweep: plug-ins have none, so the two verifications run the same checks
    checks = dataclasses.replace(case.checks, claim_mode=mode or case.checks.claim_mode, seeds=0, sweep=False)
    started = time.perf_counter()
    evaluate(dataclasses.replace(case, estimators=settings, checks=checks), seed=0)
    return time.perf_counter() - started


def estimates_alone(case, samples: int) -> float:
    """Seconds for ``samples`` estimates of the JAX port, ``jax.jit(jax.vmap(...))``, batches drawn
    beforehand (compiled first)."""
    run, _ = jax_sampled(case, samples)
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main(samples: int, path: Path = CASE) -> None:
    print(f"{path.relative_to(ROOT)}, claim = meta-mapg, {samples:,} samples; seconds (x built-in)")
    print(f"{'estimator':<36}{'own mode claim':>20}{'statistical claim':>22}")
    reference = {mode: built_in_seconds(path, samples, mode) for mode in (None, "statistical")}
    print(f"{'meta-mapg (built-in)':<36}{reference[None]:>10.2f} (  1.0x){reference['statistical']:>13.2f} (  1.0x)")
    for label, function, framework in PLUG_INS:
        cells = []
        for mode in (None, "statistical"):
            started = time.perf_counter()
            result = check_estimator(function, path, "meta-mapg", samples=samples, mode=mode, framework=framework)
            seconds = time.perf_counter() - started
            assert result.passed, result.summary
            cells.append(f"{seconds:>10.2f} ({seconds / reference[mode]:>5.1f}x)")
        print(f"{label:<36}{cells[0]:>20}{cells[1]:>22}", flush=True)
    print(f"{'JAX jit(vmap), the estimates alone':<36}{estimates_alone(load_case(path), samples):>10.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000, Path(sys.argv[2]).resolve() if len(sys.argv) > 2 else CASE)
