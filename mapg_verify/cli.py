"""The command line: ``list``, ``exact`` and ``run``; ``main(argv) -> exit code``.

Exit codes: 0 every check passed, 1 a check failed, 2 bad input (one message
naming file, key and reason; no traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import numpy as np
import symengine

from .calibration import calibration, power
from .cases import Case, case_paths, load_case
from .checks import CHECKS, CheckResult, expected_identities, meta_oracles, oracle_agreement, sampled_identities
from .compiled import DEFAULT_BACKEND, compile_game, compile_seconds
from .errors import InputError
from .estimators import ESTIMATORS, MUTANTS
from .games import GAMES
from .metagradient import meta_gradients
from .paper import EXPERIMENTS as PAPER_EXPERIMENTS
from .policies import POLICIES
from .progress import Progress
from .report import case_record, render
from .results import describe_case, dumps, exact_truth, writable, write_atomic
from .verification import ESTIMATOR_CHECKS, expectations, holm_family, shared, verify_estimator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mapg_verify", description="Verify multi-agent meta-policy gradients.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list games, policy kinds, estimators and checks")
    exact = commands.add_parser("exact", help="exact values of one case, cross-checked by oracles")
    exact.add_argument("case")
    exact.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE")
    exact.add_argument("--mpmath", action="store_true", help="also check gradients with mpmath at 50 digits")
    run = commands.add_parser("run", help="run case files or folders of them")
    run.add_argument("paths", nargs="+")
    run.add_argument("--out", default="reports", help="output folder (default: reports)")
    run.add_argument(
        "--jobs",
        type=_count(1),
        default=os.cpu_count() or 1,
        help="cases run in parallel processes (default: one per core)",
    )
    run.add_argument("--seed", type=_count(0), default=0, help="seed of every Monte-Carlo draw (default 0)")
    run.add_argument(
        "--quick", action="store_true", help="a first look: a tenth of the samples, no calibration or power"
    )
    report = commands.add_parser("report", help="rebuild the HTML report from a results file")
    report.add_argument("results")
    report.add_argument("--out", help="folder of index.html (default: the results file's folder)")
    return parser


def _count(low: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``low`` (argparse reports anything else, exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


class Terminated(Exception):
    """SIGTERM (a scheduler's or CI's stop) arrived: stop as on Ctrl-C, exit 143."""


def _terminate(signum, frame) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        return {"list": _list, "exact": _exact, "run": _run, "report": _report}[arguments.command](arguments)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143


def _list(_: argparse.Namespace) -> int:
    _table(
        "games",
        [(name, entry.summary, ", ".join(entry.options()) or "-") for name, entry in GAMES.items()],
        ("name", "summary", "options"),
    )
    _table("policy kinds", [(name, policy.summary) for name, policy in POLICIES.items()], ("name", "summary"))
    _table(
        "estimators",
        [(name, e.terms, e.inner_derivative) for name, e in ESTIMATORS.items()],
        ("name", "terms", "inner derivative"),
    )
    _table(
        "deliberately wrong estimators (for the power check)",
        [(name, e.terms) for name, e in MUTANTS.items()],
        ("name", "defect"),
    )
    _table("checks", [(name, summary) for name, (summary, _) in CHECKS.items()], ("name", "summary"))
    _table("estimator checks", list(ESTIMATOR_CHECKS.items()), ("name", "summary"))
    return 0


def _exact(arguments: argparse.Namespace) -> int:
    case = load_case(arguments.case)
    if arguments.json:
        writable(arguments.json, "--json")
    _note_compile_time([case])
    document = _evaluate_safely(case, None, False, mpmath_gradients=arguments.mpmath)
    truth = document["exact"]
    rows = [
        (f"agent {k}", f"{v:.12g}", f"{s:.12g}")
        for k, (v, s) in enumerate(zip(truth["values"], truth["per_step"], strict=True))
    ]
    _table(f"{case.name}: exact values", rows, ("agent", "V", "per step"))
    for model, terms in truth["truth"].items():
        rows = [(term, " ".join(f"{v:.6g}" for v in terms[term])) for term in ("total", "current", "own", "peer")]
        _table(f"meta-gradient of agent {case.inner.meta_agent}, model {model[0].upper()}", rows, ("term", "value"))
    for check in document["checks"]:
        print(f"{check['name']}: {VERDICT_TEXT[check['verdict']]} ({check['summary']})")
    if arguments.json:
        write_atomic(arguments.json, dumps({**truth, "case": document["case"], "checks": document["checks"]}))
        print(f"wrote {arguments.json}")
    return 0 if all(check["passed"] for check in document["checks"]) else 1


VERDICT_TEXT = {"pass": "pass", "fail": "FAIL", "info": "info"}
QUICK_SAMPLES = 10  # --quick divides [estimators] samples by this (at least MIN_QUICK_SAMPLES remain)
MIN_QUICK_SAMPLES = 200


def quick(case: Case) -> Case:
    """The case at a first look's budgets: a tenth of the samples, no calibration, power or bias
    sweep; the paper's Figure 3 with at most 5 seeds, 4 training and 2 held-out tasks, a quarter
    of the meta-training and no sensitivity study."""
    samples = max(MIN_QUICK_SAMPLES, case.estimators.samples // QUICK_SAMPLES)
    estimators = dataclasses.replace(case.estimators, samples=min(samples, case.estimators.samples))
    paper = case.paper
    if paper and paper.experiment == "figure-3":
        paper = dataclasses.replace(
            paper,
            seeds=min(paper.seeds, 5),
            iterations=max(10, paper.iterations // 4),
            sensitivity=(),
            train_tasks=min(paper.train_tasks, 4),
            test_tasks=min(paper.test_tasks, 2),
            task_batch=min(paper.task_batch, 4),
        )
    checks = dataclasses.replace(case.checks, seeds=0, sweep=False)
    return dataclasses.replace(case, estimators=estimators, checks=checks, paper=paper)


def _note_compile_time(cases: list[Case]) -> None:
    """Say which cases' closed forms will take long to compile (over a minute, estimated)."""
    for case in cases:
        seconds = compile_seconds(case.game, case.policy)
        if seconds > 60:
            print(
                f"note: {case.name}: compiling its closed forms may take about {seconds / 60:.0f} minutes "
                "(a rough estimate from the game's size)",
                file=sys.stderr,
            )


def _unique_names(cases: list[Case]) -> None:
    seen: dict[str, str] = {}
    for case in cases:
        if case.name in seen:
            raise InputError(
                "name", f"{case.name!r} is also the name of {seen[case.name]}: names must differ", case.path
            )
        seen[case.name] = case.path


def _quiet_worker() -> None:
    """Pool workers leave Ctrl-C to the parent, which stops them (one message, not one per worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run(arguments: argparse.Namespace) -> int:
    paths = case_paths(arguments.paths)
    cases = [load_case(path) for path in paths]  # all input is checked before anything runs
    _unique_names(cases)
    target = Path(arguments.out) / "results.json"
    writable(target, "--out")
    writable(target.with_name("index.html"), "--out")
    _note_compile_time(cases)
    if arguments.quick:
        cases = [quick(case) for case in cases]
    started = time.perf_counter()
    documents = []
    jobs = min(arguments.jobs, len(cases))
    pool = multiprocessing.Pool(jobs, initializer=_quiet_worker) if jobs > 1 else None
    bar = Progress(len(cases), "cases", delay=0.0)
    # With a pool, SIGTERM stops the workers too; alone, its default action ends the process at once.
    previous = signal.signal(signal.SIGTERM, _terminate) if pool else None
    try:
        evaluate = functools.partial(_evaluate_and_draw, seed=arguments.seed, progress=jobs == 1)
        drawn = []
        for document, record in (pool.imap if pool else map)(evaluate, cases):
            verdict = "pass" if all(c["passed"] for c in document["checks"]) else "FAIL"
            bar.advance(f"{document['case']['name']}: {verdict}")
            documents.append(document)
            drawn.append(record)
        bar.close()
        _summary(documents)
        results = {
            "mapg_verify": _versions(),
            "run": {"seed": arguments.seed, "quick": arguments.quick},
            "cases": [{k: v for k, v in d.items() if k != "timings"} for d in documents],
            "timings": {
                "total seconds": time.perf_counter() - started,
                "cases": {d["case"]["name"]: d["timings"] for d in documents},
            },
        }
        text = dumps(results)
        page = render(json.loads(text), drawn)  # from the file's content, as `report` does
    finally:
        if pool:  # on an interruption too: no worker is left running
            pool.terminate()
            pool.join()
            signal.signal(signal.SIGTERM, previous)
    write_atomic(target, text)
    write_atomic(target.with_name("index.html"), page)
    print(f"wrote {target} and {target.with_name('index.html')}")
    return 0 if all(c["passed"] for d in documents for c in d["checks"]) else 1


def _summary(documents: list[dict]) -> None:
    """One line per case, then the failing checks with their key figures."""
    rows = []
    for d in documents:
        verdicts = [c["verdict"] for c in d["checks"]]
        failed = [c["name"] for c in d["checks"] if c["verdict"] == "fail"]
        counts = "/".join(str(verdicts.count(v)) for v in ("pass", "info", "fail"))
        rows.append((d["case"]["name"], "FAIL" if failed else "pass", counts, ", ".join(failed)))
    _table("summary", rows, ("case", "verdict", "pass/info/fail", "failed"))
    failures = [(d["case"]["name"], c["name"], c["summary"]) for d in documents for c in d["checks"] if not c["passed"]]
    if failures:
        _table("failed checks", failures, ("case", "check", "key figure"))


def _report(arguments: argparse.Namespace) -> int:
    source = Path(arguments.results)
    try:
        results = json.loads(source.read_text())
    except OSError as error:
        raise InputError("file", f"cannot be read: {error.strerror}", str(source)) from None
    except json.JSONDecodeError as error:
        raise InputError("file", f"is not valid JSON: {error}", str(source)) from None
    if not isinstance(results, dict) or not isinstance(results.get("cases"), list):
        raise InputError("cases", "is missing: not a results file written by run", str(source))
    target = Path(arguments.out or source.parent) / "index.html"
    writable(target, "--out")
    try:
        page = render(results)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        raise InputError(
            "cases", f"is not a results file written by run ({type(error).__name__}: {error})", str(source)
        ) from None
    write_atomic(target, page)
    print(f"wrote {target}")
    return 0


def _evaluate_and_draw(case: Case, seed: int, progress: bool) -> tuple[dict, dict]:
    """The case's document and its report record, drawn from the document's JSON form (so that
    ``report`` rebuilds the same page), in the process that ran the case."""
    document = _evaluate_safely(case, seed, progress)
    content = {key: value for key, value in document.items() if key != "timings"}
    return document, case_record(json.loads(dumps(content)))


def _evaluate_safely(case: Case, seed: int | None, progress: bool, mpmath_gradients: bool = False) -> dict:
    """:func:`_evaluate`, with an unexpected error (or a figure JSON cannot hold) recorded as the
    case's failed check ``error`` (the other cases go on); an interruption still stops the run."""
    started = time.perf_counter()
    try:
        document = _evaluate(case, mpmath_gradients=mpmath_gradients, seed=seed, progress=progress)
        dumps(document)  # a value JSON cannot hold fails this case, not the run
        return document
    except Exception as error:  # a bug in one case must not cost the others their results
        check = CheckResult("error", False, {"type": type(error).__name__}, f"{type(error).__name__}: {error}")
        return {
            "case": _header(case),
            "exact": {"values": [], "per_step": [], "truth": {}, "lola": {}, "skipped": {}, "estimators": {}},
            "estimators": {},
            "checks": [asdict(check)],
            "timings": {"seconds": time.perf_counter() - started},
        }


def _evaluate(case: Case, mpmath_gradients: bool = False, seed: int | None = None, progress: bool = False) -> dict:
    """Everything computed for one case, as a JSON-ready document; with a ``seed``, the estimators'
    Monte-Carlo checks too (and calibration and power when the case asks for seeds)."""
    started = time.perf_counter()
    compiled = compile_game(case.game, case.policy)
    oracles = oracle_agreement(case, compiled, mpmath_gradients=mpmath_gradients)
    gradients = meta_gradients(compiled, case)
    found = expectations(case, compiled)
    truth = exact_truth(case, compiled, oracles, gradients, found)
    checks = [oracles, *_meta_checks(case, compiled, gradients)]
    reports = {}
    if seed is not None:
        bar = Progress(len(case.estimators.names), f"    {case.name}: estimators", delay=1.0 if progress else math.inf)
        context = shared(case, compiled) if case.estimators.names else None
        for name in case.estimators.names:
            reports[name] = verify_estimator(
                case, compiled, gradients, name, seed, found[0].get(name), found[1].get(name, ""), context
            )
            bar.advance(name)
        bar.close()
        reports = holm_family(reports, case.checks.level)
        checks.extend(check for report in reports.values() for check in report.checks)
        if case.checks.seeds:
            checks.append(calibration(case, compiled, seed, progress))
            if "meta-mapg" in case.estimators.names:
                checks.append(power(case, compiled, seed, progress))
    paper = None
    if case.paper:
        paper, check = PAPER_EXPERIMENTS[case.paper.experiment](case, compiled)
        checks.append(check)
    return {
        "case": _header(case),
        "paper": paper,
        "exact": truth.to_json(),
        "estimators": {name: report.to_json() for name, report in reports.items()},
        "checks": [asdict(check) for check in checks],
        "timings": {"seconds": time.perf_counter() - started, **compiled.seconds},
    }


def _header(case: Case) -> dict:
    """The case as the results file names and describes it."""
    return {
        "name": case.name,
        "path": case.path,
        "game": case.game.name,
        "policy": case.policy.name if case.policy else None,
        "theta": [np.asarray(part).tolist() for part in case.theta],
        **describe_case(case),
    }


def _meta_checks(case: Case, compiled, truth: dict) -> list:
    """The meta-gradients' oracle check, and the identity checks of the inner models asked for."""
    identities = {"expected": expected_identities, "sampled": sampled_identities}
    checks = [identities[model](case, compiled, truth) for model in case.inner.models]
    return [meta_oracles(case, compiled, truth), *checks]


def _versions() -> dict:
    return {
        "version": metadata.version("mapg-verify"),
        "symengine": symengine.__version__,
        "numpy": np.__version__,
        "compiler": DEFAULT_BACKEND,
    }


def _table(title: str, rows: list[tuple], header: tuple[str, ...]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
