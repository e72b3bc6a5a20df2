"""The official linear baseline's variance reduction, as shipped and aligned, at the paper's sizes.

Run: ``cd benchmarks && python bench_linear_fit.py [batches]``. On the IPD of dkkim93/meta-mapg
(its payoffs, ours shifted by +1.5: CC 0.5, DD -0.5, a sucker -1.5 against 1.5; gamma 0.96;
``H = 150`` steps, ``K = 64`` trajectories per batch, the code's ``ep_horizon`` and
``traj_batch_size``) and a mostly cooperative batch (both agents cooperate with probability 0.8
in every state), ``batches`` batches (default 20) at a fixed seed: for agent 0's from-t returns
``R`` and each fit's baseline ``b`` (:func:`mapg_verify.exact.baselines.batch_baseline`, the
code's ``LinearFeatureBaseline`` with its rows as shipped or aligned), ``var(R - b) / var(R)``
over the batch's ``K H`` entries (below 1: the baseline reduces the variance), and the mean
return and mean prediction at ``t = 0`` and ``t = H - 1``; means over the batches.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mapg_verify.estimators.sampling import sample_trajectories  # noqa: E402
from mapg_verify.exact.baselines import batch_baseline, returns_from_t  # noqa: E402
from mapg_verify.exact.enumeration import rewards_of  # noqa: E402
from mapg_verify.problem.catalog import ipd_finite  # noqa: E402
from mapg_verify.problem.params import layout_of  # noqa: E402
from mapg_verify.problem.policies import POLICIES  # noqa: E402

SIZE, HORIZON, SHIFT, COOPERATE = 64, 150, 1.5, 0.8


def main(batches: int) -> None:
    game, policy = ipd_finite(gamma=0.96, horizon=HORIZON), POLICIES["sigmoid"]
    layout = layout_of(game, policy)
    phi = np.full(layout.size, np.log(COOPERATE / (1 - COOPERATE)))  # P(C) = sigmoid(theta[s])
    rng = np.random.default_rng(0)
    found = {fit: [] for fit in ("as-shipped", "aligned")}
    for _ in range(batches):
        drawn = sample_trajectories(game, policy, layout, phi, HORIZON, SIZE, rng)
        rewards = rewards_of(game, drawn.states, drawn.actions)[..., :1] + SHIFT  # agent 0, the code's payoffs
        returns = returns_from_t(game, rewards)[None]  # (1, K, H, 1)
        for fit, rows in found.items():
            baseline = batch_baseline("linear", game, drawn.states[None], returns, fit)
            ratio = np.var(returns - baseline) / np.var(returns)
            rows.append((ratio, returns[0, :, 0].mean(), baseline[0, :, 0].mean(), returns[0, :, -1].mean(),
                         baseline[0, :, -1].mean()))  # fmt: skip
    print(f"IPD (+{SHIFT} payoffs, gamma 0.96), K = {SIZE}, H = {HORIZON}, P(C) = {COOPERATE}, {batches} batches")
    print(f"{'fit':<12}{'var(R-b)/var(R)':>17}{'R_0':>8}{'b_0':>8}{'R_H-1':>8}{'b_H-1':>8}")
    for fit, rows in found.items():
        ratio, first, predicted_first, last, predicted_last = np.mean(rows, axis=0)
        print(f"{fit:<12}{ratio:>17.2f}{first:>8.1f}{predicted_first:>8.1f}{last:>8.1f}{predicted_last:>8.1f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
