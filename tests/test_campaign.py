"""Campaigns on Dask (issue 18): a spec's games are fixed by its seed, bad specs exit 2 (unreadable
files, repeated estimators and bad fingerprint claims too), and the aggregate is the same on one
worker, on two with one killed part-way, and after a resume. The store cannot lie: a resume
refuses another spec's store, moves damaged lines aside and reruns their games; a record that
cannot be written stops the campaign, resumably; a game without a record fails it. The exit code
follows claims, errors and improbable false-alarm counts; Dask's log goes to a file."""

import errno
import json
import logging
import os
import shutil
import signal
import tomllib
from pathlib import Path

import pytest
from distributed import Client, LocalCluster
from test_cli import write

from mapg_verify import cluster
from mapg_verify.campaign import (
    CampaignError,
    aggregate,
    case_toml,
    fingerprint,
    interval,
    load_spec,
    parse_spec,
    run_task,
    task_document,
)
from mapg_verify.casefile.reader import load_case
from mapg_verify.cli import main
from mapg_verify.cluster import DAMAGED, DASK_LOG, SPEC_FILE, STORE, read_store, run_campaign, seal
from mapg_verify.console import campaign_summary
from mapg_verify.results import canonical

SPEC = """
[campaign]
games = 5
states = [1, 2]
actions = [2, 2]
horizon = [1, 2]
estimators = ["meta-mapg", "meta-pg"]
claims = { "meta-pg" = "model-S" }
mutants = true
samples = 300
seed = 11
"""


# three tiny games: a campaign in a second or two on a running cluster
SMALL = """
[campaign]
games = 3
states = [1, 1]
actions = [2, 2]
horizon = [1, 1]
estimators = ["meta-mapg"]
samples = 200
seed = 5
"""


def _spec(text: str = SPEC):
    return parse_spec(tomllib.loads(text))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("games = 5", "games = 0"), "[campaign.games] must be a positive integer"),
        (("states = [1, 2]", "states = [3, 1]"), "[campaign.states] must be [low, high]"),
        (("seed = 11", "seed = 11\nspeed = 2"), "[campaign.speed] is not a known key"),
        (('"meta-pg"]', '"meta-pgg"]'), "[campaign.estimators"),
        (('{ "meta-pg" = "model-S" }', '{ "naive" = "model-S" }'), "[campaign.claims.naive]"),
        (("actions = [2, 2]", "actions = [2, 3]\npolicy = 'sigmoid'"), "[campaign.policy]"),
        (('"meta-pg"]', '"meta-pg", "meta-mapg"]'), "[campaign.estimators] lists 'meta-mapg' twice"),
        (
            ('"meta-pg"]', '"meta-pg", "meta-mapg/flipped-peer"]'),
            "[campaign.estimators] lists the planted bug 'meta-mapg/flipped-peer', which mutants = true adds already",
        ),
        (
            ('"model-S" }', "{ bogus = 1 } }"),
            "[campaign.claims.meta-pg] a fingerprint claim has finite numbers for the terms",
        ),
    ],
)
def test_a_bad_spec_exits_2_naming_the_file_and_key(tmp_path, capsys, change, message):
    path = write(tmp_path, SPEC.replace(*change), "spec.toml")
    assert main(["campaign", str(path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert f"{path}: " in error and message in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (Path.mkdir, "[file] cannot be read: Is a directory"),
        (lambda path: path.write_bytes(b"[campaign]\ngames = 2  # \xff\n"), "[file] is not UTF-8 text (byte 24)"),
        (lambda path: None, "[file] cannot be read: No such file or directory"),
    ],
)
def test_a_spec_that_is_a_folder_not_utf8_or_missing_exits_2_naming_the_file(tmp_path, capsys, make, reason):
    path = tmp_path / "spec.toml"
    make(path)
    assert main(["campaign", str(path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {path}: {reason}") and error.count("\n") == 1, error
    assert not (tmp_path / "out").exists()


def test_a_fingerprint_claim_is_accepted_as_in_case_files(tmp_path):
    claim = '"meta-pg" = { current = 1, adapted = 1, own-pathwise = 1, own-dice = 1 }'
    text = SMALL.replace('["meta-mapg"]', f'["meta-mapg", "meta-pg"]\nclaims = {{ {claim} }}')
    spec = _spec(text.replace("games = 3", "games = 1"))
    case = load_case(write(tmp_path, case_toml(task_document(spec, 0)), "game.toml"))
    assert dict(case.estimators.claims)["meta-pg"].kind == "fingerprint"
    record = run_task(spec, 0)
    assert record["estimators"]["meta-pg"]["claim"] == "pass", record["estimators"]["meta-pg"]["claim summary"]
    claimed = aggregate(spec, [record])["estimators"]["meta-pg"]["claim"]
    assert claimed == "fingerprint 1 current + 1 adapted + 1 own-pathwise + 1 own-dice"


def test_games_are_fixed_by_the_seed_and_rerun_as_case_files(tmp_path):
    spec = _spec()
    assert task_document(spec, 3) == task_document(spec, 3)
    assert task_document(spec, 3) != task_document(spec, 4)
    case = load_case(write(tmp_path, case_toml(task_document(spec, 3)), "game.toml"))
    assert case.name == task_document(spec, 3)["name"] and "meta-mapg/flipped-peer" in case.estimators.names


def test_clopper_pearson_interval():
    assert interval(0, 10)[0] == 0.0 and interval(10, 10)[1] == 1.0
    low, high = interval(5, 10)
    assert low == pytest.approx(0.187, abs=1e-3) and high == pytest.approx(0.813, abs=1e-3)
    assert interval(0, 0) is None


def _without_timings(path):
    document = json.loads((path / "aggregate.json").read_text())
    document.pop("timings")
    return document


@pytest.fixture
def environment():
    """Dask's nannies leave ``OMP_NUM_THREADS=1`` and the like in the environment: put it back."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_a_local_campaign_logs_dask_to_a_file_and_leaves_the_environment_as_it_found_it(tmp_path, capfd):
    def warn(client, finished):  # the nanny's shutdown warning, in this process, and a worker's
        logging.getLogger("distributed.nanny").warning("Worker process still alive after 4.0 seconds, killing")
        client.run(lambda: logging.getLogger("distributed.worker").warning("a worker's warning"))

    before = dict(os.environ)
    run_campaign(_spec(SMALL.replace("games = 3", "games = 1")), tmp_path, workers=1, after_each=warn, progress=False)
    assert dict(os.environ) == before
    log = (tmp_path / DASK_LOG).read_text()
    assert "Worker process still alive after 4.0 seconds, killing" in log and "a worker's warning" in log
    error = capfd.readouterr().err
    assert "still alive" not in error and "a worker's warning" not in error and "distributed." not in error, error


def test_two_workers_one_killed_and_a_resumed_campaign_give_the_single_worker_aggregate(tmp_path, environment):
    spec = _spec()
    reference = run_campaign(spec, tmp_path / "one", workers=1, progress=False)
    assert reference["games"] == 5 and reference["mutants"]["meta-mapg/flipped-peer"]["caught"] == 5
    assert reference["estimators"]["meta-mapg"]["failed"] == 0
    assert reference["estimators"]["meta-pg"]["failed"] > 0  # meta-pg is not model S's gradient
    assert {f["case"] for f in reference["failures"]} <= {task_document(spec, j)["name"] for j in range(5)}

    killed = []

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster:

        def kill_one(client, finished):
            if finished == 1:  # a worker dies with whatever it was running; the scheduler reassigns it
                nanny = next(iter(cluster.workers.values()))
                killed.append(nanny.worker_address)
                os.kill(nanny.pid, signal.SIGKILL)

        run_campaign(spec, tmp_path / "two", scheduler=cluster.scheduler_address, after_each=kill_one, progress=False)
        with Client(cluster) as client:
            assert killed and killed[0] not in client.scheduler_info()["workers"]  # it did die
    assert _without_timings(tmp_path / "two") == _without_timings(tmp_path / "one")

    def interrupt(client, finished):
        if finished == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_campaign(spec, tmp_path / "resumed", workers=2, after_each=interrupt, progress=False)
    assert (
        len(read_store(tmp_path / "resumed" / STORE, fingerprint(spec), 5).records) == 2
        and not (tmp_path / "resumed" / "aggregate.json").exists()
    )
    with pytest.raises(Exception, match="--resume"):
        run_campaign(spec, tmp_path / "resumed", workers=2, progress=False)
    run_campaign(spec, tmp_path / "resumed", workers=2, resume=True, progress=False)
    assert _without_timings(tmp_path / "resumed") == _without_timings(tmp_path / "one")
    page = (tmp_path / "resumed" / "campaign.html").read_text()
    assert "Power against the planted bugs" in page and "<svg" in page
    for failure in reference["failures"]:
        assert load_case(tmp_path / "one" / "failures" / f"{failure['case']}.toml").name == failure["case"]


def _records(spec, checks: list[dict]) -> list[dict]:
    """Made-up records, one per game, with these checks' verdicts."""
    return [
        {"task": j, "case": {"name": f"game-{j}"}, "checks": verdicts, "levelled": ["implementation"],
         "seconds": 0.0, "estimators": {name: {"claim": "pass", "implementation": "pass", "bias vs model S": 0.1 * j,
                                               "bias vs model E": None, "claim summary": ""} for name in spec.names}}
        for j, verdicts in enumerate(checks)
    ]  # fmt: skip


def test_aggregate_reads_records_in_task_order_and_needs_one_per_game():
    spec = _spec()
    records = _records(spec, [{"implementation:meta-mapg": "pass"}] * 5)
    assert aggregate(spec, records) == aggregate(spec, records[::-1])
    with pytest.raises(CampaignError, match=r"are 3: 2 games have none \(campaign-11-000001, campaign-11-000003\)"):
        aggregate(spec, [records[0], records[2], records[4]])


GOOD = {"oracles": "pass", "claim:meta-mapg": "pass", "implementation:meta-mapg": "pass", "bias:meta-mapg": "info"}


@pytest.mark.parametrize(
    ("changed", "rule"),
    [
        ({}, None),  # one false alarm among 72 checks at level 0.01: expected
        ({j: {"implementation:meta-mapg": "fail"} for j in (10, 20, 30)}, None),  # four: p = 0.006
        (
            {j: {"implementation:meta-mapg": "fail"} for j in (10, 20, 30, 40)},  # five: p = 0.0008
            "false alarms: implementation failed 5 of 72 checks, 0.72 expected at level 0.01 (binomial p = 0.0008 <",
        ),
        ({7: {"claim:meta-mapg": "fail"}}, "claim: 1 of 72 claim checks failed"),
        ({7: "error"}, "error: 1 games raised an error"),
        (
            {7: {"oracles": "fail"}},
            "false alarms: oracles failed 1 of 72 checks, 0 expected at level 0 (binomial p = 0",
        ),
    ],
)
def test_the_exit_code_follows_claims_errors_and_improbable_false_alarms(capsys, changed, rule):
    spec = _spec(SMALL.replace("games = 3", "games = 72"))
    checks = [GOOD | {"implementation:meta-mapg": "fail"}] + [GOOD] * 71
    for j, change in changed.items():
        checks[j] = {"error": "fail"} if change == "error" else GOOD | change
    result = aggregate(spec, _records(spec, checks))
    alarms = result["checks"]["implementation"]
    assert alarms["checks"] == 72 - ("error" in changed.values()) and alarms["level"] == 0.01
    assert alarms["expected false alarms"] == pytest.approx(0.01 * alarms["checks"])
    assert result["checks"]["bias"]["checks"] == 0 and result["checks"]["bias"]["binomial p"] is None
    assert result["exit"]["code"] == (rule is not None)
    assert (rule or "-") in (result["exit"]["rules"] or ["-"])[0]
    campaign_summary(result)
    printed = capsys.readouterr().out
    assert "checks by kind" in printed and f"exit {result['exit']['code']}:" in printed and (rule or "") in printed


@pytest.fixture(scope="module")
def scheduler():
    """One local cluster for the store's tests: each campaign connects to it in a moment."""
    saved = dict(os.environ)
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as running:
        yield running.scheduler_address
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, scheduler):
    """The folder of the small campaign, run to the end."""
    out = tmp_path_factory.mktemp("campaign") / "out"
    run_campaign(_spec(SMALL), out, scheduler=scheduler, progress=False)
    return out


def _line(record: dict) -> bytes:
    return canonical(record).encode() + b"\n"


def test_resume_refuses_a_store_written_under_another_spec_naming_the_keys(tmp_path, capsys, finished):
    out = shutil.copytree(finished, tmp_path / "out")
    before = (out / STORE).read_bytes()
    path = write(tmp_path, SMALL.replace("samples = 200", "samples = 300").replace("seed = 5", "seed = 6"), "s.toml")
    assert main(["campaign", str(path), "--out", str(out), "--resume"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {path.resolve()}: [campaign.samples, campaign.seed] differs from the spec")
    assert "samples 200 there, 300 here; seed 5 there, 6 here" in error and error.count("\n") == 1
    assert (out / STORE).read_bytes() == before and not (out / DAMAGED).exists()
    (out / SPEC_FILE).unlink()
    assert main(["campaign", str(write(tmp_path, SMALL, "same.toml")), "--out", str(out), "--resume"]) == 2
    assert f"error: {out / SPEC_FILE}: [file] is missing beside {STORE}" in capsys.readouterr().err


def test_resume_moves_damaged_lines_aside_and_reruns_their_games(tmp_path, capsys, finished, scheduler):
    out = shutil.copytree(finished, tmp_path / "out")
    spec = _spec(SMALL)
    good = read_store(out / STORE, fingerprint(spec), 3).records
    damaged = {
        "is not JSON": b"}{ garbage",
        "holds NUL bytes": b"\x00\x00\x00",
        "is not UTF-8 text": b'{"task": "\xff"}',
        "is not JSON (NaN is not JSON)": b'{"task": NaN}',
        "is not a record but a JSON list": b"[1, 2]",
        "has task '1', not a game's number": b'{"task": "1"}',
        "fails its checksum": _line(good[1] | {"seconds": 0.0})[:-1],
        "was written under another spec": _line(seal(good[1], "0" * 64))[:-1],
        "is a second record of game 0": _line(good[0])[:-1],
        "is cut short (no newline at its end)": _line(good[2])[:40],
    }
    (out / STORE).write_bytes(_line(good[0]) + b"\n".join(damaged.values()))
    result = run_campaign(spec, out, scheduler=scheduler, resume=True, progress=False)
    error = capsys.readouterr().err
    for number, reason in enumerate(damaged, start=2):
        assert f"warning: {out / STORE}: line {number} {reason}" in error, error
    assert (out / DAMAGED).read_bytes() == b"".join(line + b"\n" for line in damaged.values())
    store = read_store(out / STORE, fingerprint(spec), 3)
    assert not store.damaged and sorted(store.records) == [0, 1, 2] and result["games"] == 3
    assert _without_timings(out) == _without_timings(finished)


def test_a_record_that_cannot_be_written_stops_the_campaign_resumably(
    tmp_path, capsys, monkeypatch, finished, scheduler
):
    append, calls = cluster._append, []

    def full_disk(path, data):  # half of the second record reaches the disk
        calls.append(path)
        append(path, data[: len(data) // 2] if len(calls) == 2 else data)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cluster, "_append", full_disk)
    out, path = tmp_path / "out", write(tmp_path, SMALL, "spec.toml")
    assert main(["campaign", str(path), "--out", str(out), "--scheduler", scheduler]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("games:")]
    assert errors == [f"error: {out}/{STORE}: cannot be written (No space left on device): the campaign stopped; "
                      "--resume finishes it"]  # fmt: skip
    assert not (out / "aggregate.json").exists() and (out / STORE).read_bytes().count(b"\n") == 1
    monkeypatch.undo()
    assert main(["campaign", str(path), "--out", str(out), "--scheduler", scheduler, "--resume"]) == 0
    assert "line 2 is cut short" in capsys.readouterr().err
    assert _without_timings(out) == _without_timings(finished)


def _game_one_fails(spec, index):
    if index == 1:
        raise RuntimeError("a task that dies")
    return run_task(spec, index)


def test_a_game_without_a_record_fails_the_campaign_naming_it(tmp_path, capsys, monkeypatch, scheduler):
    monkeypatch.setattr(cluster, "run_task", _game_one_fails)
    out, path = tmp_path / "out", write(tmp_path, SMALL, "spec.toml")
    assert main(["campaign", str(path), "--out", str(out), "--scheduler", scheduler]) == 1
    error = capsys.readouterr().err
    assert "warning: game 1 has no record: RuntimeError: a task that dies" in error
    assert (
        "error: an aggregate needs one record per game of the spec's 3, and there are 2: 1 games have none "
        "(campaign-5-000001); --resume reruns them" in error
    )
    assert (
        not (out / "aggregate.json").exists()
        and len(read_store(out / STORE, fingerprint(_spec(SMALL)), 3).records) == 2
    )


def test_no_scheduler_at_the_address_exits_2(tmp_path, capsys):
    path = write(tmp_path, SPEC, "spec.toml")
    arguments = ["campaign", str(path), "--out", str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:9"]
    assert main(arguments) == 2
    assert "[--scheduler] no Dask scheduler answered at 'tcp://127.0.0.1:9'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_plug_in_estimator_beside_the_spec(tmp_path):
    """Plug-ins import from the spec's folder and its parent, on the workers too."""
    (tmp_path / "mine.py").write_text("from examples.dice_meta_mapg import meta_mapg as est\n")
    text = SPEC.replace('["meta-mapg", "meta-pg"]', '["mine:est"]').replace(
        '"meta-pg" = "model-S"', '"mine:est" = "meta-mapg"'
    )
    spec = load_spec(write(tmp_path, text.replace("games = 5", "games = 2").replace("mutants = true", ""), "spec.toml"))
    result = run_campaign(spec, tmp_path / "out", workers=1, progress=False)
    assert result["estimators"]["mine:est"]["held"] == 2, result["estimators"]["mine:est"]


def test_the_shipped_campaign_spec_is_valid():
    spec = load_spec(Path(__file__).resolve().parents[1] / "campaigns" / "laptop.toml")
    assert spec.games == 40 and spec.mutants
