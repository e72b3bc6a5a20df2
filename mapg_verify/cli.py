"""The command line (SPEC §8): ``list``, ``exact``, ``run``, ``campaign``, ``report``, ``audit``; ``main(argv) -> int``.

Exit codes: 0 all passed or inform (``audit``: consistent); 1 a check failed (``campaign``: README, "Campaigns";
``audit``: not consistent); 2 bad input (file, key, reason); 3 nothing failed but a claim is ``untested``;
130 Ctrl-C; 143 SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mapg_verify import audit, console, pipeline
from mapg_verify.campaign import CampaignError, load_spec
from mapg_verify.casefile.reader import load_case, load_cases
from mapg_verify.checks.result import exit_code
from mapg_verify.cluster import run_campaign
from mapg_verify.output import output_folder, publish, writable, write_atomic
from mapg_verify.problem.errors import InputError
from mapg_verify.report import rebuild, render
from mapg_verify.results import dumps, exact_document, results_document


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
    checked = commands.add_parser("audit", help="check a logged training run (LOG.npz) against the exact truth")
    checked.add_argument("case")
    checked.add_argument("log")
    checked.add_argument("--out", default="reports/audit", help="output folder (default: reports/audit)")
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
    previous = signal.signal(signal.SIGTERM, pipeline.terminate)  # one line and 143, whenever it comes
    try:
        commands = {"list": _list, "exact": _exact, "run": _run, "campaign": _campaign, "report": _report}
        commands["audit"] = lambda a: audit.run(a.case, a.log, a.out)
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
    finally:
        signal.signal(signal.SIGTERM, previous)


def _list(_: argparse.Namespace) -> int:
    console.catalogue()
    return 0


def _campaign(arguments: argparse.Namespace) -> int:
    spec, out, options = load_spec(arguments.spec), Path(arguments.out), vars(arguments)
    writable(out / "aggregate.json", "--out")
    try:
        result = run_campaign(spec, out, **{key: options[key] for key in ("scheduler", "workers", "resume")})
    except CampaignError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    console.campaign_summary(result)
    print(f"wrote {out / 'aggregate.json'} and {out / 'campaign.html'}")
    return result["exit"]["code"]


def _exact(arguments: argparse.Namespace) -> int:
    case = load_case(arguments.case)
    if arguments.json:
        writable(arguments.json, "--json")
    console.note_time([case], sampled=False)
    result = pipeline.evaluate_safely(case, None, False, mpmath_gradients=arguments.mpmath)
    console.exact_truth(case, result)
    if arguments.json:
        write_atomic(arguments.json, dumps(exact_document(result)))
        print(f"wrote {arguments.json}")
    return exit_code(check.verdict for check in result.checks)


def _run(arguments: argparse.Namespace) -> int:
    cases = load_cases(arguments.paths)  # all input is checked before anything runs
    out = Path(arguments.out)
    with output_folder(out, len(cases)):
        if arguments.quick:
            cases = [pipeline.quick(case) for case in cases]
        console.note_time(cases)  # after --quick: the budgets that will run
        started = time.perf_counter()
        results, drawn = pipeline.run_cases(cases, arguments.seed, arguments.jobs)
        console.summary(results)
        document = results_document(results, arguments.seed, arguments.quick, time.perf_counter() - started)
        publish(out, {"results.json": dumps(document), "index.html": render(document, drawn)})  # as `report` draws
    print(f"wrote {out / 'results.json'} and {out / 'index.html'}")
    return exit_code(c.verdict for result in results for c in result.checks)


def _report(arguments: argparse.Namespace) -> int:
    print(f"wrote {rebuild(Path(arguments.results), arguments.out)}")
    return 0
