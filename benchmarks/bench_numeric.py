"""The numeric exact backend against the symbolic one and against the same computation in JAX, jit-compiled.

Run: ``cd benchmarks && python bench_numeric.py [--largest STATES]`` (JAX is the ``[jax]`` extra).
Prints, in one run:

1. the IPD (sigmoid), model-E meta-gradient per evaluation, L = 1 and L = 3: symbolic
   (compiled closed forms), numeric (matrix calculus) and JAX (``jax.jit`` of ``jax.grad``
   through the unrolled inner loop, written here), with JAX's compile time and the ratios;
2. dense random games (2 actions per agent, softmax, infinite horizon, gamma 0.9) of 1 to
   ``--largest`` states (default 1024): numeric values, gradients and simultaneous Jacobian per
   evaluation, the model-E meta-gradient (L = 1) per evaluation against JAX jit's, and the largest
   difference between the two meta-gradients;
3. ``python -m mapg_verify exact`` on a one-shot game and on 64 states (numeric), wall clock in a
   child process, and the ratio (the issue's goal: at most 3x);
4. why the backend solves with ``trsm`` on one LU factorization (:class:`Solver`): against LAPACK's
   ``getrs`` on the same factors and numpy's solve, interleaved with the policy's numpy code, 5, 64
   and 256 states, BLAS threads as the environment sets them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.linalg.lapack
from bench_values import per_call

from mapg_verify.exact.backend import exact_values
from mapg_verify.exact.linear import Solver
from mapg_verify.exact.metagradient import expected_update
from mapg_verify.problem.catalog import ipd, random_game
from mapg_verify.problem.params import layout_of
from mapg_verify.problem.policies import POLICIES

ALPHA = (1.0, 1.0)


def jax_values(game, policy):
    """``x -> V (n,)`` in JAX (not jitted): joint action probabilities, ``P_u`` and ``r_u``, then
    ``jnp.linalg.solve`` (infinite horizon) or the backward recursion."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    layout = layout_of(game, policy)
    P, R = jnp.asarray(game.transitions), jnp.asarray(game.rewards)
    rho, gamma, views, n = jnp.asarray(game.initial), game.gamma, np.asarray(game.views), game.n_agents
    letters = "abcdefgh"[:n]
    joint = "s" + ",s".join(letters) + f"->s{letters}"

    def probabilities(theta):
        if policy.two_actions_only:
            return jnp.stack([jax.nn.sigmoid(theta), jax.nn.sigmoid(-theta)], axis=-1)
        return jax.nn.softmax(theta, axis=-1)

    def values(x):
        parts = [x[layout.slice(k)].reshape(layout.shapes[k]) for k in range(n)]
        u = jnp.einsum(joint, *(probabilities(part)[views[k]] for k, part in enumerate(parts)))
        transition = jnp.einsum(f"s{letters},s{letters}t->st", u, P)
        reward = jnp.einsum(f"s{letters},ks{letters}->ks", u, R)
        if game.infinite:
            return jnp.linalg.solve(jnp.eye(game.n_states) - gamma * transition, reward.T).T @ rho
        v = jnp.zeros_like(reward)
        for _ in range(int(game.horizon)):
            v = reward + gamma * v @ transition.T
        return v @ rho

    return values


def jax_meta_gradient(game, policy, steps: int):
    """Model E in JAX: ``V^0(phi_L)`` with ``phi_{l+1} = phi_l + alpha xi(phi_l)``, differentiated
    by ``jax.grad`` with respect to agent 0's parameters; returns the jitted function of flat ``x``."""
    import jax
    import jax.numpy as jnp

    layout, values, n = layout_of(game, policy), jax_values(game, policy), game.n_agents

    def xi(x):
        return jnp.concatenate([jax.grad(lambda y, k=k: values(y)[k])(x)[layout.slice(k)] for k in range(n)])

    rates = jnp.asarray(layout.per_parameter(ALPHA))

    def objective(own, x):
        phi = x.at[layout.slice(0)].set(own)
        for _ in range(steps):
            phi = phi + rates * xi(phi)
        return values(phi)[0]

    grad = jax.jit(jax.grad(objective))
    return lambda x: grad(x[layout.slice(0)], x)


def timed_jax(game, policy, steps: int, x):
    """JAX's compile-and-first-call seconds, seconds per call, and its result at ``x``."""
    function = jax_meta_gradient(game, policy, steps)
    start = time.perf_counter()
    result = np.asarray(function(x))
    compiled = time.perf_counter() - start
    return compiled, per_call(lambda p: function(p).block_until_ready(), x), result


def ipd_table() -> None:
    game, policy = ipd(), POLICIES["sigmoid"]
    symbolic, numeric = exact_values(game, policy, "symbolic"), exact_values(game, policy, "numeric")
    x, backends = np.random.default_rng(0).normal(size=symbolic.layout.size), (symbolic, numeric)
    print(
        f"{'IPD, model E':<14}{'symbolic us':>13}{'numeric us':>12}{'JAX jit us':>12}{'JAX compile s':>15}"
        f"{'JAX / sym':>11}{'JAX / num':>11}{'max diff':>10}"
    )
    for steps in (1, 3):
        times = [per_call(lambda p, c=c, s=steps: expected_update(c, p, ALPHA, s).total, x) for c in backends]
        compiled, jax_time, jax_result = timed_jax(game, policy, steps, x)
        ours = expected_update(numeric, x, ALPHA, steps).total
        print(
            f"{f'L = {steps}':<14}{times[0] * 1e6:>13.1f}{times[1] * 1e6:>12.1f}{jax_time * 1e6:>12.1f}"
            f"{compiled:>15.2f}{jax_time / times[0]:>10.1f}x{jax_time / times[1]:>10.1f}x"
            f"{np.abs(ours - jax_result).max():>10.1e}"
        )


def dense_table(largest: int) -> None:
    policy = POLICIES["softmax"]
    print(
        f"\n{'dense game':<12}{'params':>8}{'values ms':>11}{'grads ms':>10}{'jacobian ms':>13}"
        f"{'meta ms':>9}{'JAX meta ms':>13}{'JAX compile s':>15}{'JAX / ours':>12}{'max diff':>10}"
    )
    for states in [s for s in (1, 4, 16, 32, 64, 256, 1024) if s <= largest]:
        game = random_game(seed=0, states=states, horizon="inf")
        numeric = exact_values(game, policy, "numeric")
        x = np.random.default_rng(0).normal(size=numeric.layout.size)
        seconds = 3.0 if states < 256 else 0.0
        row = [per_call(f, x, seconds) for f in (numeric.value, numeric.gradient, numeric.gradient_and_jacobian)]
        meta = per_call(lambda p, c=numeric: expected_update(c, p, ALPHA, 1).total, x, seconds)
        compiled, jax_time, jax_result = timed_jax(game, policy, 1, x)
        diff = np.abs(expected_update(numeric, x, ALPHA, 1).total - jax_result).max()
        print(
            f"{states:<12}{numeric.layout.size:>8}"
            + "".join(f"{t * 1e3:>{w}.3f}" for t, w in zip(row, (11, 10, 13), strict=True))
            + f"{meta * 1e3:>9.3f}{jax_time * 1e3:>13.3f}{compiled:>15.2f}{jax_time / meta:>11.2f}x{diff:>10.1e}"
        )


def exact_command_table() -> None:
    cases = {
        "one-shot game": 'name = "one-shot"\n[game]\nbuiltin = "random"\nstates = 1\nactions = [2, 2]\nhorizon = 1\n',
        "64 states, numeric": 'name = "dense-64"\n[game]\nbuiltin = "random"\nstates = 64\nactions = [2, 2]\n'
        'backend = "numeric"\n',
    }
    print(f"\n{'python -m mapg_verify exact':<30}{'seconds':>10}{'ratio':>8}")
    first = None
    with tempfile.TemporaryDirectory() as folder:
        for label, text in cases.items():
            path = Path(folder) / f"{label.split()[0]}.toml"
            path.write_text(text)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "mapg_verify", "exact", str(path)], check=True, capture_output=True)
            seconds = time.perf_counter() - start
            first = first or seconds
            print(f"{label:<30}{seconds:>10.2f}{seconds / first:>7.2f}x")


def _solvers(matrix: np.ndarray) -> dict:
    """Ways to apply ``N = M^-1`` to 2 rows: LAPACK's ``getrs`` on LU factors, the backend's
    :class:`Solver` (``trsm`` on the same factors), numpy's solve (a factorization per call)."""
    solver = Solver.of(matrix)
    lu, pivots, _ = scipy.linalg.lapack.dgetrf(matrix)
    return {
        "getrs us": lambda rows: scipy.linalg.lapack.dgetrs(lu, pivots, rows.T)[0],
        "trsm us": solver.right,
        "numpy us": lambda rows: np.linalg.solve(matrix, rows.T),
    }


def blas_table() -> None:
    """Solves interleaved with the policy's numpy code, as in an evaluation, with BLAS threads as
    the environment sets them (unpinned, scipy's OpenBLAS runs ``getrs`` on every core)."""
    policy = POLICIES["softmax"]
    print(f"\n{'solve, interleaved':<20}{'getrs us':>10}{'trsm us':>10}{'numpy us':>10}")
    for states in (5, 64, 256):
        rng = np.random.default_rng(0)
        matrix = np.eye(states) - 0.9 * rng.dirichlet(np.ones(states), states)
        arguments = (rng.random((states, 2)), rng.random((2, states)))
        solvers = _solvers(matrix).values()
        times = [per_call(lambda a, f=f: (policy.derivatives(a[0]), f(a[1])), arguments) for f in solvers]
        print(f"{f'{states} states':<20}" + "".join(f"{t * 1e6:>10.1f}" for t in times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--largest", type=int, default=1024, help="largest dense game (states)")
    largest = parser.parse_args().largest
    ipd_table()
    dense_table(largest)
    exact_command_table()
    blas_table()


if __name__ == "__main__":
    main()
