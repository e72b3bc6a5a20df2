"""Campaigns: one verification over many generated games, and what it adds up to.

A campaign spec (``[campaign]`` in a TOML file) names the estimators, their claims, the ranges
games are drawn from and the budget. Game ``j`` is fixed by ``(seed, j)`` alone: its sizes are
drawn by ``numpy.random.default_rng([seed, j])``, and it is the built-in ``random`` game with a
seed drawn there too, so every task is a small case file any user can rerun with ``run``. A
task is one game with all its estimators (and, with ``mutants``, the planted bugs of
``MUTANTS``, each claiming to be ``meta-mapg``), verified by the same pipeline as ``run``; its
record is plain JSON (stored sealed with the spec's :func:`fingerprint` and its own checksum).
:func:`aggregate` reads the records in task order, so the same seed gives the same aggregate
whatever ran them and in what order; the driver is :mod:`mapg_verify.cluster`.

Aggregates, per estimator (intervals are Clopper-Pearson at 95%):

- its claim: games where it held, failed, or could not be tested (with the reason counted);
- its implementation check (Monte-Carlo mean against its own exact expectation): every
  built-in is right by construction, so a rejection is a false alarm; the rate beside the
  case's level (Holm over each game's estimators keeps it at or below the level);
- relative bias against model S and model E across games (quantiles);
- per planted bug, the power: the share of games whose claim check caught it;
- per check kind (the name before ``:``; planted bugs aside), the failures among the checks with
  a verdict, the false alarms its level allows, and the campaign's verdict (:func:`exit_rules`).
"""

from __future__ import annotations

import math
import time
import tomllib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from mapg_verify.casefile.reader import parse_case
from mapg_verify.casefile.values import known_keys, positive_integer, subtable
from mapg_verify.casefile.writer import toml_text
from mapg_verify.checks.result import Bias, MeanTestFigures, name_parts
from mapg_verify.estimators.plugins import plugin_path
from mapg_verify.estimators.table import ESTIMATORS, MUTANTS
from mapg_verify.pipeline import evaluate_safely
from mapg_verify.problem.errors import InputError
from mapg_verify.results import digest, plain

MAX_GAMES = 10**6
KEYS = (
    "games", "states", "actions", "horizon", "gamma", "policy", "estimators", "claims", "mutants",
    "samples", "seed", "batch", "steps", "level", "claim_mode",
)  # fmt: skip
MUTANT_CLAIM = "meta-mapg"  # each planted bug is a variant of it that still claims to be it
ALARM_P = 0.001  # a check kind fails the campaign when its failures are this improbable under its level


class CampaignError(Exception):
    """A campaign that cannot give a true aggregate: games without a record, a record not stored."""


@dataclass(frozen=True)
class CampaignSpec:
    """A validated ``[campaign]``: ranges are inclusive ``(low, high)``."""

    games: int
    states: tuple[int, int]
    actions: tuple[int, int]
    horizon: tuple[int, int]
    estimators: tuple[str, ...]
    claims: tuple[tuple[str, str | tuple[tuple[str, float], ...]], ...] = ()  # a fingerprint as (term, coefficient)
    mutants: bool = False
    samples: int = 2000
    seed: int = 0
    gamma: float = 0.9
    policy: str = "softmax"
    batch: int = 2
    steps: int = 1
    level: float = 0.01
    claim_mode: str = "auto"
    path: str = ""  # the spec file: plug-ins import from its folder and that folder's parent, as a case's do

    @property
    def names(self) -> tuple[str, ...]:
        """Every estimator a task verifies: the spec's, then the planted bugs."""
        return self.estimators + (tuple(MUTANTS) if self.mutants else ())


def _range(table: dict, key: str, default: tuple[int, int], low: int) -> tuple[int, int]:
    value = table.get(key, list(default))
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= low for v in value)
        or value[0] > value[1]
    ):
        raise InputError(f"campaign.{key}", f"must be [low, high], integers with {low} <= low <= high, got {value!r}")
    return value[0], value[1]


def parse_spec(document: dict, path: str = "") -> CampaignSpec:
    """Validate a parsed campaign file (read from ``path``); errors name the ``campaign.*`` key."""
    known_keys(document, ("campaign",), "")
    table = subtable(document, "campaign")
    known_keys(table, KEYS, "campaign.")
    for key in ("games", "estimators"):
        if key not in table:
            raise InputError(f"campaign.{key}", "is required")
    games = positive_integer(table["games"], "campaign.games")
    if games > MAX_GAMES:
        raise InputError("campaign.games", f"is {games:,}, above the limit of {MAX_GAMES:,}")
    estimators = table["estimators"]
    if not isinstance(estimators, list) or not estimators or not all(isinstance(e, str) for e in estimators):
        raise InputError("campaign.estimators", f"must be a non-empty list of estimator names, got {estimators!r}")
    claims = table.get("claims", {})
    if not isinstance(claims, dict) or not all(isinstance(v, str | dict) for v in claims.values()):
        raise InputError(
            "campaign.claims",
            f"must be a table of estimator = claim (a name, or a table of fingerprint coefficients), got {claims!r}",
        )
    if not isinstance(table.get("mutants", False), bool):
        raise InputError("campaign.mutants", f"must be true or false, got {table['mutants']!r}")
    _distinct(estimators, table.get("mutants", False))
    seed = table.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError("campaign.seed", f"must be an integer >= 0, got {seed!r}")
    spec = CampaignSpec(
        games,
        _range(table, "states", (1, 3), 1),
        _range(table, "actions", (2, 3), 2),
        _range(table, "horizon", (1, 3), 1),
        tuple(estimators),
        tuple((name, claim if isinstance(claim, str) else tuple(claim.items())) for name, claim in claims.items()),
        table.get("mutants", False),
        path=path,
        **{key: table[key] for key in ("samples", "seed", "gamma", "policy", "batch", "steps", "level", "claim_mode")
           if key in table},
    )  # fmt: skip
    for corner in (0, 1):  # the smallest and the largest game: every other key is checked as a case checks it
        sizes = [bounds[corner] for bounds in (spec.states, spec.actions, spec.horizon)]
        try:
            parse_case(_document(spec, "campaign", sizes[0], [sizes[1]] * 2, sizes[2], 0, 0), "campaign")
        except InputError as error:
            raise InputError(
                _campaign_key(error.key), f"{error.reason} (in the case of a game of the campaign)"
            ) from None
    return spec


def _distinct(estimators: list[str], mutants: bool) -> None:
    """Each estimator once, and no planted bug that ``mutants = true`` adds already."""
    for index, name in enumerate(estimators):
        if name in estimators[:index]:
            raise InputError("campaign.estimators", f"lists {name!r} twice")
        if mutants and name in MUTANTS:
            raise InputError(
                "campaign.estimators", f"lists the planted bug {name!r}, which mutants = true adds already"
            )


CASE_KEYS = {  # a task's case key -> the campaign key that set it
    "estimators.names": "campaign.estimators", "estimators.claims": "campaign.claims",
    "estimators.samples": "campaign.samples", "inner.batch": "campaign.batch", "inner.steps": "campaign.steps",
    "checks.level": "campaign.level", "checks.claim_mode": "campaign.claim_mode", "policy.kind": "campaign.policy",
    "game.gamma": "campaign.gamma", "game.states": "campaign.states", "game.actions": "campaign.actions",
    "game.horizon": "campaign.horizon",
}  # fmt: skip


def _campaign_key(key: str) -> str:
    """The campaign key behind a task case's key (its longest known prefix), or ``campaign``."""
    for prefix, campaign in CASE_KEYS.items():
        if key == prefix or key.startswith(prefix + "."):
            return campaign + key[len(prefix) :]
    return "campaign"


def load_spec(path: str | Path) -> CampaignSpec:
    """Read and validate a campaign file; an :class:`InputError` names the file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as error:
        raise InputError("file", f"cannot be read: {error.strerror}", str(path)) from None
    except UnicodeDecodeError as error:
        reason = f"is not UTF-8 text (byte {error.start}): a campaign file is TOML"
        raise InputError("file", reason, str(path)) from None
    except tomllib.TOMLDecodeError as error:
        raise InputError("file", f"is not valid TOML: {error}", str(path)) from None
    plugin_path(str(path))
    try:
        return parse_spec(document, str(path.resolve()))
    except InputError as error:
        raise InputError(error.key, error.reason, str(path)) from None


def settings(spec: CampaignSpec) -> dict:
    """The spec's fields that change results, as JSON: every field but its path."""
    return plain({key: value for key, value in asdict(spec).items() if key != "path"})


def fingerprint(spec: CampaignSpec) -> str:
    """The sha256 of the spec's :func:`settings`: equal for specs that give equal results."""
    return digest(settings(spec))


def task_document(spec: CampaignSpec, index: int) -> dict:
    """Game ``index`` of the campaign as a case file's document (see the module's docstring)."""
    rng = np.random.default_rng([spec.seed, index])
    states = int(rng.integers(spec.states[0], spec.states[1] + 1))
    actions = [int(rng.integers(spec.actions[0], spec.actions[1] + 1)) for _ in range(2)]
    horizon = int(rng.integers(spec.horizon[0], spec.horizon[1] + 1))
    game_seed, params_seed = (int(v) for v in rng.integers(0, 2**31, size=2))
    return _document(spec, f"campaign-{spec.seed}-{index:06d}", states, actions, horizon, game_seed, params_seed)


def _document(spec: CampaignSpec, name: str, states, actions, horizon, game_seed, params_seed) -> dict:
    claims = {name: claim if isinstance(claim, str) else dict(claim) for name, claim in spec.claims}
    claims |= {bug: MUTANT_CLAIM for bug in MUTANTS} if spec.mutants else {}
    return {
        "name": name,
        "game": {"builtin": "random", "seed": game_seed, "states": states, "actions": actions,
                 "horizon": horizon, "gamma": spec.gamma},
        "policy": {"kind": spec.policy},
        "params": {"seed": params_seed, "scale": 0.5},
        "inner": {"model": ["expected", "sampled"], "steps": spec.steps, "batch": spec.batch},
        "estimators": {"names": list(spec.names), "samples": spec.samples, "claims": claims},
        "checks": {"seeds": 0, "sweep": False, "level": spec.level, "claim_mode": spec.claim_mode},
    }  # fmt: skip


def run_task(spec: CampaignSpec, index: int) -> dict:
    """Verify game ``index``: its record, what :func:`aggregate` reads (JSON-ready). ``checks``
    holds every check's verdict but the planted bugs'; ``levelled``, the kinds whose checks test
    at the case's level."""
    started = time.perf_counter()
    if spec.path:  # on a worker of another machine too
        plugin_path(spec.path)
    document = task_document(spec, index)
    case = parse_case(document, document["name"])
    result = evaluate_safely(case, 0, False)
    checks = {(check.kind, check.subject): check for check in result.checks}
    estimators = {}
    for name in spec.names:
        claim, implementation = checks.get(("claim", name)), checks.get(("implementation", name))
        bias = checks.get(("bias", name))
        relative = {b.model: b.relative for b in Bias.of(bias, case.checks.relative_error)} if bias else {}
        estimators[name] = {
            "claim": claim and claim.verdict,
            "claim summary": claim and claim.summary,
            "implementation": implementation and implementation.verdict,
            "bias vs model S": relative.get("S"),
            "bias vs model E": relative.get("E"),
        }
    mutants = set(MUTANTS) if spec.mutants else set()
    own = [check for check in result.checks if (check.subject or check.kind) not in mutants]
    return {
        "task": index,
        "case": document,
        "estimators": estimators,
        "checks": {check.name: check.verdict for check in own},
        "levelled": sorted({check.kind for check in own if MeanTestFigures.of(check) is not None}),
        "seconds": time.perf_counter() - started,
    }


def interval(successes: int, trials: int, confidence: float = 0.95) -> list[float] | None:
    """The Clopper-Pearson interval of a binomial proportion (``None`` without trials)."""
    if trials == 0:
        return None
    tail = (1 - confidence) / 2
    low = stats.beta.ppf(tail, successes, trials - successes + 1) if successes else 0.0
    high = stats.beta.ppf(1 - tail, successes + 1, trials - successes) if successes < trials else 1.0
    return [float(low), float(high)]


def _quantiles(values: list) -> dict | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None
    points = np.quantile(finite, [0.0, 0.25, 0.5, 0.75, 1.0])
    return dict(zip(("min", "25%", "median", "75%", "max"), map(float, points), strict=True)) | {"games": len(finite)}


def aggregate(spec: CampaignSpec, records: list[dict]) -> dict:
    """The campaign's figures from its task records, one per game (any order; read by task number)."""
    records = sorted(records, key=lambda record: record["task"])
    tasks = [record["task"] for record in records]
    if tasks != list(range(spec.games)):
        missing = sorted(set(range(spec.games)) - set(tasks))
        names = [task_document(spec, index)["name"] for index in missing[:10]] + ["..."] * (len(missing) > 10)
        raise CampaignError(
            f"an aggregate needs one record per game of the spec's {spec.games}, and there are {len(tasks)}: "
            f"{len(missing)} games have none ({', '.join(names) or '-'}); --resume reruns them"
        )
    out: dict = {
        "spec": settings(spec), "fingerprint": fingerprint(spec), "games": len(records), "level": spec.level,
        "estimators": {}, "mutants": {},
    }  # fmt: skip
    for name in spec.names:
        rows = [record["estimators"][name] for record in records]
        verdicts = [row["claim"] for row in rows]
        held, failed = verdicts.count("pass"), verdicts.count("fail")
        if name in MUTANTS and spec.mutants:
            tested = held + failed
            out["mutants"][name] = {
                "defect": MUTANTS[name].terms, "claims": MUTANT_CLAIM, "caught": failed, "tested": tested,
                "power": failed / tested if tested else None, "interval": interval(failed, tested),
            }  # fmt: skip
            continue
        implementation = [row["implementation"] for row in rows if row["implementation"] in ("pass", "fail")]
        alarms = implementation.count("fail")
        out["estimators"][name] = {
            "claim": _claim_text(dict(spec.claims).get(name, "its own (built-in)" if name in ESTIMATORS else None)),
            "held": held, "failed": failed, "untested": len(rows) - held - failed,
            "share held": held / (held + failed) if held + failed else None, "interval": interval(held, held + failed),
            "implementation": {
                "tested": len(implementation), "false alarms": alarms,
                "rate": alarms / len(implementation) if implementation else None,
                "interval": interval(alarms, len(implementation)), "nominal": spec.level,
            },
            "bias vs model S": _quantiles([row["bias vs model S"] for row in rows]),
            "bias vs model E": _quantiles([row["bias vs model E"] for row in rows]),
        }  # fmt: skip
    failing = [(r, [name for name, verdict in r["checks"].items() if verdict == "fail"]) for r in records]
    out["failures"] = [{"task": r["task"], "case": r["case"]["name"], "checks": names} for r, names in failing if names]
    out["checks"] = check_kinds(spec, records)
    rules = exit_rules(out["checks"])
    return out | {"exit": {"code": 1 if rules else 0, "rules": rules}}


def _claim_text(claim: str | tuple | None) -> str | None:
    """A claim as the summaries name it: a model's or estimator's name, or ``fingerprint 1 current + ...``."""
    if claim is None or isinstance(claim, str):
        return claim
    return "fingerprint " + " + ".join(f"{coefficient:g} {term}" for term, coefficient in claim)


def check_kinds(spec: CampaignSpec, records: list[dict]) -> dict:
    """Per check kind: the checks with a verdict (pass or fail), the failures, the level that bounds
    its false alarms (the case's for a kind whose checks test at a level, 0 for an exact one), the
    false alarms expected there, and the one-sided binomial p of at least that many failures."""
    counts: dict[str, Counter] = {}
    for record in records:
        for name, verdict in record["checks"].items():
            counts.setdefault(name_parts(name)[0], Counter())[verdict] += 1
    levelled = {kind for record in records for kind in record["levelled"]}
    kinds = {}
    for kind, count in sorted(counts.items()):
        checks, failures = count["pass"] + count["fail"], count["fail"]
        level = spec.level if kind in levelled else 0.0
        p = stats.binomtest(failures, checks, level, alternative="greater").pvalue if checks else None
        kinds[kind] = {
            "checks": checks, "failures": failures, "level": level, "expected false alarms": level * checks,
            "binomial p": None if p is None else float(p),
        }  # fmt: skip
    return kinds


def exit_rules(kinds: dict) -> list[str]:
    """Why the campaign exits 1, one line per rule that holds (none: exit 0): a claim failed, an
    ``error`` check occurred, or a kind's failures are improbable (binomial p < :data:`ALARM_P`)
    under its level; an exact kind's level is 0, so one failure is enough."""
    rules = []
    if kinds.get("claim", {}).get("failures"):
        rules.append(f"claim: {kinds['claim']['failures']} of {kinds['claim']['checks']} claim checks failed")
    if kinds.get("error", {}).get("failures"):
        rules.append(f"error: {kinds['error']['failures']} games raised an error")
    for kind, row in kinds.items():
        if kind not in ("claim", "error") and row["binomial p"] is not None and row["binomial p"] < ALARM_P:
            rules.append(
                f"false alarms: {kind} failed {row['failures']} of {row['checks']} checks, "
                f"{row['expected false alarms']:.2g} expected at level {row['level']:g} "
                f"(binomial p = {row['binomial p']:.2g} < {ALARM_P:g})"
            )
    return rules


def case_toml(document: dict) -> str:
    """A task's document as a case file (the shapes :func:`task_document` makes)."""
    return toml_text(document)
