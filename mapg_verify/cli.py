"""The command line (SPEC §8): ``list``, ``exact``, ``run``, ``report``; ``main(argv) -> int``.

Exit codes: 0 no check failed (each passed or informs), 1 a check failed, 2 bad input (one line naming
the file, the key and the reason), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mapg_verify import console, pipeline
from mapg_verify.campaign import load_spec
from mapg_verify.casefile.reader import load_case, load_cases
from mapg_verify.cluster import run_campaign
from mapg_verify.problem.errors import InputError
from mapg_verify.report import render
from mapg_verify.results import dumps, load_results, results_document, writable, write_atomic


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
    jobs_help = "cases run in parallel processes (default: one per core)"
    run.add_argument("--jobs", type=_count(1), default=os.cpu_count() or 1, help=jobs_help)
    run.add_argument("--seed", type=_count(0), default=0, help="seed of every Monte-Carlo draw (default 0)")
    quick_help = "a first look: a tenth of the samples, no calibration or power"
    run.add_argument("--quick", action="store_true", help=quick_help)
    campaign = commands.add_parser("campaign", help="verify estimators over many generated games, on Dask")
    campaign.add_argument("spec")
    campaign.add_argument("--out", default="reports/campaign", help="output folder (default: reports/campaign)")
    campaign.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler (default: a local cluster)")
    campaign.add_argument("--workers", type=_count(1), help="local workers (default: one per core)")
    campaign.add_argument("--resume", action="store_true", help="finish the campaign already in --out")
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


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        commands = {"list": _list, "exact": _exact, "run": _run, "campaign": _campaign, "report": _report}
        return commands[arguments.command](arguments)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except pipeline.Terminated:
        print("terminated", file=sys.stderr)
        return 143


def _list(_: argparse.Namespace) -> int:
    console.catalogue()
    return 0


def _campaign(arguments: argparse.Namespace) -> int:
    spec = load_spec(arguments.spec)
    out = Path(arguments.out)
    writable(out / "aggregate.json", "--out")
    result = run_campaign(spec, out, scheduler=arguments.scheduler, workers=arguments.workers, resume=arguments.resume)
    console.campaign_summary(result)
    print(f"wrote {out / 'aggregate.json'} and {out / 'campaign.html'}")
    return 1 if result["failures"] else 0


def _exact(arguments: argparse.Namespace) -> int:
    case = load_case(arguments.case)
    if arguments.json:
        writable(arguments.json, "--json")
    console.note_time([case], sampled=False)
    document = pipeline.evaluate_safely(case, None, False, mpmath_gradients=arguments.mpmath)
    console.exact_truth(case, document)
    if arguments.json:
        derivatives = {key: document[key] for key in ("derivatives",) if key in document}
        exact = {**document["exact"], **derivatives, "case": document["case"], "checks": document["checks"]}
        write_atomic(arguments.json, dumps(exact))
        print(f"wrote {arguments.json}")
    return 0 if all(check["passed"] for check in document["checks"]) else 1


def _run(arguments: argparse.Namespace) -> int:
    cases = load_cases(arguments.paths)  # all input is checked before anything runs
    target = Path(arguments.out) / "results.json"
    writable(target, "--out")
    writable(target.with_name("index.html"), "--out")
    if arguments.quick:
        cases = [pipeline.quick(case) for case in cases]
    console.note_time(cases)  # after --quick: the budgets that will run
    started = time.perf_counter()
    documents, drawn = pipeline.run_cases(cases, arguments.seed, arguments.jobs)
    console.summary(documents)
    text = dumps(results_document(documents, arguments.seed, arguments.quick, time.perf_counter() - started))
    page = render(json.loads(text), drawn)  # from the file's content, as `report` does
    write_atomic(target, text)
    write_atomic(target.with_name("index.html"), page)
    print(f"wrote {target} and {target.with_name('index.html')}")
    return 0 if all(c["passed"] for d in documents for c in d["checks"]) else 1


def _report(arguments: argparse.Namespace) -> int:
    source = Path(arguments.results)
    results = load_results(source)
    target = Path(arguments.out or source.parent) / "index.html"
    writable(target, "--out")
    try:
        page = render(results)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        reason = f"is not a results file written by run ({type(error).__name__}: {error})"
        raise InputError("cases", reason, str(source)) from None
    write_atomic(target, page)
    print(f"wrote {target}")
    return 0
