"""LOLA-DiCE (Foerster et al. 2018) as JAX opponent-shaping code writes it, as ``jax:`` plug-ins.

The meta-agent ``i`` looks ahead at its opponent ``j``'s learning and does not learn itself:

- lookahead, on each inner batch ``B_l`` (drawn at ``(theta^i, phi^j_l)``): the opponent ascends
  its DiCE objective, ``phi^j <- phi^j + alpha^j grad_{phi^j} (1/K) sum_b sum_t
  box(sum_{t' <= t} (log pi^i_t' + log pi^j_t')) gamma^t r^j_t``, kept differentiable in ``theta^i``;
- the surrogate: the meta-agent's DiCE objective on the outer batch at ``(theta^i, phi^j_L)``,
  handed over as it is (the toolkit differentiates it with respect to ``theta^i``), with the
  lookahead's ``phi_1 .. phi_L`` for the toolkit's inner-update check.

Its claim is the built-in ``lola-dice`` (``examples/jax_lola_dice.toml``), whose inner loop, the
meta-agent's parameters held, draws the batches. ``lola_dice_own_log_probs`` has one plausible
bug, the opponent's lookahead boxing only its own log-probabilities (so the lookahead no longer
sees how ``theta^i`` shaped the batch it learns from), and its claim fails. ``lola_dice_batched``
is :func:`lola_dice` under ``jax.vmap``.
"""

import functools

import jax

from examples.jax_meta_mapg import config_of, dice_objective


def lookahead(params, batch, config, own_only=False):
    """The opponent's DiCE step on ``batch``; the meta-agent's parameters stay."""
    i, alpha = config[4], config[2]
    j = 1 - i
    agents = (j,) if own_only else None

    def objective(part):
        return dice_objective(tuple(part if k == j else p for k, p in enumerate(params)), batch, config, j, agents)

    return tuple(p + alpha[j] * jax.grad(objective)(p) if k == j else p for k, p in enumerate(params))


def surrogate(inner, outer, theta, config, own_only=False):
    """The meta-agent's LOLA-DiCE surrogate and the lookahead's ``phi_1 .. phi_L``."""
    phis = [tuple(theta)]
    for batch in inner:
        phis.append(lookahead(phis[-1], batch, config, own_only))
    return dice_objective(phis[-1], outer[-1], config, config[4]), phis[1:]


def lola_dice(inner, outer, theta, settings):
    """LOLA-DiCE for one replicate (see the module's docstring)."""
    if settings.game.n_agents != 2:
        raise ValueError("LOLA-DiCE is written here for two agents")
    return surrogate(inner, outer, theta, config_of(settings))


def lola_dice_own_log_probs(inner, outer, theta, settings):
    """Bug: the opponent's lookahead boxes only its own log-probabilities."""
    return surrogate(inner, outer, theta, config_of(settings), own_only=True)


def lola_dice_batched(inner, outer, theta, settings):
    """:func:`lola_dice` for every replicate at once."""
    return jax.vmap(functools.partial(lola_dice, settings=settings))(inner, outer, theta)


lola_dice_batched.batched = True
