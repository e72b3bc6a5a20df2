"""Bad input, found by trying: every probe exits 2 with one line naming the file, the key and the
reason, no traceback, nothing written; and signals leave no process behind."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli import INLINE, ROOT, write

from mapg_verify.cli import main

TWO_STATES = """
[game]
transitions = [[[[0.5, 0.5], [0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]]],
               [[[0.5, 0.5], [0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]]]]
rewards = [[[[-1, -3], [0, -2]], [[-1, -3], [0, -2]]], [[[-1, 0], [-3, -2]], [[-1, 0], [-3, -2]]]]
initial = [0.5, 0.5]
gamma = 1.0
horizon = 1
[params]
theta = [[[0.3, 0.1], [0.2, 0.0]], [[-0.2, 0.2], [0.1, 0.4]]]
"""
RANDOM = '[game]\nbuiltin = "random"\n'
IPD = '[game]\nbuiltin = "ipd"\n'
ESTIMATE = INLINE + '[estimators]\nnames = ["meta-mapg"]\n'
DERIVATIVES = INLINE + "[derivatives]\n"
DIFFERENTIATED = DERIVATIVES + 'estimators = ["dice"]\n'

PROBES = [
    (
        "initial not summing to 1",
        INLINE.replace("initial = [1.0]", "initial = [0.7]"),
        "[game.initial] the distribution sums to 0.7",
    ),
    ("initial over two states", TWO_STATES.replace("initial = [0.5, 0.5]", "initial = [0.7, 2]"), "[game.initial]"),
    ("float views", INLINE.replace("horizon = 1", "horizon = 1\nviews = [[0.7], [0]]"), "[game.views]"),
    ("unknown backend", IPD + 'backend = "fast"\n', "[game.backend] must be one of auto, symbolic, numeric"),
    (
        "numeric backend on a differentiable game",
        '[game]\nbuiltin = "bilinear"\nbackend = "numeric"\n',
        "[game.backend] numeric needs a tabular game",
    ),
    ("string views", INLINE.replace("horizon = 1", 'horizon = 1\nviews = [["a"], ["b"]]'), "[game.views]"),
    ("ragged views", TWO_STATES.replace("horizon = 1", "horizon = 1\nviews = [[0, 1], [0]]"), "[game.views]"),
    ("random with one agent", RANDOM + "actions = [2]", "[game.actions] must list two or more agents"),
    ("random with no agent", RANDOM + "actions = []", "[game.actions]"),
    ("random actions an int", RANDOM + "actions = 5", "[game.actions]"),
    ("random actions a bool", RANDOM + "actions = [true, 2]", "[game.actions]"),
    ("inline actions an int", INLINE.replace("horizon = 1", "horizon = 1\nactions = 5"), "[game.actions]"),
    ("inline name a number", INLINE.replace("horizon = 1", "horizon = 1\nname = 7"), "[game.name]"),
    (
        "one-agent rewards",
        INLINE.replace("rewards = [[[[-1, -3], [0, -2]]], [[[-1, 0], [-3, -2]]]]", "rewards = [[[-1, -3]]]"),
        "[game.rewards]",
    ),
    (
        "figure 1 off the bilinear game",
        '[game]\nbuiltin = "prisoners_dilemma"\n[paper]\nexperiment = "figure-1"',
        "[paper.experiment]",
    ),
    ("figure 3 off the noisy IPD", IPD + '[paper]\nexperiment = "figure-3"', "[paper.experiment]"),
    ("table 1 without estimators", INLINE + '[paper]\nexperiment = "table-1"', "[paper.experiment]"),
    ("float meta agent", IPD + "[inner]\nmeta_agent = 1.0", "[inner.meta_agent]"),
    ("policy kind a list", IPD + '[policy]\nkind = ["softmax"]', "[policy.kind]"),
    (
        "empty plug-in module",
        INLINE + '[estimators]\nnames = [":f"]',
        "[estimators.names] plug-in ':f' must be [jax:|torch:]module:function",
    ),
    ("relative plug-in module", INLINE + '[estimators]\nnames = [".mod:f"]', "[estimators.names]"),
    ("plug-in syntax error", INLINE + '[estimators]\nnames = ["probe_syntax:f"]', "raised SyntaxError"),
    ("plug-in raising at import", INLINE + '[estimators]\nnames = ["probe_raising:f"]', "raised RuntimeError: boom"),
    (
        "plug-in with an exact outer term",
        INLINE + '[estimators]\nnames = ["probe_zero:f"]\nouter = "exact"',
        "[estimators.outer]",
    ),
    ("infinite noise", '[game]\nbuiltin = "noisy_ipd"\nnoise = inf', "[game.noise]"),
    ("nan noise", '[game]\nbuiltin = "noisy_ipd"\nnoise = nan', "[game.noise]"),
    ("huge random game", RANDOM + "states = 100000", "[game.states]"),
    ("infinite reward scale", RANDOM + "reward_scale = inf", "[game.reward_scale]"),
    (
        "huge theta",
        INLINE.replace("[[0.3], [-0.2]]", "[[1e308], [0.1]]"),
        "[params.theta] agent 0: every parameter must be finite",
    ),
    ("huge scale", IPD + "[params]\nscale = 1e300", "[params.scale]"),
    ("huge rate", INLINE + "[inner]\nalpha = 1e6", "[inner.alpha] inner step 1 takes the parameters to"),
    (
        "closed forms too large",
        RANDOM + 'states = 8\nactions = [3, 3]\nbackend = "symbolic"',
        "[game] its closed forms would take about",
    ),
    ("too many steps", INLINE + "[inner]\nsteps = 100000", "[inner.steps] is 100,000, above the limit"),
    ("too many samples", ESTIMATE + "samples = 1000000000", "[estimators.samples]"),
    (
        "over the Monte-Carlo budget",
        ESTIMATE + "samples = 9000000\nouter_batch = 5000",
        "[estimators.samples] the case would sample",
    ),
    (
        "too many iterations",
        '[game]\nbuiltin = "bilinear"\n[paper]\nexperiment = "figure-1"\niterations = 1000000000000',
        "[paper.iterations]",
    ),
    ("too many seeds", ESTIMATE + "[checks]\nseeds = 1000000", "[checks.seeds]"),
    ("unknown return convention", ESTIMATE + 'returns = "from-one"', "[estimators.returns]"),
    ("unknown baseline", ESTIMATE + 'baseline = "critic"', "[estimators.baseline]"),
    ("gae lambda above 1", ESTIMATE + "gae_lambda = 1.5", "[estimators.gae_lambda]"),
    ("dice lambda a string", ESTIMATE + 'dice_lambda = "half"', "[estimators.dice_lambda]"),
    ("unknown name option", ESTIMATE.replace('"meta-mapg"', '"meta-mapg[lambda=0.9]"'), "[estimators.names]"),
    ("bad name option value", ESTIMATE.replace('"meta-mapg"', '"loaded-dice[baseline=q]"'), "[estimators.names"),
    ("derivative order 4", DERIVATIVES + "order = 4", "[derivatives.order] must be 1, 2 or 3"),
    ("derivative of no agent", DERIVATIVES + "of = 2", "[derivatives.of] must be an agent, 0 to 1"),
    ("derivative horizon 0", DERIVATIVES + "horizon = 0", "[derivatives.horizon]"),
    ("derivative horizon 101", DERIVATIVES + "horizon = 101", "[derivatives.horizon] must be at most 100"),
    ("derivative unknown key", DERIVATIVES + "batchs = [64]", "[derivatives.batchs]"),
    ("derivative batches not a list", DIFFERENTIATED + "batches = 64", "[derivatives.batches] must be a list"),
    ("derivative batch of 0", DIFFERENTIATED + "batches = [0, 64]", "[derivatives.batches] must be a list"),
    ("derivative batches, no estimator", DERIVATIVES + "batches = [64]", "[derivatives.batches] the correlation"),
    ("derivative one repeat", DIFFERENTIATED + "repeats = 1", "[derivatives.repeats] an interval over seeds"),
    ("derivative curve too costly", DIFFERENTIATED + "batches = [100000]\nrepeats = 101", "above 10,000,000"),
    ("unknown derivative estimator", DERIVATIVES + 'estimators = ["magic"]', "[derivatives.estimators] must be a list"),
    ("derivative samples 0", DERIVATIVES + "samples = 0", "[derivatives.samples]"),
    ("derivative samples 1", DIFFERENTIATED + "samples = 1", "[derivatives.samples] must be at least 2"),
    (
        "nested derivative estimators",
        DERIVATIVES + 'estimators = [["dice"]]',
        "[derivatives.estimators] must be a list",
    ),
    ("derivative estimator twice", DERIVATIVES + 'estimators = ["dice", "dice"]', "lists an estimator twice"),
    (
        "estimator listed twice",
        INLINE + '[estimators]\nnames = ["meta-mapg", "meta-mapg"]',
        "[estimators.names] lists 'meta-mapg' twice",
    ),
    (
        "an option given twice",
        INLINE + '[estimators]\nnames = ["meta-mapg[baseline=value, baseline=none]"]',
        "option 'baseline' is given twice",
    ),
    (
        "gae_lambda as a string",
        INLINE + '[estimators]\nnames = ["meta-mapg"]\ngae_lambda = "0.5"',
        "[estimators.gae_lambda]",
    ),
    (
        "plugin_timeout of 0",
        INLINE + '[estimators]\nnames = ["meta-mapg"]\nplugin_timeout = 0',
        "[estimators.plugin_timeout]",
    ),
    ("derivative lambda 1.5", DERIVATIVES + "dice_lambda = 1.5", "[derivatives.dice_lambda] must be in [0, 1]"),
    (
        "derivative estimators on an infinite game",
        IPD + '[derivatives]\nestimators = ["dice"]',
        "[derivatives.horizon] the estimators need trajectories of a finite horizon",
    ),
    (
        "derivative too large to build",
        RANDOM + 'states = 5\nactions = [4, 4]\n[policy]\nkind = "softmax"\n[derivatives]\norder = 3',
        "distinct entries, above the 3,000 built symbolically",
    ),
    (
        "paper meta-gradient unknown",
        '[game]\nbuiltin = "noisy_ipd"\n[paper]\nexperiment = "figure-3"\nmeta_gradient = "x"',
        "[paper.meta_gradient]",
    ),
]


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    (tmp_path / "probe_syntax.py").write_text("def f(:\n")
    (tmp_path / "probe_raising.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "probe_zero.py").write_text("def f(inner, outer, theta, settings):\n    return 0 * theta[0]\n")
    return tmp_path


@pytest.mark.parametrize(("label", "text", "message"), PROBES, ids=[row[0] for row in PROBES])
def test_bad_case_exits_2_with_file_key_and_reason(plugins, capsys, label, text, message):
    path = write(plugins, text)
    out = plugins / "out.json"
    assert main(["exact", str(path), "--json", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {path}: ["), error
    assert message in error
    assert len(error.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    "content", [b"\xff\xfe[\x00g\x00a\x00m\x00e\x00]", bytes(range(256))], ids=["utf-16", "binary"]
)
def test_a_file_that_is_not_utf8_exits_2(tmp_path, capsys, content):
    path = tmp_path / "case.toml"
    path.write_bytes(content)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert f"{path}: [file] is not UTF-8 text" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--jobs", "0"], ["--jobs", "-3"], ["--jobs", "two"], ["--seed", "-1"]])
def test_bad_options_exit_2_before_running(tmp_path, capsys, option):
    with pytest.raises(SystemExit) as stop:
        main(["run", str(ROOT / "cases" / "pd.toml"), "--out", str(tmp_path), *option])
    assert stop.value.code == 2
    assert f"argument {option[0]}: must be" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["run", "CASE", "--out", "FILE"], "[--out] cannot be written: FILE is a file"),
        (["run", "CASE", "--out", "/dev/null/x"], "[--out] cannot be written: /dev/null is a file"),
        (["exact", "CASE", "--json", "DIR"], "[--json] names a folder"),
        (["report", "RESULTS", "--out", "FILE"], "[--out] cannot be written: FILE is a file"),
    ],
)
def test_outputs_are_checked_before_anything_runs(tmp_path, capsys, monkeypatch, command, message):
    from mapg_verify import pipeline

    monkeypatch.setattr(pipeline, "evaluate", lambda *a, **k: pytest.fail("ran before checking the output"))
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"cases": []}))
    (tmp_path / "FILE").write_text("keep")
    names = {"CASE": str(ROOT / "cases" / "pd.toml"), "FILE": str(tmp_path / "FILE"), "DIR": str(tmp_path)}
    names["RESULTS"] = str(results)
    assert main([names.get(word, word) for word in command]) == 2
    assert message.replace("FILE", str(tmp_path / "FILE")) in capsys.readouterr().err
    assert (tmp_path / "FILE").read_text() == "keep"


def test_duplicate_case_names_exit_2(tmp_path, capsys):
    first = write(tmp_path, INLINE, "a.toml")
    second = write(tmp_path, INLINE.replace("[game]", 'name = "a"\n[game]'), "b.toml")
    assert main(["run", str(first), str(second), "--out", str(tmp_path / "out")]) == 2
    assert "[name] 'a' is also the name of" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_folder_named_like_a_case_is_ignored(tmp_path):
    (tmp_path / "cases" / "sub.toml").mkdir(parents=True)
    write(tmp_path / "cases", INLINE)
    assert main(["run", str(tmp_path / "cases"), "--out", str(tmp_path / "out"), "--quick", "--jobs", "1"]) == 0


@pytest.mark.parametrize("document", [{"cases": [{"a": 1}]}, {"cases": [1]}, {"cases": [{"case": 3}]}])
def test_report_on_a_hand_made_file_exits_2(tmp_path, capsys, document):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document))
    assert main(["report", str(path)]) == 2
    assert f"{path}: [cases] is not a results file written by run" in capsys.readouterr().err


SLOW_CASE = (
    INLINE.replace("[game]", 'name = "NAME"\n[game]') + '[estimators]\nnames = ["meta-mapg"]\nsamples = 3000000\n'
)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_run(tmp_path: Path) -> subprocess.Popen:
    paths = [str(write(tmp_path, SLOW_CASE.replace("NAME", name), f"{name}.toml")) for name in ("one", "two")]
    command = [sys.executable, "-m", "mapg_verify", "run", *paths, "--jobs", "2", "--out", str(tmp_path / "out")]
    # as at a terminal: a shell starts background jobs (pytest run with `&`) with SIGINT ignored, and
    # children inherit that, so the run's own Ctrl-C handling would never be reached
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=_default_sigint
    )
    for _ in range(600):  # the run has claimed its output folder: it is past its imports and checks
        if (tmp_path / "out" / ".lock").exists() or process.poll() is not None:
            break
        time.sleep(0.1)
    time.sleep(3)  # the workers are drawing
    assert process.poll() is None
    return process


def _group_is_gone(group: int) -> bool:
    for _ in range(50):
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.killpg(group, signal.SIGKILL)
    return False


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX")
@pytest.mark.parametrize(
    ("sent", "code", "line"), [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")]
)
def test_a_signal_ends_the_run_and_its_workers(tmp_path, sent, code, line):
    """SIGTERM to the parent (a scheduler's stop) and SIGINT to the group (Ctrl-C) both end every
    process of the run, print one line, and write nothing."""
    process = _start_run(tmp_path)
    if sent == signal.SIGTERM:
        process.send_signal(sent)
    else:
        os.killpg(process.pid, sent)
    _, error = process.communicate(timeout=30)
    assert process.returncode == code, error
    assert error.strip().splitlines()[-1] == line
    assert "Traceback" not in error
    assert _group_is_gone(process.pid)
    assert not (tmp_path / "out").exists()
