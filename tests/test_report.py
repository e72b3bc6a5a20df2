"""The run's files: the HTML report in a headless browser, gold files for a tiny case,
determinism, atomic writes, interrupted and crashing runs, the report command."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import goldfiles
import pytest

from mapg_verify import output, pipeline, results
from mapg_verify.cli import main

ROOT = Path(__file__).resolve().parents[1]
GOLD = Path(__file__).resolve().parent / "gold"
ARTIFACTS = ROOT / "reports" / "test-artifacts"
TWO_CASES = [str(GOLD / "tiny.toml"), str(ROOT / "cases" / "bilinear.toml")]  # the gold case and the bilinear game
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    """A two-case run (the gold case and the bilinear game), shared by the tests below."""
    out = tmp_path_factory.mktemp("run")
    assert main(["run", *TWO_CASES, "--out", str(out)]) == 0
    return out


def test_report_is_self_contained_with_every_case_and_figure(campaign):
    page = (campaign / "index.html").read_text()
    assert 'id="case-tiny"' in page and 'id="case-bilinear"' in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "no network resources"
    assert "<script" not in page
    figures = page.count('<figure class="plot">')
    assert figures == 4 + 1  # tiny: terms, errors, bias, fingerprints; bilinear: terms
    assert page.count("<svg") >= figures


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed here (.ci/run installs it)")
def test_report_renders_in_headless_chromium_without_console_errors(campaign, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url = (campaign / "index.html").as_uri()
    common = [CHROMIUM, *BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Failed to load" in line]
    assert not console, console
    assert dom.stdout.count('class="case"') == 2
    assert dom.stdout.count('<figure class="plot">') == 5
    assert "no check failed" in dom.stdout and "information only" in dom.stdout
    shot = ARTIFACTS / "report.png"
    subprocess.run([*common, "--window-size=1280,4000", f"--screenshot={shot}", url], capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000


def _scrubbed_results(path: Path) -> str:
    """The results file with its volatile parts out: timings, versions, paths, and floats cut to
    9 significant digits (last-bit differences between machines' libraries)."""
    document = json.loads(path.read_text())
    document.pop("timings")
    document["mapg_verify"] = {key: "-" for key in document["mapg_verify"]}
    for case in document["cases"]:
        case["case"]["path"] = Path(case["case"]["path"]).name

    def cut(value):
        if isinstance(value, float):
            return float(f"{value:.9g}")
        if isinstance(value, dict):
            return {k: cut(v) for k, v in value.items()}
        if isinstance(value, list):
            return [cut(v) for v in value]
        return value

    return json.dumps(cut(document), indent=1, sort_keys=True) + "\n"


def _scrubbed_page(path: Path) -> str:
    """The report without its drawings (matplotlib's output may change between its versions),
    its version line and paths; the text, tables and figure captions stay."""
    page = re.sub(r"<svg.*?</svg>", "<svg/>", path.read_text(), flags=re.S)
    page = re.sub(r"mapg_verify [^,]*, symengine [^,]*, numpy [^.]*\.\d*\.?\d*\.", "VERSIONS.", page)
    return re.sub(r'<p class="muted">[^<]*tiny.toml</p>', '<p class="muted">tiny.toml</p>', page)


def test_gold_files(tmp_path):
    """The tiny case's results and report against tests/gold, compared as ``tests/goldfiles.py`` says:
    structure and text exactly, rounding-level figures as "below 1e-9", other figures to 1e-6
    relative. Set MAPG_UPDATE_GOLD=1 to rewrite them after an intended change, and review the diff."""
    assert main(["run", str(GOLD / "tiny.toml"), "--out", str(tmp_path), "--jobs", "1"]) == 0
    results_text = _scrubbed_results(tmp_path / "results.json")
    page = _scrubbed_page(tmp_path / "index.html")
    if os.environ.get("MAPG_UPDATE_GOLD"):
        (GOLD / "tiny.results.json").write_text(results_text)
        (GOLD / "tiny.index.html").write_text(page)
    differences = goldfiles.json_differences(
        json.loads((GOLD / "tiny.results.json").read_text()), json.loads(results_text)
    )
    differences += goldfiles.text_differences((GOLD / "tiny.index.html").read_text(), page, "index.html")
    assert not differences, "differs from tests/gold:\n" + "\n".join(differences[:20])


def test_gold_comparison_tolerates_rounding_and_catches_real_changes():
    assert (
        goldfiles.json_differences(
            {"a": 4.58780513e-16, "b": 0.312857535}, {"a": 9.17561025e-16, "b": 0.312857535000001}
        )
        == []
    )
    assert goldfiles.json_differences({"b": 0.312857535}, {"b": 0.3129}) != []  # a figure that moved
    assert goldfiles.json_differences({"a": 4.6e-16}, {"a": 2e-9}) != []  # rounding grew past its bound
    assert goldfiles.json_differences({"passed": True}, {"passed": False}) != []
    assert goldfiles.json_differences({"a": [1, 2]}, {"a": [1, 2, 3]}) != []
    assert goldfiles.text_differences("p = 0.178 at level 0.01", "p = 0.179 at level 0.01") == []  # a printed boundary
    assert goldfiles.text_differences("p = 0.178 at level 0.01", "p = 0.181 at level 0.01") != []
    assert goldfiles.text_differences("coefficient -2.4e-12", "coefficient 9.6e-13") == []
    assert goldfiles.text_differences("consistent: T^2 1.82", "rejected: T^2 1.82") != []


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path):
    texts = {}
    for label, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert main(["run", str(GOLD / "tiny.toml"), "--out", str(tmp_path / label), "--seed", seed]) == 0
        document = json.loads((tmp_path / label / "results.json").read_text())
        document.pop("timings")
        texts[label] = results.dumps(document)
    assert texts["a"] == texts["b"]
    assert texts["a"] != texts["c"]


def test_report_command_rebuilds_the_same_page(campaign, tmp_path, capsys):
    assert main(["report", str(campaign / "results.json"), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "index.html").read_text() == (campaign / "index.html").read_text()


@pytest.mark.parametrize(("content", "message"), [("{", "is not valid JSON"), ("[]", "not a results file")])
def test_report_command_refuses_what_is_not_a_results_file(tmp_path, capsys, content, message):
    path = tmp_path / "results.json"
    path.write_text(content)
    assert main(["report", str(path)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "index.html").exists()


def test_interrupted_run_exits_130_and_writes_nothing(tmp_path, monkeypatch, capsys):
    calls = []
    real = pipeline.evaluate_safely

    def interrupted(case, seed, progress):
        calls.append(case.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(case, seed, progress)

    monkeypatch.setattr(pipeline, "evaluate_safely", interrupted)
    args = ["run", *TWO_CASES, "--out", str(tmp_path), "--jobs", "1"]
    assert main(args) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_text("old")

    def interrupt(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        output.write_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_crashing_case_fails_alone_and_the_run_goes_on(tmp_path, monkeypatch):
    real = pipeline.evaluate

    def crash_on_bilinear(case, **options):
        if case.name == "bilinear":
            raise RuntimeError("simulated bug")
        return real(case, **options)

    monkeypatch.setattr(pipeline, "evaluate", crash_on_bilinear)
    args = ["run", *TWO_CASES, "--out", str(tmp_path), "--jobs", "1"]
    assert main(args) == 1
    document = json.loads((tmp_path / "results.json").read_text())
    verdicts = {
        case["case"]["name"]: [c["name"] for c in case["checks"] if not c["passed"]] for case in document["cases"]
    }
    assert verdicts == {"tiny": [], "bilinear": ["error"]}
    assert "simulated bug" in (tmp_path / "index.html").read_text()


def test_quick_cuts_the_budget_and_says_so(tmp_path):
    assert main(["run", str(GOLD / "tiny.toml"), "--out", str(tmp_path), "--quick"]) == 0
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["run"]["quick"] is True
    assert document["cases"][0]["estimators"]["meta-mapg"]["monte_carlo"]["samples"] == 200
