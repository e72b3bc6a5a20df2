"""One case in, one record out: the pipeline every command runs, and the pool that runs many.

:func:`evaluate` computes the exact truth, runs the exact checks of
:data:`mapg_verify.checks.registry.CHECKS` for the case's inner models, then (with a seed)
each estimator's checks, calibration and power, and the paper's experiment; the result is a
:class:`~mapg_verify.results.CaseResult`. :func:`run_cases` runs many cases in a process pool, with progress, and
stops every worker on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from mapg_verify import console
from mapg_verify.checks.calibration import calibration, power
from mapg_verify.checks.derivatives import derivative_truth
from mapg_verify.checks.estimator import holm_family, verify_estimator
from mapg_verify.checks.registry import CHECKS, meta_checks
from mapg_verify.checks.result import CheckResult, overall
from mapg_verify.checks.sweep import shared
from mapg_verify.description import header
from mapg_verify.estimators.dispatch import expectations
from mapg_verify.exact.backend import case_values
from mapg_verify.exact.truths import Truths
from mapg_verify.paper import RUNS
from mapg_verify.progress import Progress
from mapg_verify.report import case_record
from mapg_verify.results import CaseResult, exact_truth, from_json, to_json
from mapg_verify.spec.case import Case

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


def evaluate_and_draw(case: Case, seed: int, progress: bool) -> tuple[CaseResult, dict]:
    """The case's result and its report record (:func:`drawn_with`), in the process that ran the case."""
    return drawn_with(evaluate_safely(case, seed, progress))


def drawn_with(result: CaseResult) -> tuple[CaseResult, dict]:
    """A result and its report record, drawn from the result as the results file holds it
    (:func:`mapg_verify.results.from_json` of its :func:`~mapg_verify.results.to_json`), so that
    ``report`` rebuilds the same page."""
    return result, case_record(from_json(to_json(result)))


def evaluate_safely(case: Case, seed: int | None, progress: bool, mpmath_gradients: bool = False) -> CaseResult:
    """:func:`evaluate`, with an unexpected error (or a figure JSON cannot hold) recorded as the
    case's failed check ``error`` (the other cases go on); an interruption still stops the run."""
    started = time.perf_counter()
    try:
        result = evaluate(case, mpmath_gradients=mpmath_gradients, seed=seed, progress=progress)
        to_json(result)  # a value JSON cannot hold fails this case, not the run
        return result
    except Exception as error:  # a bug in one case must not cost the others their results
        return failed(case, type(error).__name__, f"{type(error).__name__}: {error}", time.perf_counter() - started)


def failed(case: Case, kind: str, summary: str, seconds: float = 0.0) -> CaseResult:
    """The result of a case that could not be evaluated: no truth, one failed check ``error``."""
    check = CheckResult("error", False, {"type": kind}, summary)
    return CaseResult(header(case), None, {}, (check,), timings={"seconds": seconds})


def evaluate(case: Case, mpmath_gradients: bool = False, seed: int | None = None, progress: bool = False) -> CaseResult:
    """Everything computed for one case; with a ``seed``, the estimators' Monte-Carlo checks too
    (and calibration and power when the case asks for seeds)."""
    started = time.perf_counter()
    compiled = case_values(case)
    oracles = CHECKS["oracles"].run(case, compiled, mpmath_gradients=mpmath_gradients)
    truths = Truths(case, compiled)
    gradients = truths.models()
    found = expectations(case, compiled)
    truth = exact_truth(case, compiled, oracles, gradients, found)
    checks = [oracles, *meta_checks(case, compiled, truths)]
    reports = {}
    if seed is not None:
        bar = Progress(len(case.estimators.names), f"    {case.name}: estimators", delay=1.0 if progress else math.inf)
        context = shared(case, truths) if case.estimators.names else None
        for name in case.estimators.names:
            reports[name] = verify_estimator(
                case, compiled, truths, name, seed, found[0].get(name), found[1].get(name, ""), context
            )
            bar.advance(name)
        bar.close()
        reports = holm_family(reports, case.checks.level)
        checks.extend(check for report in reports.values() for check in report.checks)
        if case.checks.seeds:
            tick = _seed_ticker(case, progress)
            checks.append(calibration(case, compiled, seed, tick))
            if "meta-mapg" in case.estimators.names:
                checks.append(power(case, compiled, seed, tick))
    derivatives = None
    if case.derivatives:
        derivatives, found = derivative_truth(case, seed)
        checks.extend(found)
    paper = None
    if case.paper:
        paper, check = RUNS[case.paper.experiment](case, compiled)
        checks.append(check)
    timings = {"seconds": time.perf_counter() - started, **compiled.seconds}
    return CaseResult(header(case), truth, reports, tuple(checks), paper, derivatives, timings)


def _seed_ticker(case: Case, progress: bool):
    """A progress bar per estimator over calibration's and power's seeds (drawn when ``progress``)."""
    bars: dict[str, Progress] = {}

    def tick(name: str) -> None:
        label = f"    {case.name} / {name}"
        bar = bars.setdefault(name, Progress(case.checks.seeds, label, delay=1.0 if progress else math.inf))
        bar.advance()
        if bar.done == case.checks.seeds:
            bar.close()

    return tick


class Terminated(BaseException):
    """SIGTERM (a scheduler's or CI's stop) arrived: stop as on Ctrl-C, exit 143 (a
    ``BaseException``, as ``KeyboardInterrupt``: no case or plug-in handler takes it for a failure)."""


def terminate(signum, frame) -> None:
    """The SIGTERM handler: stop as on Ctrl-C (:class:`Terminated`)."""
    raise Terminated


def _worker(parent: int) -> None:
    """A pool worker: Ctrl-C is the parent's to handle (one message, not one per worker), and it
    ends within a second of its parent's death (a thread watching the parent's pid)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's stop ends a worker at once

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def run_cases(cases: list[Case], seed: int, jobs: int) -> tuple[list[CaseResult], list[dict]]:
    """Every case's result and report record, in order, over ``jobs`` processes; a progress line
    per finished case. Cases with plug-ins always run in worker processes, so that a plug-in that
    ends its process (``os._exit``, a crash) fails its own case, not the run: after a worker
    dies, the cases still to come run one process each, and the one whose process dies again
    fails with check ``error``. On an interruption every worker is stopped before the exception
    goes on."""
    jobs = min(jobs, len(cases))
    contained = jobs > 1 or any(":" in name for case in cases for name in case.estimators.names)
    # JAX's threads do not survive a fork: once a JAX plug-in has run in this process, workers are spawned
    context = multiprocessing.get_context("spawn" if "jax" in sys.modules else None)
    work = functools.partial(evaluate_and_draw, seed=seed, progress=jobs == 1)
    pools = []

    def pool(size: int) -> ProcessPoolExecutor:
        pools.append(ProcessPoolExecutor(size, mp_context=context, initializer=_worker, initargs=(os.getpid(),)))
        return pools[-1]

    bar = Progress(len(cases), "cases", delay=0.0)
    previous = signal.signal(signal.SIGTERM, terminate)  # SIGTERM stops the run as Ctrl-C does (exit 143)
    results, drawn, finished = [], [], False
    try:
        futures = [pool(jobs).submit(work, case) for case in cases] if contained else None
        for index, case in enumerate(cases):
            if futures is None:
                result, record = work(case)
            else:
                try:
                    result, record = futures[index].result()
                except BrokenProcessPool:
                    result, record = _alone(case, work, pool)
            verdict = console.VERDICT_TEXT[overall(c.verdict for c in result.checks)]
            bar.advance(f"{result.case['name']}: {verdict}")
            results.append(result)
            drawn.append(record)
        bar.close()
        finished = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        for executor in pools:  # on an interruption too: no worker is left running
            for process in [] if finished else list((getattr(executor, "_processes", None) or {}).values()):
                process.terminate()
            executor.shutdown(wait=True, cancel_futures=True)
    return results, drawn


def _alone(case: Case, work, pool) -> tuple[CaseResult, dict]:
    """``case`` in a process of its own, after a worker died: its result, or, if its process dies
    too, a failed check ``error`` naming the cause."""
    try:
        return pool(1).submit(work, case).result()
    except BrokenProcessPool:
        summary = "its worker process died (a plug-in that called os._exit, crashed or was killed)"
        return drawn_with(failed(case, "WorkerDied", summary))
