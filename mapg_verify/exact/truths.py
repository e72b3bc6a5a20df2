"""The exact truths of one case, each computed once: model E and model S (SPEC §3) at every inner
batch size ``K``, inner rates ``alpha`` and inner baseline that the case's checks ask for.

Every check reads its truth from one :class:`Truths`, so that the identities, the estimators'
bias and claims and the bias sweep share each meta-gradient instead of recomputing it (model S
enumerates every inner batch, the costly part of a case).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from mapg_verify.exact.compiled import CompiledValues
from mapg_verify.exact.metagradient import MetaGradient, expected_update, sampled_update
from mapg_verify.problem.errors import InputError
from mapg_verify.spec.case import Case


@dataclass(frozen=True, eq=False)
class Truths:
    """The meta-gradients of agent ``inner.meta_agent`` at the case's ``theta``, held once computed
    (``held``: setting -> the meta-gradient, or the :class:`InputError` of a setting past the
    enumeration cap). Unnamed settings are the case's own: its ``K``, its rates, no inner baseline."""

    case: Case
    compiled: CompiledValues
    held: dict = field(default_factory=dict, repr=False)

    def expected(self, alpha: tuple[float, ...] | None = None) -> MetaGradient:
        """Model E at rates ``alpha``, with the case's steps and objective."""
        inner = self.case.inner
        alpha = tuple(inner.alpha if alpha is None else alpha)
        return self._held(
            ("expected", alpha),
            lambda: expected_update(
                self.compiled, self.case.flat_theta, alpha, inner.steps, inner.meta_agent, inner.objective
            ),
        )

    def sampled(
        self,
        batch: int | None = None,
        alpha: tuple[float, ...] | None = None,
        baseline: str = "none",
        fit: str = "aligned",
    ) -> MetaGradient:
        """Model S with ``K = batch`` inner trajectories at rates ``alpha``, the inner update with
        ``baseline`` (fitted by ``fit``); an :class:`InputError` past the enumeration cap."""
        case, inner = self.case, self.case.inner
        batch, alpha = batch or inner.batch, tuple(inner.alpha if alpha is None else alpha)
        at = dataclasses.replace(inner, alpha=alpha)
        return self._held(
            ("sampled", batch, alpha, baseline, fit),
            lambda: sampled_update(
                self.compiled, case.game, case.policy, case.flat_theta, at, batch, baseline=baseline, fit=fit
            ),
        )

    def models(self, alpha: tuple[float, ...] | None = None) -> dict[str, MetaGradient]:
        """The meta-gradient of each inner model the case asks for at rates ``alpha``, by model name."""
        found = {"expected": lambda: self.expected(alpha), "sampled": lambda: self.sampled(alpha=alpha)}
        return {model: found[model]() for model in self.case.inner.models}

    def _held(self, setting: tuple, compute) -> MetaGradient:
        if setting not in self.held:
            try:
                self.held[setting] = compute()
            except InputError as error:
                self.held[setting] = error
        found = self.held[setting]
        if isinstance(found, InputError):
            raise found
        return found
