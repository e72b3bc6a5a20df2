"""Users' own estimators, named ``module:function`` in a case file (SPEC §4, §5), or
``jax:module:function`` and ``torch:module:function`` for estimators written in those frameworks
(:mod:`mapg_verify.estimators.frameworks`).

The toolkit runs the inner loop of SPEC §3 (model S: REINFORCE with discounted reward-to-go,
``phi_{l+1} = phi_l + A g(B_l; phi_l)``), hands one replicate's batches to the plug-in, and
takes back one estimate of ``grad_{theta^i} J^i``::

    def estimator(inner, outer, theta, settings) -> array shaped like theta[settings.meta_agent]

- ``inner``: the ``L`` inner batches ``B_0 .. B_{L-1}``, each a :class:`Batch`;
- ``outer``: ``L + 1`` entries; entry ``l`` is the outer batch drawn from ``pi(phi_l)`` where the
  objective has a term at level ``l`` (the last one for ``terminal``, all for ``chain``), else ``None``;
- ``theta``: the initial parameters, one array per agent (shapes of SPEC §1);
- ``settings``: :class:`Settings`, the game and the inner-loop settings.

Agent ``k`` sees state ``s`` as its policy row ``settings.game.views[k, s]``; ``Batch.phi`` is given
for convenience (a meta-gradient estimator recomputes the ``phi_l`` from ``theta`` to
differentiate through them).

It may return ``(estimate, phis)`` instead, ``phis`` its own ``phi_1 .. phi_L`` (each one array
per agent, or flat): the toolkit then checks them against the parameters that drew the batches
(check ``inner-update:NAME``), so that an estimator whose inner update differs from model S's is
not scored, unsaid, on batches its own update would not draw.

A plug-in written in another code's conventions (its function's ``conventions``, or the case's
``[estimators.conventions]``) receives its batches and ``theta`` in them and hands back its
estimate and phis in them (:mod:`mapg_verify.estimators.conventions`).

A plug-in whose function has ``batched = True`` is called with :data:`PER_CALL` replicates at a
time (the last call padded with copies of the last replicate, so that a compiled plug-in sees one
shape), every array with a leading replicate axis (:mod:`mapg_verify.estimators.records`),
``theta[k]`` as ``(R, *shape)``, and returns ``(R, *shape)`` (its phis ``(R, ...)``). Its exact expectation
enumerates every ordered sequence of inner and outer trajectories (a plug-in may pair them by
position) under the case's ``enumeration_cap``, as replicates of one weighted mean. A plug-in
that raises, returns a non-finite value or the wrong shape fails its own checks; the run goes on.
"""

from __future__ import annotations

import copy
import importlib
import itertools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mapg_verify.estimators.calls import PER_CALL, Replicates, evaluate
from mapg_verify.estimators.controls import baseline_controls, baselines_fit, batch_scores
from mapg_verify.estimators.frameworks import require, split_framework
from mapg_verify.estimators.montecarlo import chunk_size, draw_recorded
from mapg_verify.estimators.records import Batch, Plugin, as_plugin
from mapg_verify.estimators.surrogate import inner_step, plan
from mapg_verify.estimators.table import BASIS_ESTIMATORS, FROZEN, Estimator, Parts, outer_of
from mapg_verify.exact.baselines import trajectory_values
from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.exact.enumeration import Trajectories, enumerate_trajectories, rewards_of
from mapg_verify.exact.reinforce import trajectory_terms
from mapg_verify.problem.errors import InputError
from mapg_verify.progress import CallMeter
from mapg_verify.spec.case import Case

# Top-level module names a plug-in cannot take, and why
RESERVED_MODULES = {
    "jax_plugins": "'jax_plugins' is the namespace JAX imports its own plug-ins from when it starts, so JAX "
    "would import this module half-initialised (a circular import)",
}


def resolve_plugin(name: str, key: str = "estimators.names") -> Plugin:
    """Import ``[jax:|torch:]module:function`` (an absolute dotted module name and a function name);
    any failure, a missing framework and the module's own errors at import included, is an input
    error naming the key."""
    framework, target = split_framework(name)
    module_name, _, attribute = target.partition(":")
    if not all(part.isidentifier() for part in module_name.split(".")) or not attribute.isidentifier():
        raise InputError(key, f"plug-in {name!r} must be [jax:|torch:]module:function with an absolute module name")
    reserved = RESERVED_MODULES.get(module_name.split(".")[0])
    if reserved:
        raise InputError(key, f"plug-in {name!r}: {reserved}; rename the module")
    require(framework, key, name)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise InputError(key, f"plug-in {name!r} cannot be imported: {error}") from None
    except (Exception, SystemExit) as error:  # the module's own code failed: a syntax error, an exception at import
        raise InputError(
            key, f"plug-in {name!r}: importing {module_name!r} raised {type(error).__name__}: {error}"
        ) from None
    function = getattr(module, attribute, None)
    if function is None:
        raise InputError(key, f"plug-in {name!r}: module {module_name!r} has no {attribute!r}")
    if not callable(function):
        raise InputError(key, f"plug-in {name!r} is not callable")
    return Plugin(name, function, framework)


def plugin_path(case_file: str) -> None:
    """Let plug-ins named in ``case_file`` import from its folder and that folder's parent too,
    after everything already on the path (so nothing installed is shadowed)."""
    folder = Path(case_file).resolve().parent
    for entry in (str(folder), str(folder.parent)):
        if entry not in sys.path:
            sys.path.append(entry)


@dataclass(frozen=True, eq=False)
class PluginDraws:
    """A plug-in's Monte-Carlo rows, the partner estimator's rows on the very same batches, and the
    largest deviation of the plug-in's own ``phi_l`` from the parameters that drew ``B_l``
    (relative to ``max(|phi_l|, 1)``, over replicates and levels; ``None`` when it returns none),
    the machine epsilon of the precision it computes in, the partner's parts row by row
    (control variates, once centred by their exact expectations), every batch's score
    ``sum_b grad log P(tau_b; phi_l)`` and the outer batches' baseline terms
    (:mod:`~mapg_verify.estimators.controls`), control variates of mean exactly 0, and the rows of further
    estimators drawn on the same batches (``(V, R, D)``, a diagnosis's variants of the partner)."""

    rows: np.ndarray
    partner: np.ndarray
    inner_update: float | None
    precision: float
    components: np.ndarray  # the partner's parts, row by row (its current, own, peer; or each weighted term's)
    scores: np.ndarray  # each batch's summed score at the parameters that drew it, row by row: mean exactly 0
    baselines: np.ndarray  # the outer term's score times baseline features, row by row: mean exactly 0
    variants: np.ndarray  # (V, R, D): further estimators on the same batches

    @property
    def zero_mean(self) -> np.ndarray:
        """The control variates of mean exactly 0, row by row: the batches' scores and baseline terms."""
        return np.hstack([self.scores, self.baselines])


def plugin_draws(
    case: Case,
    compiled: CompiledValues,
    plugin: Plugin | Callable | None,
    samples: int,
    rng,
    partner: Estimator = FROZEN,
    weights: tuple[tuple[str, str, float], ...] = (),
    variants: tuple[Estimator, ...] = (),
    told: Case | None = None,
) -> PluginDraws:
    """``samples`` estimates, one row each, on batches from the inner loop of ``partner`` (model S's
    by default), beside the partner's estimates from the same batches: ``partner``'s own, or with
    ``weights`` (:func:`~mapg_verify.estimators.table.basis_weights`) that combination of the basis
    surrogates' parts, each drawn from the same generator state, hence on the very same batches;
    ``variants``, estimators with the partner's inner loop, likewise. The plug-in is told ``told``'s
    settings (``case``'s by default: another lets a loop drawn with other rates or discount be
    checked against code told the case's). Without a ``plugin`` the first of ``variants`` is the
    estimate (a built-in paired with its claim's partner)."""
    plugin = None if plugin is None else as_plugin(plugin)
    surrogate = plan(case, compiled, partner)
    others = {key: plan(case, compiled, BASIS_ESTIMATORS[key]) for key, _, _ in weights}
    alike = [plan(case, compiled, variant) for variant in variants]
    rows, theirs, parts, scores, deviation = [], [], [], [], None
    eps = float(np.finfo(float).eps) if plugin is None else plugin.declared_precision
    baselines, with_baselines = [], baselines_fit(case, samples)
    extra = []
    calls = 0 if plugin is None else -(-samples // PER_CALL) if plugin.batched else samples
    meter = CallMeter("" if plugin is None else plugin.name, calls, f"{samples:,} samples")
    chunk = min([chunk_size(surrogate), *map(chunk_size, others.values())])
    for start in range(0, samples, chunk):
        count = min(chunk, samples - start)
        snapshot = copy.deepcopy(rng)
        draws = draw_recorded(surrogate, count, rng)
        if weights:
            total, components = _combined(others, weights, draws, count, snapshot)
        else:
            total, components = draws.parts.total, np.hstack([draws.parts.current, draws.parts.own, draws.parts.peer])
        theirs.append(total)
        parts.append(components)
        scores.append(batch_scores(surrogate, draws, count))
        baselines.append(baseline_controls(surrogate, draws, count) if with_baselines else np.zeros((count, 0)))
        extra.append([_replayed(other, count, snapshot, draws).parts.total for other in alike])
        if plugin is None:
            rows.append(extra[-1][0])
            continue
        replicates = replicates_of(surrogate, draws, count)
        found, own, precision = evaluate(plugin, replicates, count, told or case, surrogate.outer_batch, meter)
        rows.append(found)
        eps = max(eps, precision)
        if own is not None and own.shape[1]:
            drawn = np.stack(draws.phis[1:], axis=1)  # (R, L, D)
            gap = float(np.max(np.abs(own - drawn) / np.maximum(np.abs(drawn), 1.0)))
            deviation = gap if deviation is None else max(deviation, gap)
    meter.close()
    width = np.shape(case.theta[case.inner.meta_agent])
    found = np.concatenate(extra, axis=1) if alike else np.zeros((0, samples, int(np.prod(width))))
    return PluginDraws(
        np.concatenate(rows),
        np.concatenate(theirs),
        deviation,
        eps,
        np.concatenate(parts),
        np.concatenate(scores),
        np.concatenate(baselines),
        found,
    )


def _combined(others: dict, weights, draws, count: int, snapshot: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The weighted sum of the basis surrogates' parts on the batches of ``draws``, and those parts
    side by side: each surrogate replays a copy of ``snapshot``, the generator as it was before
    them; one that would draw other batches is an error."""
    parts = {key: _replayed(surrogate, count, snapshot, draws).parts for key, surrogate in others.items()}
    terms = [getattr(parts[key], part) for key, part, _ in weights]
    return sum(w * term for (_, _, w), term in zip(weights, terms, strict=True)), np.hstack(terms)


def _replayed(surrogate, count: int, snapshot: np.random.Generator, draws):
    """``surrogate`` drawn from a copy of ``snapshot``, the generator as it was before ``draws``; an
    error if it drew other batches than those."""
    mine = draw_recorded(surrogate, count, copy.deepcopy(snapshot))
    if not all(_same(a, b) for a, b in zip((*mine.inner, *mine.outer), (*draws.inner, *draws.outer), strict=True)):
        raise RuntimeError(f"{surrogate.estimator.terms} drew other batches than the plug-in's")
    return mine


def _same(a: Trajectories | None, b: Trajectories | None) -> bool:
    if a is None or b is None:
        return a is b
    return np.array_equal(a.states, b.states) and np.array_equal(a.actions, b.actions)


def replicates_of(surrogate, draws, count: int) -> Replicates:
    """The batches of ``count`` replicates drawn by :func:`draw_recorded`, as a plug-in receives them."""
    phis = draws.phis
    return Replicates(
        tuple(_stacked(surrogate, t, count, phis[level]) for level, t in enumerate(draws.inner)),
        tuple(None if t is None else _stacked(surrogate, t, count, phis[level]) for level, t in enumerate(draws.outer)),
    )


def draw_plugin(
    case: Case, compiled: CompiledValues, plugin: Plugin | Callable, samples: int, rng, loop: Estimator = FROZEN
) -> np.ndarray:
    """``samples`` estimates, one row each, on batches from the inner loop of ``loop`` (model S's by default)."""
    return plugin_draws(case, compiled, plugin, samples, rng, loop).rows


def _stacked(surrogate, trajectories: Trajectories, count: int, phi: np.ndarray) -> Batch:
    """``count`` replicates' batches from trajectories laid out replicate after replicate, at ``phi (R, D)``."""
    case, layout = surrogate.case, surrogate.compiled.layout
    game, size = case.game, len(trajectories.states) // count
    states = np.asarray(trajectories.states, dtype=np.int64).reshape(count, size, -1)
    actions = np.asarray(trajectories.actions, dtype=np.int64).reshape(*states.shape, -1)
    rewards = rewards_of(game, states, actions)
    phi = np.asarray(phi, dtype=float).reshape(count, -1)
    values = trajectory_values(game, case.policy, layout, trajectories, phi).reshape(rewards.shape)
    parts = tuple(phi[:, layout.slice(k)].reshape(count, *shape) for k, shape in enumerate(layout.shapes))
    return Batch(states, actions, rewards, parts, values)


def count_sequences(case: Case, outer_batch: int | None = None) -> int:
    """Replicates the plug-in's exact expectation evaluates: ordered inner batches at every step,
    ordered outer batches (of ``outer_batch``, default the case's) at every evaluated level."""
    inner, outer_batch = case.inner, outer_batch or case.estimators.outer_batch
    n = len(enumerate_trajectories(case.game, inner.horizon).states)
    evaluated = inner.steps + 1 if inner.objective == "chain" else 1
    return n ** (inner.batch * inner.steps + outer_batch * evaluated)


def plugin_calls(case: Case, plugin: Plugin, loop: Estimator = FROZEN) -> int:
    """Calls the plug-in's exact expectation with the inner loop of ``loop`` makes: one per
    sequence, or per :data:`PER_CALL` sequences for a batched plug-in."""
    count = count_sequences(case, outer_of(loop, case)[1])
    return -(-count // PER_CALL) if plugin.batched else count


def plugin_expectation(
    case: Case, compiled: CompiledValues, plugin: Plugin | Callable, loop: Estimator = FROZEN, told: Case | None = None
) -> Parts:
    """The plug-in's exact expectation over every ordered sequence of trajectories drawn with the
    inner loop of ``loop`` (model S's by default), the plug-in told ``told``'s settings (``case``'s
    by default); an input error (key ``estimators.plugin_calls``) when that takes more calls than
    the case allows. The whole estimate is reported as ``own``."""
    plugin = as_plugin(plugin)
    surrogate = plan(case, compiled, loop)
    calls = plugin_calls(case, plugin, loop)
    if calls > case.estimators.plugin_calls:
        count = count_sequences(case, surrogate.outer_batch)
        raise InputError(
            "estimators.plugin_calls",
            f"the plug-in's exact expectation needs {count_text(calls)} calls ({count_text(count)} ordered "
            f"batch sequences), above [estimators] plugin_calls = {case.estimators.plugin_calls:,}",
        )
    weights, replicates = _sequences(surrogate)
    meter = CallMeter(plugin.name, calls, "its exact expectation")
    total = weights @ evaluate(plugin, replicates, len(weights), told or case, surrogate.outer_batch, meter)[0]
    meter.close()
    zero = np.zeros_like(total)
    return Parts(zero, total, zero)


def count_text(count: int) -> str:
    """A count as people read it: with thousands separators up to ten million, else 3 significant digits."""
    return f"{count:,}" if count < 10_000_000 else f"{count:.3g}"


def _sequences(surrogate) -> tuple[np.ndarray, Replicates]:
    """Every ordered sequence of inner and outer batches with its probability, as replicates,
    each inner batch drawn at the ``phi_l`` the surrogate's inner update reaches from the ones before."""
    case, layout, steps = surrogate.case, surrogate.compiled.layout, surrogate.steps
    trajectories = enumerate_trajectories(case.game, case.inner.horizon)
    records = []

    def sequences(phi, size: int):
        """Every ordered batch of ``size`` trajectories at ``phi``: (indices, log-probability)."""
        lp = trajectory_terms(case.game, case.policy, layout, trajectories, phi, second_order=False).log_prob
        for indices in itertools.product(range(len(lp)), repeat=size):
            yield np.array(indices), float(lp[list(indices)].sum())

    def visit(level: int, phi, log_weight: float, inner: tuple, outer: tuple, phis: tuple) -> None:
        options = list(sequences(phi, surrogate.outer_batch)) if surrogate.evaluated(level) else [(None, 0.0)]
        for chosen, outer_weight in options:
            if level == steps:
                records.append((inner, (*outer, chosen), (*phis, phi), log_weight + outer_weight))
                continue
            for indices, inner_weight in sequences(phi, case.inner.batch):
                step = inner_step(surrogate, trajectories.take(indices), phi[None])[0]
                visit(
                    level + 1,
                    step,
                    log_weight + outer_weight + inner_weight,
                    (*inner, indices),
                    (*outer, chosen),
                    (*phis, phi),
                )

    visit(0, case.flat_theta, 0.0, (), (), ())
    inner, outer, phis, log_weights = zip(*records, strict=True)
    count = len(records)

    def level_batch(chosen: list, level: int) -> Batch | None:
        if chosen[0] is None:
            return None
        at = np.array([p[level] for p in phis])
        return _stacked(surrogate, trajectories.take(np.concatenate(chosen)), count, at)

    stacked = Replicates(
        tuple(level_batch([i[level] for i in inner], level) for level in range(steps)),
        tuple(level_batch([o[level] for o in outer], level) for level in range(steps + 1)),
    )
    return np.exp(np.array(log_weights)), stacked
