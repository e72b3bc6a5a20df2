"""One LOLA-DiCE run (``alshedivat/lola``, ``notebooks/dice/results/NAME/run-R/``) as an audit log.

``python examples/lola_dice_log.py RUN_FOLDER LOG.npz [opponent-model]``, then
``python -m mapg_verify audit examples/lola_dice_ipd.toml LOG.npz``. What the run's code logs
(``lola_dice/rpg.py``, ``scripts/run_lola_dice.py``): ``params.npy``, each agent's five logits
at each epoch before its update, in the environment's state order ``CC, CD, DC, DD, start``
(``lola_dice/envs/prisoners_dilemma.py``; reordered here to the toolkit's ``start, CC, CD, DC,
DD``), and ``rets.npy``, ``(1 - gamma)`` times the 150-step discounted return averaged over a
batch of 64 episodes. With opponent modelling those episodes are agent 0's first lookahead
rollout against its model of agent 1 (``params_om.npy``); ``opponent-model`` puts that model in
agent 1's place, the parameters the returns were drawn at.
"""

import sys

import numpy as np

TOOLKIT_ORDER = [4, 0, 1, 2, 3]  # the environment's state index of start, CC, CD, DC, DD


def main(run: str, out: str, played: str = "") -> None:
    params = np.load(f"{run}/params.npy").astype(float)[..., TOOLKIT_ORDER]
    if played == "opponent-model":
        params[:, 1] = np.load(f"{run}/params_om.npy").astype(float)[:, 0, 0][..., TOOLKIT_ORDER]
    returns = np.load(f"{run}/rets.npy")
    n = min(len(params), len(returns))
    np.savez(out, params=params[:n], returns=returns[:n], batch=64, horizon=150, metric="normalised")


if __name__ == "__main__":
    main(*sys.argv[1:4])
