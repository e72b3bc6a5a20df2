"""Exact values of the IPD: derive-and-compile and evaluation times per backend, against autograd.

Run: ``python benchmarks/bench_values.py [--sympy-timeout SECONDS]``. Prints one table:
for each symbolic/compile backend, the time to differentiate and compile V, grad V
and ``step`` (every gradient and the Jacobian of the simultaneous gradient
``xi``), the time per evaluation of each compiled function, the autograd
oracle's time for the same quantity (``d xi/dx`` as autograd's Jacobian of
``xi``), and the ratio oracle / compiled.
Plain sympy runs in a child process and is stopped at the timeout.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
import timeit

import autograd
import numpy as np
import sympy

from mapg_verify.exact.compiled import compile_values, llvm_available
from mapg_verify.exact.symbolic import symbolic_values
from mapg_verify.oracles.autodiff import autograd_values
from mapg_verify.problem.catalog import ipd
from mapg_verify.problem.policies import POLICIES


def per_call(function, x, seconds: float = 0.5) -> float:
    """Seconds per call: the fastest of repeated timing runs (as ``timeit`` advises; slower
    runs measure the machine's other work), each run ``autorange``'s number of calls."""
    timer = timeit.Timer(lambda: function(x))
    number, spent = timer.autorange()
    repeats = int(min(max(3, seconds / max(spent, 1e-9)), 15))
    return min(timer.repeat(repeat=repeats, number=number)) / number


def sympy_build(values, symbols, queue) -> None:
    """Plain sympy: differentiate and lambdify (with CSE); report the seconds taken."""
    start = time.perf_counter()
    expressions = [sympy.sympify(v) for v in values]
    x = [sympy.Symbol(str(s)) for s in symbols]
    gradients = [[sympy.diff(v, xj) for xj in x] for v in expressions]
    half = len(x) // 2  # two agents with equal parameter counts
    rows = [
        [sympy.diff(g[r], xj) for r in range(k * half, (k + 1) * half) for xj in x] for k, g in enumerate(gradients)
    ]
    derived = time.perf_counter()
    steps = [gradients[k] + rows[k] for k in range(len(rows))]
    functions = [sympy.lambdify(x, block, cse=True) for block in (expressions, gradients, *steps)]
    point = np.random.default_rng(0).normal(size=len(x))
    evaluation = [per_call(lambda p, f=f: f(*p), point) for f in functions]
    queue.put((derived - start, time.perf_counter() - derived, evaluation))


def sympy_row(symbolic, timeout: float):
    queue = multiprocessing.Queue()
    child = multiprocessing.Process(target=sympy_build, args=(symbolic.values, symbolic.symbols, queue))
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.terminate()
        return None
    return queue.get()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sympy-timeout", type=float, default=60.0)
    arguments = parser.parse_args()
    backends = ["llvm", "lambda"] if llvm_available() else ["lambda"]
    for kind in ("sigmoid", "softmax"):
        game, policy = ipd(), POLICIES[kind]
        symbolic = symbolic_values(game, policy)
        x = np.random.default_rng(0).normal(size=symbolic.layout.size)

        def values(point, game=game, policy=policy):
            return autograd_values(game, policy, point)

        def simultaneous(point, values=values, layout=symbolic.layout):
            gradients = autograd.jacobian(values)(point)
            return autograd.numpy.concatenate([gradients[k, layout.slice(k)] for k in range(2)])

        oracle = {
            "value": per_call(values, x),
            "gradient": per_call(autograd.jacobian(values), x),
            "step": per_call(autograd.jacobian(simultaneous), x),
        }
        print(
            f"\nIPD, {kind} policies ({symbolic.layout.size} parameters); autograd oracle per call: "
            + ", ".join(f"{k} {v * 1e6:.0f} us" for k, v in oracle.items())
        )
        header = f"{'backend':<18}{'derive s':>10}{'compile s':>11}"
        for name in oracle:
            header += f"{name + ' us':>14}{'ratio':>9}"
        print(header)
        for backend in backends:
            compiled = compile_values(symbolic, backend)
            timings = [per_call(f, x) for f in (compiled.value, compiled.gradient, compiled.gradient_and_jacobian)]
            print_row(f"symengine/{backend}", compiled.seconds["derive"], compiled.seconds["compile"], timings, oracle)
        result = sympy_row(symbolic, arguments.sympy_timeout)
        if result is None:
            print(f"{'sympy/lambdify':<18}  did not finish within {arguments.sympy_timeout:.0f} s (stopped)")
        else:
            derive, compile_seconds, evaluation = result
            print_row("sympy/lambdify", derive, compile_seconds, [*evaluation[:2], sum(evaluation[2:])], oracle)


def print_row(label: str, derive: float, compile_seconds: float, timings: list[float], oracle: dict) -> None:
    row = f"{label:<18}{derive:>10.3f}{compile_seconds:>11.3f}"
    for seconds, reference in zip(timings, oracle.values(), strict=True):
        row += f"{seconds * 1e6:>14.1f}{reference / seconds:>8.0f}x"
    print(row)


if __name__ == "__main__":
    main()
