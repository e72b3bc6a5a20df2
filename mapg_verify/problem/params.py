"""Joint parameters ``theta = (theta^0, .., theta^{n-1})`` and their row-major flat vector."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from mapg_verify.problem.game import DifferentiableGame, Game
from mapg_verify.problem.policies import Policy


@dataclass(frozen=True)
class Layout:
    """Shapes of the per-agent parameters; agent ``k`` owns ``flat[slice(k)]``."""

    shapes: tuple[tuple[int, ...], ...]

    @cached_property
    def sizes(self) -> tuple[int, ...]:
        return tuple(math.prod(shape) for shape in self.shapes)

    @cached_property
    def size(self) -> int:
        return sum(self.sizes)

    @cached_property
    def _slices(self) -> tuple[slice, ...]:
        ends = np.cumsum((0, *self.sizes))
        return tuple(slice(int(a), int(b)) for a, b in itertools.pairwise(ends))

    def slice(self, agent: int) -> slice:
        return self._slices[agent]

    def flatten(self, theta: Sequence[np.ndarray]) -> np.ndarray:
        """Concatenate the row-major flattenings of ``theta^k``."""
        return np.concatenate([np.asarray(part, dtype=float).reshape(-1) for part in theta])

    def unflatten(self, flat: np.ndarray) -> tuple[np.ndarray, ...]:
        """Split a flat vector (or the leading axis of an array) back into per-agent shapes."""
        return tuple(flat[self.slice(k)].reshape(shape + flat.shape[1:]) for k, shape in enumerate(self.shapes))

    def own_parts(self, per_agent) -> np.ndarray:
        """Agent ``k``'s own entries of ``per_agent[k]``, concatenated: ``(n, D) -> (D,)``
        (the simultaneous gradient from full gradients) or ``(n, D, D) -> (D, D)``."""
        return np.concatenate([per_agent[k][self.slice(k)] for k in range(len(self.shapes))])

    @cached_property
    def _others(self) -> tuple[np.ndarray, ...]:
        masks = []
        for agent in range(len(self.shapes)):
            mask = np.ones(self.size, dtype=bool)
            mask[self.slice(agent)] = False
            mask.setflags(write=False)
            masks.append(mask)
        return tuple(masks)

    def others(self, agent: int) -> np.ndarray:
        """A mask of every parameter that is not agent ``agent``'s (the ``-i`` rows; read-only)."""
        return self._others[agent]

    def per_parameter(self, per_agent) -> np.ndarray:
        """A flat vector holding ``per_agent[k]`` on each of agent ``k``'s parameters."""
        return np.repeat(np.asarray(per_agent, dtype=float), self.sizes)

    def random(self, rng: np.random.Generator, scale: float) -> tuple[np.ndarray, ...]:
        """``theta^k ~ Normal(0, scale^2)`` entrywise."""
        return tuple(scale * rng.standard_normal(shape) for shape in self.shapes)


def layout_of(game: Game | DifferentiableGame, policy: Policy | None) -> Layout:
    """The parameter layout: ``policy.shape(|S|, |A^k|)`` per agent, or a differentiable game's own."""
    if isinstance(game, DifferentiableGame):
        return Layout(game.param_shapes)
    return Layout(tuple(policy.shape(game.n_states, a) for a in game.n_actions))
