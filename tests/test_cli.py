"""The command line: exit codes, messages naming file and key, the exact JSON."""

import json
import subprocess
import sys
from pathlib import Path

import autograd
import numpy as np
import pytest

from mapg_verify.cli import main
from mapg_verify.oracles.autodiff import autograd_meta_objective, autograd_values

ROOT = Path(__file__).resolve().parents[1]

INLINE = """
[game]
transitions = [[[[1.0], [1.0]], [[1.0], [1.0]]]]
rewards = [[[[-1, -3], [0, -2]]], [[[-1, 0], [-3, -2]]]]
initial = [1.0]
gamma = 1.0
horizon = 1
[policy]
kind = "sigmoid"
[params]
theta = [[0.3], [-0.2]]
"""


def write(tmp_path: Path, text: str, name: str = "case.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


BAD_INPUTS = [
    ("malformed", "[game\nbuiltin = 1", "[file] is not valid TOML"),
    ("unknown game", '[game]\nbuiltin = "poker"', "[game.builtin] unknown game 'poker'"),
    ("unknown top key", '[game]\nbuiltin = "ipd"\n[extra]\na = 1', "[extra] is not a known key"),
    ("unknown section key", '[game]\nbuiltin = "ipd"\n[inner]\nstep = 1', "[inner.step] is not a known key"),
    ("unknown game option", '[game]\nbuiltin = "ipd"\nnoise = 1', "[game.noise] is not an option"),
    ("theta shape", INLINE.replace("[[0.3], [-0.2]]", "[[0.3, 1.0], [-0.2]]"), "[params.theta] agent 0"),
    (
        "row sum",
        INLINE.replace("[[[[1.0], [1.0]], [[1.0], [1.0]]]]", "[[[[0.5], [1.0]], [[1.0], [1.0]]]]"),
        "[game.transitions] row at (state, actions) (0, 0, 0) sums to 0.5",
    ),
    (
        "negative",
        INLINE.replace("[[[[1.0], [1.0]], [[1.0], [1.0]]]]", "[[[[-1.0], [1.0]], [[1.0], [1.0]]]]"),
        "[game.transitions] negative probability",
    ),
    ("nan reward", INLINE.replace("[[[[-1, -3]", "[[[[nan, -3]"), "[game.rewards] must hold finite numbers"),
    ("inf reward", INLINE.replace("[[[[-1, -3]", "[[[[inf, -3]"), "[game.rewards] must hold finite numbers"),
    (
        "gamma with infinite horizon",
        INLINE.replace("horizon = 1", 'horizon = "inf"'),
        "[game.gamma] must be < 1 with an infinite horizon",
    ),
    ("random gamma", '[game]\nbuiltin = "random"\ngamma = 1.0', "[game.gamma] must be < 1"),
    (
        "sigmoid needs two actions",
        '[game]\nbuiltin = "random"\nactions = [3, 2]\n[policy]\nkind = "sigmoid"',
        "[policy.kind] sigmoid needs two actions",
    ),
    ("unknown policy", '[game]\nbuiltin = "ipd"\n[policy]\nkind = "gaussian"', "[policy.kind] unknown policy"),
    (
        "unknown estimator",
        '[game]\nbuiltin = "ipd"\n[estimators]\nnames = ["reinforce++"]',
        "[estimators.names] unknown estimator 'reinforce++'",
    ),
    (
        "plug-in import",
        '[game]\nbuiltin = "ipd"\n[estimators]\nnames = ["no_such_module:estimate"]',
        "[estimators.names] plug-in 'no_such_module:estimate' cannot be imported",
    ),
    (
        "plug-in named as JAX's namespace",
        '[game]\nbuiltin = "ipd"\n[estimators]\nnames = ["jax:jax_plugins:estimate"]',
        "[estimators.names] plug-in 'jax:jax_plugins:estimate': 'jax_plugins' is the namespace JAX imports",
    ),
    ("bad level", '[game]\nbuiltin = "ipd"\n[checks]\nlevel = 1.5', "[checks.level] must be in (0, 1)"),
    ("model S needs a horizon", '[game]\nbuiltin = "ipd"\n[inner]\nmodel = "sampled"', "[inner.horizon]"),
    ("meta agent", '[game]\nbuiltin = "ipd"\n[inner]\nmeta_agent = 2', "[inner.meta_agent]"),
    ("alpha length", '[game]\nbuiltin = "ipd"\n[inner]\nalpha = [1.0]', "[inner.alpha]"),
    ("policy on a differentiable game", '[game]\nbuiltin = "bilinear"\n[policy]\nkind = "softmax"', "[policy]"),
    ("missing game", 'name = "x"', "[game] is required"),
    (
        "estimators on a differentiable game",
        '[game]\nbuiltin = "bilinear"\n[estimators]\nnames = ["naive"]',
        "[estimators.names] estimators sample trajectories",
    ),
    (
        "estimators need a trajectory length",
        '[game]\nbuiltin = "ipd"\n[estimators]\nnames = ["naive"]',
        "[inner.horizon] estimators sample trajectories",
    ),
    (
        "timestep pairing with an exact outer term",
        INLINE + '[estimators]\nnames = ["meta-mapg"]\nouter = "exact"\npairing = "timestep"',
        "[estimators.pairing] timestep pairing needs outer trajectories",
    ),
    (
        "paired outer batch of another size",
        INLINE + '[estimators]\nnames = ["meta-mapg"]\npairing = "trajectory"\nouter_batch = 5',
        "[estimators.outer_batch] trajectory pairing matches inner trajectory b",
    ),
    ("one sample", INLINE + "[estimators]\nsamples = 1", "[estimators.samples] must be at least 2"),
    ("negative seeds", INLINE + "[checks]\nseeds = -3", "[checks.seeds] must be a positive integer"),
    ("relative error", INLINE + "[checks]\nrelative_error = 2", "[checks.relative_error] must be in (0, 1)"),
]


@pytest.mark.parametrize(("label", "text", "message"), BAD_INPUTS, ids=[row[0] for row in BAD_INPUTS])
def test_bad_input_exits_2_naming_file_and_key(tmp_path, capsys, label, text, message):
    path = write(tmp_path, text)
    out = tmp_path / "out.json"
    assert main(["exact", str(path), "--json", str(out)]) == 2
    error = capsys.readouterr().err
    assert f"{path}: " in error
    assert message in error
    assert not out.exists()
    assert "Traceback" not in error


def test_missing_file_exits_2(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_empty_folder_exits_2(tmp_path, capsys):
    assert main(["run", str(tmp_path)]) == 2
    assert "no case files" in capsys.readouterr().err


def test_exact_json_agrees_with_autograd(tmp_path):
    out = tmp_path / "ipd.json"
    assert main(["exact", str(ROOT / "cases" / "ipd.toml"), "--json", str(out)]) == 0
    document = json.loads(out.read_text())
    theta = np.concatenate([np.ravel(part) for part in document["case"]["theta"]])
    from mapg_verify.problem.catalog import ipd
    from mapg_verify.problem.policies import POLICIES

    reference = autograd_values(ipd(), POLICIES["sigmoid"], theta)
    np.testing.assert_allclose(document["values"], reference, rtol=1e-12)
    np.testing.assert_allclose(document["per_step"], 0.04 * reference, rtol=1e-12)
    assert document["oracles"]["passed"]
    assert set(document["truth"]["expected"]) == {"total", "current", "own", "peer"}
    assert set(document["truth"]) == {"expected", "sampled"} and not document["skipped"]
    meta = autograd_meta_objective(ipd(), POLICIES["sigmoid"], theta, (1.0, 1.0), 1, 0, "terminal")
    np.testing.assert_allclose(document["truth"]["expected"]["total"], autograd.grad(meta)(theta[:5]), rtol=1e-8)


def test_exact_json_has_each_estimators_expectation(tmp_path):
    out = tmp_path / "pd.json"
    assert main(["exact", str(ROOT / "cases" / "pd.toml"), "--json", str(out)]) == 0
    document = json.loads(out.read_text())
    assert set(document["estimators"]) == {
        "meta-mapg",
        "meta-pg",
        "opponent-only",
        "lola-dice",
        "naive",
        "sampled-exact",
        "expected-update",
    }
    exact = document["estimators"]["sampled-exact"]
    assert exact["expectation"] == pytest.approx(document["truth"]["sampled"]["total"], rel=1e-12)
    assert set(exact) == {"expectation", "current", "own", "peer"}


def test_exact_inline_one_shot(tmp_path):
    out = tmp_path / "pd.json"
    assert main(["exact", str(write(tmp_path, INLINE)), "--json", str(out)]) == 0
    values = json.loads(out.read_text())["values"]
    p, q = 1 / (1 + np.exp(-0.3)), 1 / (1 + np.exp(0.2))  # each agent's probability of C
    expected0 = -1 * p * q - 3 * p * (1 - q) + 0 * (1 - p) * q - 2 * (1 - p) * (1 - q)
    assert values[0] == pytest.approx(expected0, rel=1e-14)


def test_run_writes_results_and_summary(tmp_path, capsys):
    folder = tmp_path / "cases"
    folder.mkdir()
    write(folder, INLINE, "pd.toml")
    write(folder, '[game]\nbuiltin = "bilinear"\n[params]\ntheta = [[1.0], [2.0]]', "bilinear.toml")
    assert main(["run", str(folder), "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "summary" in captured.out and "cases: 2/2" in captured.err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [case["case"]["name"] for case in results["cases"]] == ["bilinear", "pd"]
    assert "timings" in results and all("timings" not in case for case in results["cases"])


def test_run_is_deterministic_apart_from_timings(tmp_path):
    documents = []
    for name in ("first", "second"):
        assert main(["run", str(ROOT / "cases" / "pd.toml"), "--out", str(tmp_path / name)]) == 0
        document = json.loads((tmp_path / name / "results.json").read_text())
        document.pop("timings")
        documents.append(document)
    assert documents[0] == documents[1]


def test_bad_case_among_good_ones_stops_before_anything_is_written(tmp_path):
    folder = tmp_path / "cases"
    folder.mkdir()
    write(folder, INLINE, "a.toml")
    write(folder, '[game]\nbuiltin = "poker"', "b.toml")
    assert main(["run", str(folder), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_list_prints_every_registry(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("ipd", "noisy_ipd", "softmax", "sigmoid", "meta-mapg", "oracles"):
        assert word in out


def test_module_entry_point_exit_code_and_no_traceback(tmp_path):
    path = write(tmp_path, '[game]\nbuiltin = "poker"')
    completed = subprocess.run(
        [sys.executable, "-m", "mapg_verify", "exact", str(path)], capture_output=True, text=True, cwd=ROOT
    )
    assert completed.returncode == 2
    assert completed.stderr.startswith("error: ") and "Traceback" not in completed.stderr


def test_run_with_two_jobs_matches_one(tmp_path):
    outputs = []
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        args = ["run", str(ROOT / "cases" / "pd.toml"), str(ROOT / "cases" / "bilinear.toml")]
        assert main([*args, "--out", str(out), "--jobs", str(jobs)]) == 0
        document = json.loads((out / "results.json").read_text())
        document.pop("timings")
        outputs.append(document)
    assert outputs[0] == outputs[1]
