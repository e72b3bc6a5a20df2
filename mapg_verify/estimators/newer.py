"""The field's newer estimators, which are not switches on the DiCE surrogate: each with its exact
expectation (where it lives), its published claim and its source, for ``list`` and the findings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NewerEstimator:
    """One row of ``list``'s section: what is computed exactly, the claim published for it, its source."""

    computes: str
    claim: str
    source: str
    exact: str


NEWER_ESTIMATORS: dict[str, NewerEstimator] = {
    "loqa": NewerEstimator(
        "LOQA's opponent-shaping gradient: log softmax(Q/tau) of the taken action, only its Q differentiable, "
        "with the opponent's exact Q and dQ/dtheta",
        "the loss differentiates the opponent modelled as softmax(Q/tau) (the agent shapes that opponent)",
        "Aghajohari et al., LOQA, ICLR 2024; MiladInk/loqa ipd.py agent_policy_loss",
        "mapg_verify.exact.opponent_model (taken); oracle mapg_verify.oracles.opponent_model",
    ),
    "loqa-ideal": NewerEstimator(
        "d/dtheta V^i(pi^i, softmax(Q^j(theta)/tau)) by the chain rule: sum_b p_b G_b (A_b - mean A) / tau",
        "the reference LOQA's loss is read against",
        "chain rule through LOQA's opponent model",
        "mapg_verify.exact.opponent_model (ideal); oracle mapg_verify.oracles.opponent_model",
    ),
    "coala-pg": NewerEstimator(
        "COALA-PG's REINFORCE estimate on the batched co-player setting: a log-probability in trajectory b, "
        "episode m credited with (1/B) its own rewards to the episode's end and the batch's later returns "
        "(variants: the pax reimplementation's scales, M-FOS's, the batch-unaware Meta-MAPG pairing)",
        "unbiased: its expectation is the gradient of E[(1/B) sum_b sum_m R_{m,b}] (Theorem 3.1)",
        "Meulemans et al., Multi-agent cooperation through learning-aware policy gradients, ICLR 2025; "
        "kay-le/pax pax/agents/coala_pg/coala_pg.py",
        "mapg_verify.exact.coala; claim mapg_verify.checks.newer.coala_claims; oracle model S's autograd",
    ),
    "mamaml": NewerEstimator(
        "Meta-MAPG with exact gradients through S inner steps, the agent's values summed at every step",
        "an improved Meta-MAPG (M-FOS): its meta-gradient is model E's with the chain objective over L = S - 1",
        "Lu et al., M-FOS, ICML 2022; luchris429/model-free-opponent-shaping src/environments.py generate_mamaml",
        "mapg_verify.exact.metagradient.expected_update (objective chain); test tests/test_newer.py",
    ),
    "advantage-alignment": NewerEstimator(
        "Advantage Alignment's opponent-shaping term with exact advantages: the paper's and README's "
        "beta gamma E[sum_t gamma^t (sum_{k<t} gamma^{t-k} A^1_k) A^2_t grad log pi^1_t]; train.py's "
        "linear_aa_loss (undiscounted cumulative sum divided by arange(1..T), a mean over time); the derived "
        "form (undiscounted, k <= t, the advantage of the opponent's action)",
        "existing opponent shaping methods implicitly perform Advantage Alignment (Theorems 1 and 2: LOLA, LOQA; "
        "read as: their shaping term is a multiple of the published alignment term, the theorems' text not consulted)",
        "Duque et al., Advantage Alignment Algorithms, ICLR 2025; jduquevan/advantage-alignment README.md, "
        "train.py linear_aa_loss",
        "mapg_verify.exact.advantage_alignment; claim mapg_verify.checks.newer.alignment_claims; "
        "oracle mapg_verify.oracles.advantage_alignment",
    ),
    "pola": NewerEstimator(
        "POLA's exact update: the opponent's and then the agent's proximal maximisers (KL to the old policy, "
        "summed over states), solved by trust-region Newton, differentiated by the implicit function theorem",
        "POLA updates are parameterization invariant (LOLA's are not)",
        "Zhao et al., Proximal Learning With Opponent-Learning Awareness, NeurIPS 2022; Silent-Zebra/POLA",
        "mapg_verify.exact.proximal; claim mapg_verify.checks.newer.invariance_claim",
    ),
}
