"""Plug-in estimators: the documented example passes its checks and shows its fingerprint; plug-ins
that raise, return NaN or the wrong shape fail their own checks while the run goes on."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mapg_verify.cli import main

ROOT = Path(__file__).resolve().parents[1]

CASE = """
[game]
builtin = "prisoners_dilemma"
[policy]
kind = "sigmoid"
[params]
theta = [[0.3], [-0.2]]
[inner]
model = ["expected", "sampled"]
batch = 2
[estimators]
names = ["{plugin}", "sampled-exact"]
samples = 500
"""


def run_case(tmp_path: Path, plugin: str) -> tuple[int, dict]:
    path = tmp_path / "case.toml"
    path.write_text(CASE.format(plugin=plugin))
    code = main(["run", str(path), "--out", str(tmp_path / "out")])
    return code, json.loads((tmp_path / "out" / "results.json").read_text())["cases"][0]


def test_worked_example_passes_and_shows_only_the_adapted_gradient(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["run", "cases/plugin.toml", "--out", str(tmp_path)]) == 0
    case = json.loads((tmp_path / "results.json").read_text())["cases"][0]
    report = case["estimators"]["examples.adapted_gradient:adapted_gradient"]
    fingerprint = next(c for c in report["checks"] if c["name"].startswith("fingerprint"))["figures"]
    assert fingerprint["coefficient adapted"] == pytest.approx(1.0, abs=1e-9)
    for term in ("current", "own-pathwise", "own-dice", "peer"):
        assert fingerprint[f"coefficient {term}"] == pytest.approx(0.0, abs=1e-9)
    assert case["exact"]["estimators"]["examples.adapted_gradient:adapted_gradient"]["expectation"]


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        ("plugins_for_tests:raises", "raised RuntimeError: this estimator is broken"),
        ("plugins_for_tests:returns_nan", "non-finite"),
        ("plugins_for_tests:wrong_shape", "returned shape (7,), expected (1,)"),
        ("plugins_for_tests:biased_sometimes", "non-finite"),
        ("plugins_for_tests:exits", "called sys.exit(0)"),
        ("plugins_for_tests:interrupts", "raised KeyboardInterrupt itself"),
    ],
)
def test_misbehaving_plugin_fails_its_own_checks_and_the_run_goes_on(tmp_path, plugin, message):
    code, case = run_case(tmp_path, plugin)
    assert code == 1
    failed = [c for c in case["checks"] if not c["passed"]]
    assert failed and all(plugin in c["name"] for c in failed)
    assert any(message in c["summary"] for c in failed)
    assert all(c["passed"] for c in case["estimators"]["sampled-exact"]["checks"])
    assert f"estimators.{plugin}" in case["exact"]["skipped"]


def test_a_hanging_plugin_is_stopped_by_its_timeout(tmp_path):
    path = tmp_path / "case.toml"
    path.write_text(CASE.format(plugin="plugins_for_tests:hangs") + "plugin_timeout = 0.5\n")
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 1
    case = json.loads((tmp_path / "out" / "results.json").read_text())["cases"][0]
    failed = [c["summary"] for c in case["checks"] if c["verdict"] == "fail"]
    assert failed and all("did not return within 0.5 s ([estimators] plugin_timeout)" in text for text in failed)


def test_a_plugin_that_exits_in_a_worker_fails_its_estimator_and_the_other_case_stands(tmp_path):
    """Two processes: the run neither hangs nor ends green; the plug-in's case fails, the other passes."""
    exiting, plain = tmp_path / "a.toml", tmp_path / "b.toml"
    exiting.write_text('name = "exits"\n' + CASE.format(plugin="plugins_for_tests:exits"))
    plain.write_text('name = "plain"\n' + CASE.format(plugin="sampled-exact").replace(', "sampled-exact"]', "]"))
    command = [sys.executable, "-m", "mapg_verify", "run", str(exiting), str(plain), "--out", str(tmp_path / "out")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
    done = subprocess.run([*command, "--jobs", "2"], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 1, done.stderr
    cases = {c["case"]["name"]: c for c in json.loads((tmp_path / "out" / "results.json").read_text())["cases"]}
    assert any("called sys.exit(0)" in c["summary"] for c in cases["exits"]["checks"] if c["verdict"] == "fail")
    assert all(c["verdict"] in ("pass", "info") for c in cases["plain"]["checks"])
