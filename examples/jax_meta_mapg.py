"""Meta-MAPG as DiCE code writes it, in JAX, as ``jax:`` plug-ins: ``examples.dice_meta_mapg:meta_mapg``
written the way JAX opponent-shaping code is (pure functions of parameter tuples, ``jax.grad`` for
the inner steps, ``jax.vmap`` over replicates, ``jax.jit``).

``meta_mapg`` is one replicate's surrogate, returned as it is (the toolkit differentiates it):

- inner steps: each agent ``k`` ascends ``(1/K) sum_b sum_t box(sum_{t' <= t} sum_j log pi^j_t') gamma^t r^k_t``;
- outer term at ``phi_L``: ``(1/K_out) sum_b sum_t log pi(a_t | s_t; phi_L) stop(G_t)``;
- current term: ``(box(sum_l log P(B_l | phi_l)) - 1) stop(mean G_0)``, the batch pairing.

``meta_mapg_batched`` is the same function mapped over the replicate axis and compiled once per
game and batch shape: ``batched = True`` and one line of ``jax.vmap``. Both claim the built-in
``meta-mapg`` (``examples/jax_meta_mapg.toml``).
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax


def magic_box(x):
    """DiCE's magic box: 1 in value, ``box(x) dx`` in derivative (at every order)."""
    return jnp.exp(x - lax.stop_gradient(x))


def log_probs(params, batch, config, agent):
    """``(K, H)``: ``log pi^k(a^k_t | s_t)`` under ``params[agent]`` (sigmoid or softmax rows)."""
    policy, views = config[0], jnp.asarray(config[3])
    theta = params[agent]
    if policy == "sigmoid":
        table = jnp.stack([jax.nn.log_sigmoid(theta), jax.nn.log_sigmoid(-theta)], axis=-1)
    else:
        table = jax.nn.log_softmax(theta, axis=-1)
    return table[views[agent][batch.states], batch.actions[..., agent]]


def joint_log_probs(params, batch, config, agents=None):
    """The sum of :func:`log_probs` over ``agents`` (default: every agent)."""
    return sum(log_probs(params, batch, config, k) for k in agents or range(len(params)))


def dice_objective(params, batch, config, agent, agents=None):
    """Agent ``agent``'s DiCE objective on ``batch``, causal in the log-probabilities of ``agents``
    (default: every agent's)."""
    gamma = config[1]
    discounted = batch.rewards[..., agent] * gamma ** jnp.arange(batch.states.shape[-1])
    dependencies = jnp.cumsum(joint_log_probs(params, batch, config, agents), axis=-1)
    return jnp.mean(jnp.sum(magic_box(dependencies) * discounted, axis=-1))


def adapt(params, batch, config):
    """One inner step of every agent that learns, differentiable in ``params``."""
    alpha = config[2]

    def step(k):
        own = lambda part: dice_objective((*params[:k], part, *params[k + 1 :]), batch, config, k)  # noqa: E731
        return params[k] + alpha[k] * jax.grad(own)(params[k]) if alpha[k] else params[k]

    return tuple(step(k) for k in range(len(params)))


def surrogate(inner, outer, theta, config):
    """One replicate's Meta-MAPG surrogate of ``theta[meta_agent]`` (see the module's docstring)."""
    i, gamma = config[4], config[1]
    phi, inner_log_probs = tuple(theta), 0.0
    for batch in inner:
        inner_log_probs = inner_log_probs + jnp.sum(joint_log_probs(phi, batch, config))
        phi = adapt(phi, batch, config)
    last = outer[-1]
    discounted = last.rewards[..., i] * gamma ** jnp.arange(last.states.shape[-1])
    to_go = lax.stop_gradient(jnp.flip(jnp.cumsum(jnp.flip(discounted, -1), -1), -1))
    outer_term = jnp.mean(jnp.sum(joint_log_probs(phi, last, config) * to_go, axis=-1))
    return outer_term + (magic_box(inner_log_probs) - 1.0) * jnp.mean(to_go[:, 0])


def config_of(settings):
    """The settings a surrogate needs, hashable (so ``jax.jit`` can hold them static)."""
    if settings.objective != "terminal":
        raise ValueError("this example implements the terminal objective")
    views = tuple(map(tuple, settings.game.views.tolist()))
    return settings.policy, settings.gamma, tuple(settings.alpha), views, settings.meta_agent


def meta_mapg(inner, outer, theta, settings):
    """One replicate (see the module's docstring)."""
    return surrogate(inner, outer, theta, config_of(settings))


@functools.cache
def _compiled(config):
    mapped = jax.vmap(functools.partial(surrogate, config=config))
    return jax.jit(mapped)


def meta_mapg_batched(inner, outer, theta, settings):
    """Every replicate at once: ``jax.vmap`` of :func:`surrogate`, compiled with ``jax.jit``."""
    return _compiled(config_of(settings))(inner, outer, theta)


meta_mapg_batched.batched = True
