"""Compiled kernels (numba): the sampled fast path, exploiting the sparsity of tabular scores.

A tabular policy's step score ``s_t = grad log pi(a_t | s_t)`` touches one parameter row per agent:
agent ``k``'s segment of width ``W_k`` starts at column ``c_{t,k} = offset_k + view_k(s_t) W_k``.
So a step is held as ``columns (N, H, n)`` and ``values (N, H, n, W)`` (:class:`mapg_verify.exact.
reinforce.SparseScores`) instead of a dense ``(N, H, D)`` row, and every sum over steps below costs
``O(n W)`` per step (the causal products ``O(D_k |c_t|)``) instead of ``O(D)`` (``O(D^2)``):

- :func:`sample`: trajectories by inverse-CDF sampling from uniforms drawn beforehand, in the order
  :func:`mapg_verify.estimators.sampling.sample_trajectories` draws them, so a seed gives the same
  trajectories either way;
- :func:`scores`: the sparse step scores and their sums over steps, ``log P(tau)`` and the pathwise
  Jacobian ``sum_t hess log pi_t w_t`` summed over groups;
- :func:`score_sums`: ``sum_t s_t w_t`` ``(N, D)`` (an outer REINFORCE gradient), the scores read
  off the policy's tables;
- :func:`products`: ``sum_t w^k_t c^k_t c_t^T`` on agent ``k``'s rows, summed over groups, with
  ``c_t = lam c_{t-1} + s_t``, as rank-one updates along the steps (or Loaded DiCE's difference
  ``c_t c_t^T - lam^2 c_{t-1} c_{t-1}^T`` in the same pass);
- :func:`weighted_sums`: ``sum_b sum_t w_{b,t} s^b_t`` over a group's trajectories (the timestep
  pairing's inner scores, contracted with the outer returns before the tangent);
- :func:`along`: ``scale_t V^k_t(s_t)`` of chosen agents along each trajectory, read off the exact
  state values of its group (the value baseline), in one pass;
- the numeric backend's kernels are in :mod:`mapg_verify.exact.numeric_kernels`; :data:`MIN_STATES`
  and :func:`numeric_enabled` say when they run.

The kernels compile on first use and are cached on disk (``cache=True``), so later processes load
them. ``MAPG_VERIFY_KERNELS=numpy`` (or a missing numba) keeps every computation in numpy, with the
same draws and the same results up to rounding; so do draws below :data:`MIN_STEPS` trajectory steps
and numeric games below :data:`MIN_STATES` states, where loading the kernels would cost more than
they save.
"""

from __future__ import annotations

import functools
import os

import numpy as np

MIN_STEPS = 1_000_000  # trajectory steps in one draw from which the kernels run (loading them takes about 1 s)
MIN_STATES = 32  # states from which the numeric backend's points run compiled (exact/numeric_kernels.py)
LANES = 8  # trajectories the sampler advances together (20% faster than one at a time)


@functools.cache
def _numba():
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency; numpy stays the fallback
        return None
    return numba


def enabled(steps: int) -> bool:
    """Whether a call over ``steps`` trajectory steps runs compiled: numba is there, the setting
    ``MAPG_VERIFY_KERNELS`` is not ``numpy``, and ``steps >= MIN_STEPS``."""
    return steps >= MIN_STEPS and os.environ.get("MAPG_VERIFY_KERNELS", "numba") != "numpy" and _numba() is not None


def numeric_enabled(states: int) -> bool:
    """Whether the numeric backend's points on a game of ``states`` states run compiled
    (:mod:`mapg_verify.exact.numeric_kernels`): as :func:`enabled`, from :data:`MIN_STATES`."""
    return states >= MIN_STATES and os.environ.get("MAPG_VERIFY_KERNELS", "numba") != "numpy" and _numba() is not None


def _invert(uniform, cdf, start, size):
    """Inverse-CDF index of ``uniform`` in ``cdf[start : start + size]`` (flat, so that no view is
    made), as numpy's ``min((u cdf[-1] >= cdf).sum(), size - 1)``."""
    target, index = uniform * cdf[start + size - 1], 0
    for j in range(start, start + size):
        if target >= cdf[j]:
            index += 1
    return min(index, size - 1)


def _sample(uniforms, per, policy_cdf, n_actions, views, initial_cdf, log_initial, cdf, log_step, strides,
            rewards, discounts, states, actions, log_environment, to_go):  # fmt: skip
    count, horizon = states.shape
    n, n_states, joints = actions.shape[2], initial_cdf.shape[0], cdf.shape[1]
    groups, rows, width = policy_cdf.shape[1:]
    policy_flat, cdf_flat = policy_cdf.ravel(), cdf.ravel()
    current, group = np.empty(LANES, np.int64), np.empty(LANES, np.int64)  # each lane's state and row of phi
    for first in range(0, count, LANES):  # LANES trajectories step by step: their chains of loads overlap
        lanes = range(first, min(first + LANES, count))
        for b in lanes:
            current[b - first], group[b - first] = _invert(uniforms[0, b], initial_cdf, 0, n_states), b // per
            log_environment[b] = log_initial[current[b - first]]
        for t in range(horizon):
            block = 1 + t * (n + 1)
            for b in lanes:
                g, state, joint = group[b - first], current[b - first], 0
                states[b, t] = state
                for k in range(n):
                    start = ((k * groups + g) * rows + views[k, state]) * width
                    a = _invert(uniforms[block + k, b], policy_flat, start, n_actions[k])
                    actions[b, t, k] = a
                    joint += a * strides[k]
                for k in range(n):
                    to_go[b, t, k] = rewards[k, state, joint] * discounts[t]
                if t + 1 < horizon:
                    state = _invert(uniforms[block + n, b], cdf_flat, (state * joints + joint) * n_states, n_states)
                    log_environment[b] += log_step[states[b, t], joint, state]
                    current[b - first] = state
    for b in range(count):
        for k in range(n):
            total = 0.0
            for t in range(horizon - 1, -1, -1):
                total = total + to_go[b, t, k]
                to_go[b, t, k] = total


def _scores(states, actions, per, views, offsets, widths, log_table, score_table, hessians, weights, less, group,
            columns, values, log_prob, reinforce, sums, jacobian):  # fmt: skip
    count, horizon, n = actions.shape
    second, lessened = jacobian.shape[0] > 0, less.shape[0] > 0
    groups, rows, n_actions, most = score_table.shape[1:]
    logs, scores, curvatures = log_table.ravel(), score_table.ravel(), hessians.ravel()  # flat: one offset a step
    for b in range(count):
        g, into, total = b // per, b // group, 0.0
        for t in range(horizon):
            for k in range(n):
                row, width, w = views[k, states[b, t]], widths[k], weights[b, t, k]
                if lessened:
                    w = w - less[b, t, k]
                start, cell = offsets[k] + row * width, ((k * groups + g) * rows + row) * n_actions + actions[b, t, k]
                columns[b, t, k] = start
                total += logs[cell]
                for i in range(width):
                    values[b, t, k, i] = scores[cell * most + i]
                    reinforce[b, start + i] += scores[cell * most + i] * w
                    sums[b, start + i] += scores[cell * most + i]
                if second:
                    for i in range(width):
                        for j in range(width):
                            jacobian[into, start + i, start + j] += curvatures[(cell * most + i) * most + j] * w
        log_prob[b] += total


def _score_sums(states, actions, per, views, offsets, widths, score_table, weights, out):
    count, horizon, n = actions.shape
    groups, rows, n_actions, most = score_table.shape[1:]
    scores = score_table.ravel()
    for b in range(count):
        g = b // per
        for t in range(horizon):
            w = weights[b, t]
            for k in range(n):
                row = views[k, states[b, t]]
                start = offsets[k] + row * widths[k]
                cell = ((k * groups + g) * rows + row) * n_actions + actions[b, t, k]
                for i in range(widths[k]):
                    out[b, start + i] += scores[cell * most + i] * w
    return out


def _products(columns, values, widths, owner, tails, lam, less, group, out):
    count, horizon, n = columns.shape
    running, seen = np.zeros(out.shape[1]), np.zeros(out.shape[1], np.bool_)
    touched = np.zeros(out.shape[1], np.int64)
    for b in range(count):
        g, m, later = b // group, 0, tails[b]
        for t in range(horizon):
            for k in range(n):  # lam c_{t-1} s_t^T, on the rows of c_{t-1}
                for i in range(widths[k]):
                    column, u = columns[b, t, k] + i, values[b, t, k, i] * lam
                    if u != 0.0:
                        for r in range(m):
                            row = touched[r]
                            out[g, row, column] += running[row] * u * later[t, owner[row]]
            for r in range(m if lam != 1.0 else 0):
                running[touched[r]] *= lam
            for k in range(n):
                for i in range(widths[k]):
                    column = columns[b, t, k] + i
                    running[column] += values[b, t, k, i]
                    if not seen[column]:
                        seen[column], touched[m], m = True, column, m + 1
            for k in range(n):  # s_t c_t^T, on the rows of s_t
                for i in range(widths[k]):
                    row, a = columns[b, t, k] + i, values[b, t, k, i] * later[t, k]
                    if a != 0.0:
                        for r in range(m):
                            out[g, row, touched[r]] += a * running[touched[r]]
                    if len(less):  # - less^k_t s^k_t s_t^T
                        a = values[b, t, k, i] * less[b, t, k]
                        for q in range(n):
                            for j in range(widths[q]):
                                out[g, row, columns[b, t, q] + j] -= a * values[b, t, q, j]
        for r in range(m):
            running[touched[r]], seen[touched[r]] = 0.0, False
    return out


def _weighted_sums(columns, values, widths, per, weights, out):
    count, horizon, n = columns.shape
    for b in range(count):
        g = b // per
        for t in range(horizon):
            w = weights[b, t]
            for k in range(n):
                for i in range(widths[k]):
                    out[g, columns[b, t, k] + i] += values[b, t, k, i] * w
    return out


def _along(states, per, table, scale, agents, out):
    count, horizon = states.shape
    for b in range(count):
        g = b // per
        for t in range(horizon):
            for j in range(len(agents)):
                out[b, t, j] = scale[t] * table[g, t, states[b, t], agents[j]]
    return out


def joint_rewards(game) -> tuple[np.ndarray, np.ndarray]:
    """The rewards ``(n, S, A)`` by joint action, as the kernels read them, and each agent's stride
    in the joint index ``a = sum_k stride_k a_k`` (agent 0's action most significant)."""
    n, joint = game.n_agents, int(np.prod(game.n_actions))
    strides = np.array([int(np.prod(game.n_actions[k + 1 :])) for k in range(n)])
    return np.ascontiguousarray(game.rewards.reshape(n, game.n_states, joint)), strides


def jitted(functions) -> dict:
    """``functions`` compiled (or loaded from numba's cache), by name."""
    jit = _numba().njit(cache=True, nogil=True)
    return {f.__name__: jit(f) for f in functions}


@functools.cache
def _compiled():
    """The kernels, compiled (or loaded from numba's cache) on first use."""
    globals()["_invert"] = jitted([_invert])["_invert"]  # so that the kernels calling it call it compiled
    return jitted([_sample, _scores, _score_sums, _products, _weighted_sums, _along])


def sample(*arguments) -> None:
    """Fill ``states, actions, log_environment, to_go`` (the last four arguments) in place."""
    _compiled()["_sample"](*arguments)


def scores(*arguments) -> None:
    """Fill ``columns, values``, add to ``log_prob``, ``reinforce``, ``sums`` (of the step scores)
    and (if not empty) ``jacobian`` in place, step ``t`` weighted by ``weights`` less ``less`` (if not
    empty)."""
    _compiled()["_scores"](*arguments)


def score_sums(states, actions, per: int, views, offsets, widths, score_table, weights, size: int) -> np.ndarray:
    """``sum_t s_t w_t`` ``(N, D)`` for weights ``(N, H)``, the scores read off ``score_table``."""
    out = np.zeros((len(states), size))
    return _compiled()["_score_sums"](states, actions, per, views, offsets, widths, score_table, weights, out)


def products(columns, values, widths, owner, tails, lam: float, less, group: int, size: int):
    """``sum_t W^k_t (s_t c_t^T + lam c_{t-1} s_t^T)`` on agent ``k``'s rows (``owner[column] = k``),
    summed over groups, with ``c_t = lam c_{t-1} + s_t`` and ``W = tails (N, H, n)``: with the tail
    sums ``W_t = sum_{t' >= t} w_t'`` and ``lam = 1`` it is ``sum_t w_t c_t c_t^T`` (as ``c_t c_t^T =
    c_{t-1} c_{t-1}^T + s_t c_t^T + c_{t-1} s_t^T``), with ``W = w`` it is ``sum_t w_t (c_t c_t^T -
    lam^2 c_{t-1} c_{t-1}^T)``; minus ``sum_t less^k_t s^k_t s_t^T`` where ``less (N, H, n)`` is not empty."""
    out = np.zeros((len(columns) // group, size, size))
    arguments = (columns, values, widths, owner, tails, float(lam), less, group, out)
    return _compiled()["_products"](*arguments)


def weighted_sums(columns, values, widths, weights, groups: int, size: int) -> np.ndarray:
    """``sum_b sum_t w_{b,t} s^b_t`` ``(G, D)`` over each group's consecutive trajectories, for
    weights ``(N, H)``."""
    out = np.zeros((groups, size))
    return _compiled()["_weighted_sums"](columns, values, widths, len(columns) // groups, weights, out)


def along(states, table: np.ndarray, scale: np.ndarray, agents) -> np.ndarray:
    """``scale[t] table[g, t, states[n, t], agents[j]]`` ``(N, H, len(agents))``, trajectory ``n`` in
    group ``g = n // (N / G)`` of ``table (G, H, S, n)``."""
    agents = np.asarray(agents, dtype=np.int64)
    out = np.empty((*states.shape, len(agents)))
    per = len(states) // len(table)
    return _compiled()["_along"](states, per, np.ascontiguousarray(table), np.ascontiguousarray(scale), agents, out)
