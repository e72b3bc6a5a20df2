"""The time estimate ``run`` prints before a case (``mapg_verify/casefile/duration.py``): one line for a
case estimated above a minute, none for a small one, from the budgets that will run. Only the cost
model runs here: nothing is compiled or drawn."""

import dataclasses
from pathlib import Path

from mapg_verify.casefile.duration import NOTE_SECONDS, estimate
from mapg_verify.casefile.reader import load_case, load_cases
from mapg_verify.console import note_time
from mapg_verify.pipeline import quick

ROOT = Path(__file__).resolve().parents[1]
POWER = ROOT / "experiments" / "power_ipd.toml"  # 100 seeds of calibration and power: 93 s measured


def test_a_case_estimated_above_a_minute_says_so_before_it_starts(capsys):
    case = load_case(POWER)
    found = estimate(case)
    assert found.seconds > NOTE_SECONDS
    assert "8,840,000 Monte-Carlo estimates" in found.parts[0][0]  # 7 x 20,000 + 7 x 100 x 1,000 + 4 x 100 x 20,000
    note_time([case])
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("case power-ipd-2-steps: about ")
    assert " min (estimated from 8,840,000 Monte-Carlo estimates ~" in lines[0]


def test_a_small_case_prints_nothing(capsys):
    case = load_case(ROOT / "cases" / "pd.toml")
    assert estimate(case).seconds < NOTE_SECONDS
    note_time([case])
    assert capsys.readouterr().err == ""


def test_the_estimate_follows_the_budgets_that_will_run(capsys):
    """--quick turns calibration and power off, and the estimate drops below a minute with them;
    `exact` draws nothing, so its estimate has no Monte-Carlo part."""
    case = load_case(POWER)
    assert estimate(quick(case)).seconds < NOTE_SECONDS
    note_time([quick(case)])
    assert capsys.readouterr().err == ""
    exact = estimate(case, sampled=False)
    assert exact.seconds < NOTE_SECONDS and not any("Monte-Carlo" in what for what, _ in exact.parts)
    fewer = dataclasses.replace(case, checks=dataclasses.replace(case.checks, seeds=10))
    assert 5 < estimate(case).seconds / estimate(fewer).seconds < 10  # power's draws dominate, linear in the seeds


def test_the_long_studies_are_estimated_long_and_the_cases_short():
    """The third-order MDP (1,125 s measured at a load of 3) is estimated at several minutes, its derivative
    draws the largest part; every case in cases/ is estimated under a minute (run cases stays short)."""
    order_three = estimate(load_case(ROOT / "experiments" / "derivatives" / "loaded_dice_mdp_order3.toml"))
    assert 5 * 60 < order_three.seconds < 30 * 60
    assert "derivative estimators x 86,400 sampled trajectories" in order_three.parts[0][0]
    slow = {case.name: estimate(case).seconds for case in load_cases([str(ROOT / "cases")])}
    assert not {name: seconds for name, seconds in slow.items() if seconds > NOTE_SECONDS}


def test_a_long_compile_is_said_as_before(tmp_path, capsys):
    """The closed forms' compile estimate (what `exact` and `run` said before) is one of the parts."""
    path = tmp_path / "dense.toml"
    path.write_text('[game]\nbuiltin = "random"\nstates = 8\nactions = [2, 2]\nseed = 1\nbackend = "symbolic"\n')
    note_time([load_case(path)], sampled=False)
    line = capsys.readouterr().err
    assert line.startswith("case dense: about ") and "(estimated from compiling the closed forms ~" in line
