"""Exact meta-gradients: time per evaluation, scaling with the number of states, model S enumeration.

Run: ``cd benchmarks && python bench_metagradient.py [--timeout SECONDS]``. Prints three tables:
1. IPD (sigmoid), model E with L = 1 and L = 3: the chain rule over compiled
   functions against the autograd oracle (the inner loop unrolled), and the ratio;
2. random games of 2 .. 64 states (2 actions each, dense transitions, infinite
   horizon): derive-and-compile time and time per model-E meta-gradient, each
   size in a child process stopped at the timeout (sizes above the first
   timeout are not tried);
3. model S on the one-shot prisoner's dilemma: enumeration time against K.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import autograd
import numpy as np
from bench_values import per_call

from mapg_verify.casefile.reader import parse_case
from mapg_verify.exact.compiled import compile_game
from mapg_verify.exact.enumeration import count_batches
from mapg_verify.exact.metagradient import expected_update, sampled_update
from mapg_verify.oracles.autodiff import autograd_meta_objective
from mapg_verify.problem.catalog import ipd, random_game
from mapg_verify.problem.policies import POLICIES


def ipd_table() -> None:
    game, policy = ipd(), POLICIES["sigmoid"]
    compiled = compile_game(game, policy)
    x = np.random.default_rng(0).normal(size=compiled.layout.size)
    print(f"{'IPD, sigmoid, model E':<24}{'compiled us':>14}{'autograd us':>14}{'ratio':>10}")
    for steps in (1, 3):
        fast = per_call(lambda point, s=steps: expected_update(compiled, point, (1.0, 1.0), s).total, x)
        oracle = autograd.grad(autograd_meta_objective(game, policy, x, (1.0, 1.0), steps, 0, "terminal"))
        slow = per_call(oracle, x[:5], seconds=2.0)
        print(f"{f'L = {steps}':<24}{fast * 1e6:>14.1f}{slow * 1e6:>14.0f}{slow / fast:>9.0f}x")


def scaling_run(states: int, queue) -> None:
    start = time.perf_counter()
    compiled = compile_game(random_game(seed=0, states=states), POLICIES["softmax"])
    built = time.perf_counter() - start
    x = np.random.default_rng(0).normal(size=compiled.layout.size)
    queue.put((built, per_call(lambda point: expected_update(compiled, point, (1.0, 1.0), 1).total, x)))


def scaling_table(timeout: float) -> None:
    print(f"\n{'random game, model E L=1':<24}{'parameters':>12}{'build s':>10}{'per call us':>14}")
    for states in (2, 4, 8, 16, 32, 64):
        queue = multiprocessing.Queue()
        child = multiprocessing.Process(target=scaling_run, args=(states, queue))
        child.start()
        child.join(timeout)
        if child.is_alive():
            child.terminate()
            print(f"{f'{states} states':<24}{4 * states:>12}  stopped after {timeout:.0f} s; larger sizes not tried")
            return
        built, seconds = queue.get()
        print(f"{f'{states} states':<24}{4 * states:>12}{built:>10.2f}{seconds * 1e6:>14.1f}")


def enumeration_table() -> None:
    print(f"\n{'model S, one-shot PD':<24}{'batches':>10}{'seconds':>10}")
    for batch in (1, 2, 4, 8, 16, 32):
        case = parse_case(
            {
                "game": {"builtin": "prisoners_dilemma"},
                "policy": {"kind": "sigmoid"},
                "inner": {"model": ["sampled"], "batch": batch},
            },
            "pd",
        )
        compiled = compile_game(case.game, case.policy)
        x = compiled.layout.flatten(case.theta)
        seconds = per_call(lambda point, c=case, f=compiled: sampled_update(f, c.game, c.policy, point, c.inner), x)
        print(f"{f'K = {batch}':<24}{count_batches(4, batch, 1):>10}{seconds:>10.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=120.0, help="per game size, in seconds")
    arguments = parser.parse_args()
    ipd_table()
    enumeration_table()
    scaling_table(arguments.timeout)


if __name__ == "__main__":
    main()
