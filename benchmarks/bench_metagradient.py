"""Exact model-E meta-gradients on the IPD: compiled chain rule against the autograd oracle.

Run: ``python benchmarks/bench_metagradient.py``. Prints, for L = 1 and L = 3 inner
steps, the time per meta-gradient of the chain-rule path over compiled
gradients and Jacobians, the autograd oracle (the inner loop unrolled and
differentiated), and their ratio.
"""

from __future__ import annotations

import autograd
import numpy as np
from bench_values import per_call  # run from benchmarks/

from mapg_verify.compiled import compile_game
from mapg_verify.games import ipd
from mapg_verify.metagradient import expected_update
from mapg_verify.oracles import autograd_meta_objective
from mapg_verify.policies import POLICIES


def main() -> None:
    game, policy = ipd(), POLICIES["sigmoid"]
    compiled = compile_game(game, policy)
    x = np.random.default_rng(0).normal(size=compiled.layout.size)
    print(f"{'IPD, sigmoid':<16}{'compiled us':>14}{'autograd us':>14}{'ratio':>10}")
    for steps in (1, 3):
        fast = per_call(lambda point, s=steps: expected_update(compiled, point, (1.0, 1.0), s).total, x)
        oracle = autograd.grad(autograd_meta_objective(game, policy, x, (1.0, 1.0), steps, 0, "terminal"))
        slow = per_call(oracle, x[:5], seconds=2.0)
        print(f"{f'L = {steps}':<16}{fast * 1e6:>14.1f}{slow * 1e6:>14.0f}{slow / fast:>9.0f}x")


if __name__ == "__main__":
    main()
