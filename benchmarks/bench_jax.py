"""Ours against JAX jit, issue "Ahead of JAX": every comparison in one run, with ratios and agreement.

Run: ``cd benchmarks && python bench_jax.py [--repeats 7] [--only sampled|exact]`` (JAX is the
``[jax]`` extra; ``--only exact`` runs tables 2-3). BLAS and XLA run on one thread (set here before
numpy and JAX load) and the process on one core (XLA's CPU runtime spreads a ``vmap`` over every
core whatever the flags: 1.8 cores busy on 2 without this); each comparison calls ours and JAX's in
turn ``repeats`` times and reports the medians, so both see the same moments of a shared machine.
Prints, against each goal:

1. sampled estimators on the 10-step IPD (sigmoid), K = K_out = 64, L = 1: estimates per second of
   every built-in, sampling included, against the JAX port of Meta-MAPG as DiCE code
   (``examples/jax_meta_mapg.py``) under ``jax.jit(jax.vmap(...))`` with the batches drawn
   beforehand (the only JAX port: the same JAX figure on every row); agreement: ``meta-mapg``'s
   estimates against JAX's on the same batches (goal: at least 1.5x);
2. the numeric backend on dense random games of 64 and 256 states: values, gradients and the
   model-E meta-gradient (L = 1) against ``jax.jit`` of ``jnp.linalg.solve``, of its ``jax.jacrev``
   and of ``jax.grad`` through the inner step (goal: at least 1x each);
3. the symbolic backend: the IPD's model-E meta-gradient (L = 1) against JAX jit (goal: at least 3x).
"""

from __future__ import annotations

import os

PINNED = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}
os.environ.update(PINNED)

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from bench_estimators import IPD10  # noqa: E402
from bench_numeric import ALPHA, jax_meta_gradient, jax_values  # noqa: E402

from examples import jax_meta_mapg  # noqa: E402
from mapg_verify.casefile.reader import parse_case  # noqa: E402
from mapg_verify.estimators.frameworks import caller  # noqa: E402
from mapg_verify.estimators.montecarlo import draw, draw_recorded  # noqa: E402
from mapg_verify.estimators.plugins import replicates_of  # noqa: E402
from mapg_verify.estimators.records import settings_of  # noqa: E402
from mapg_verify.estimators.surrogate import plan  # noqa: E402
from mapg_verify.estimators.table import ESTIMATORS  # noqa: E402
from mapg_verify.exact.backend import exact_values  # noqa: E402
from mapg_verify.exact.compiled import compile_game  # noqa: E402
from mapg_verify.exact.metagradient import expected_update  # noqa: E402
from mapg_verify.problem.catalog import ipd, random_game  # noqa: E402
from mapg_verify.problem.policies import POLICIES  # noqa: E402

SAMPLES = 2000  # estimates per call in the sampled comparison


def medians(functions: dict, repeats: int, calls: dict | None = None) -> dict:
    """Median seconds per call of each function, the functions called in turn ``repeats`` times
    (each timing ``calls[name]`` calls, default 1, after one untimed warm-up call)."""
    calls = calls or {}
    for function in functions.values():
        function()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            number = calls.get(name, 1)
            started = time.perf_counter()
            for _ in range(number):
                function()
            times[name].append((time.perf_counter() - started) / number)
    return {name: float(np.median(values)) for name, values in times.items()}


def verdict(ratio: float, goal: float) -> str:
    return "met" if ratio >= goal else "not met"


def jax_sampled(case, samples: int):
    """The JAX port under ``jax.jit(jax.vmap(...))`` on ``samples`` replicates drawn beforehand:
    the timed call, and the agreement with the built-in's estimates on the same batches."""
    surrogate = plan(case, compile_game(case.game, case.policy), ESTIMATORS["meta-mapg"])
    draws = draw_recorded(surrogate, samples, np.random.default_rng(0))
    replicates = replicates_of(surrogate, draws, samples)
    tiled = tuple(np.broadcast_to(t, (samples, *t.shape)).copy() for t in case.theta)
    call = caller("jax", jax_meta_mapg.meta_mapg_batched, settings_of(case), (samples,))

    def run():
        value, _ = call(replicates.inner, replicates.outer, tiled)
        return jax.block_until_ready(value)

    agreement = float(np.abs(np.asarray(run()) - draws.parts.total).max())  # the first call compiles
    return run, agreement


def sampled_table(repeats: int) -> None:
    case = parse_case(IPD10, "ipd-10-steps")
    case = dataclasses.replace(case, estimators=dataclasses.replace(case.estimators, names=("meta-mapg",)))
    compiled = compile_game(case.game, case.policy)
    theirs, agreement = jax_sampled(case, SAMPLES)
    print(f"1. IPD, 10 steps, K = K_out = 64, L = 1: estimates per second ({SAMPLES:,} per call; goal 1.5x JAX)")
    print(f"{'estimator':<20}{'ours':>10}{'JAX jit(vmap)':>15}{'ours / JAX':>12}{'verdict':>10}")
    for name, estimator in ESTIMATORS.items():
        run, rng = plan(case, compiled, estimator), np.random.default_rng(1)
        times = medians({"ours": lambda run=run, rng=rng: draw(run, SAMPLES, rng), "jax": theirs}, repeats)
        ratio = times["jax"] / times["ours"]
        print(
            f"{name:<20}{SAMPLES / times['ours']:>10,.0f}{SAMPLES / times['jax']:>15,.0f}{ratio:>11.2f}x"
            f"{verdict(ratio, 1.5):>10}"
        )
    print(f"meta-mapg against JAX on the same batches: max |difference| {agreement:.1e}")


def comparison_row(label: str, ours, theirs, repeats: int, goal: float) -> None:
    """One row: ``ours()`` against the jitted ``theirs()`` (compiled by its first call), medians of
    interleaved repeats of about 50 ms each, the ratio and the largest difference."""
    started = time.perf_counter()
    expected = np.asarray(theirs())
    compile_seconds = time.perf_counter() - started
    difference = np.abs(ours() - expected).max()
    functions = {"ours": ours, "jax": lambda: jax.block_until_ready(theirs())}
    calls = {name: max(1, int(0.05 / max(seconds, 1e-7))) for name, seconds in medians(functions, 1).items()}
    times = medians(functions, repeats, calls)
    ratio = times["jax"] / times["ours"]
    print(
        f"{label:<26}{times['ours'] * 1e6:>11.1f}{times['jax'] * 1e6:>11.1f}{compile_seconds:>10.2f}"
        f"{ratio:>8.2f}x{goal:>6.1f}x{verdict(ratio, goal):>9}{difference:>11.1e}"
    )


def meta_gradient_table(repeats: int) -> None:
    print("\n2-3. per evaluation, L = 1: ours against jax.jit(...) of the same computation (values: jnp.linalg.solve;")
    print("gradients: jax.jacrev; model-E meta-gradient: jax.grad through the inner step)")
    print(
        f"{'game (backend), quantity':<26}{'ours us':>11}{'JAX us':>11}{'compile s':>10}{'JAX/ours':>9}{'goal':>7}"
        f"{'verdict':>9}{'max diff':>11}"
    )
    for states in (64, 256):
        dense_rows(states, repeats)
    game, policy = ipd(), POLICIES["sigmoid"]
    compiled = exact_values(game, policy, "symbolic")
    x = np.random.default_rng(0).normal(size=compiled.layout.size)
    jitted = jax_meta_gradient(game, policy, 1)
    ours = lambda: expected_update(compiled, x, ALPHA, 1).total  # noqa: E731
    comparison_row("IPD (symbolic), meta", ours, lambda: jitted(x), repeats, 3.0)


def dense_rows(states: int, repeats: int) -> None:
    """The numeric backend's rows on a dense random game (softmax, gamma 0.9, infinite horizon)."""
    game, policy = random_game(seed=0, states=states, horizon="inf"), POLICIES["softmax"]
    compiled = exact_values(game, policy, "numeric")
    x = np.random.default_rng(0).normal(size=compiled.layout.size)
    values = jax_values(game, policy)
    rows = {
        "values": (compiled.value, jax.jit(values)),
        "gradients": (compiled.gradient, jax.jit(jax.jacrev(values))),
        "meta-gradient": (lambda p: expected_update(compiled, p, ALPHA, 1).total, jax_meta_gradient(game, policy, 1)),
    }
    for quantity, (ours, jitted) in rows.items():
        comparison_row(f"dense {states}, {quantity}", lambda f=ours: f(x), lambda j=jitted: j(x), repeats, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repeats per comparison")
    parser.add_argument("--only", choices=("sampled", "exact"), help="run only table 1 (sampled) or tables 2-3 (exact)")
    arguments = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):  # XLA's CPU runtime runs a vmap on every core despite the flags
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "all"
    print("threads pinned: " + ", ".join(f"{k}={v}" for k, v in PINNED.items()) + f"; cores: {cores}\n")
    if arguments.only != "exact":
        sampled_table(arguments.repeats)
    if arguments.only != "sampled":
        meta_gradient_table(arguments.repeats)


if __name__ == "__main__":
    main()
