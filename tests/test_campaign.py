"""Campaigns on Dask (issue 18): a spec's games are fixed by its seed, bad specs exit 2 (unreadable
files, repeated estimators and bad fingerprint claims too), and the aggregate is the same on one
worker, on two with one killed part-way, and after a resume."""

import json
import os
import signal
import tomllib
from pathlib import Path

import pytest
from distributed import Client, LocalCluster
from test_cli import write

from mapg_verify.campaign import aggregate, case_toml, interval, load_spec, parse_spec, run_task, task_document
from mapg_verify.casefile.reader import load_case
from mapg_verify.cli import main
from mapg_verify.cluster import STORE, read_store, run_campaign

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
        (('"model-S" }', "{ bogus = 1 } }"), "[campaign.claims.meta-pg] a fingerprint claim has numbers for the terms"),
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


def test_run_campaign_leaves_the_environment_as_it_found_it(tmp_path):
    before = dict(os.environ)
    run_campaign(_spec(SPEC.replace("games = 5", "games = 1")), tmp_path, workers=1, progress=False)
    assert dict(os.environ) == before


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
    assert len(read_store(tmp_path / "resumed" / STORE)) == 2 and not (tmp_path / "resumed" / "aggregate.json").exists()
    with pytest.raises(Exception, match="--resume"):
        run_campaign(spec, tmp_path / "resumed", workers=2, progress=False)
    run_campaign(spec, tmp_path / "resumed", workers=2, resume=True, progress=False)
    assert _without_timings(tmp_path / "resumed") == _without_timings(tmp_path / "one")
    page = (tmp_path / "resumed" / "campaign.html").read_text()
    assert "Power against the planted bugs" in page and "<svg" in page
    for failure in reference["failures"]:
        assert load_case(tmp_path / "one" / "failures" / f"{failure['case']}.toml").name == failure["case"]


def test_aggregate_reads_records_in_task_order():
    spec = _spec()
    records = [
        {"task": j, "case": task_document(spec, j), "failed": [], "seconds": 0.0,
         "estimators": {name: {"claim": "pass", "implementation": "pass", "bias vs model S": 0.1 * j,
                               "bias vs model E": None, "claim summary": ""} for name in spec.names}}
        for j in range(3)
    ]  # fmt: skip
    assert aggregate(spec, records) == aggregate(spec, records[::-1])


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
