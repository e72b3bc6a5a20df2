"""Plug-in estimators: the documented example passes its checks and shows its fingerprint; plug-ins
that raise, return NaN or the wrong shape fail their own checks while the run goes on."""

import json
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
