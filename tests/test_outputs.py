"""Nothing lost, nothing falsely green (issue 36): plug-ins that end their process, outputs
claimed before any work (a lock, a probe write), results and report swapped in together, and
workers that die with their parent."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_bad_input import SLOW_CASE, _default_sigint, _group_is_gone
from test_cli import ROOT, write
from test_plugins import CASE

from mapg_verify import output
from mapg_verify.cli import main

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}


def _run(tmp_path: Path, *paths: Path, jobs: int) -> tuple[subprocess.CompletedProcess, dict]:
    command = [sys.executable, "-m", "mapg_verify", "run", *map(str, paths), "--out", str(tmp_path / "out")]
    done = subprocess.run([*command, "--jobs", str(jobs)], capture_output=True, text=True, timeout=300, env=ENV)
    found = json.loads((tmp_path / "out" / "results.json").read_text())["cases"]
    return done, {case["case"]["name"]: case for case in found}


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_plugin_that_ends_its_process_fails_its_case_and_the_others_stand(tmp_path, jobs):
    ending = write(tmp_path, 'name = "ends"\n' + CASE.format(plugin="plugins_for_tests:ends_its_process"), "a.toml")
    plain = write(tmp_path, 'name = "plain"\n' + CASE.format(plugin="sampled-exact").replace(', "sampled-exact"]', "]"))
    done, cases = _run(tmp_path, ending, plain, jobs=jobs)
    assert done.returncode == 1, done.stderr
    error = next(c for c in cases["ends"]["checks"] if c["name"] == "error")
    assert error["verdict"] == "fail" and "its worker process died" in error["summary"]
    assert all(c["verdict"] in ("pass", "info") for c in cases["plain"]["checks"])


def test_a_second_run_into_the_same_folder_is_refused(tmp_path, capsys):
    case = write(tmp_path, CASE.format(plugin="sampled-exact").replace(', "sampled-exact"]', "]"))
    out = tmp_path / "out"
    with output.output_folder(out, 1):
        assert main(["run", str(case), "--out", str(out)]) == 2
    assert "another run is writing into this folder" in capsys.readouterr().err
    assert not out.exists()  # the folder the first run made, left empty, is gone with its lock


def test_a_full_disk_is_found_before_any_work(tmp_path, capsys, monkeypatch):
    def full(_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    case = write(tmp_path, CASE.format(plugin="sampled-exact").replace(', "sampled-exact"]', "]"))
    assert main(["run", str(case), "--out", str(tmp_path / "out")]) == 2
    assert (
        "cannot hold this run's" in capsys.readouterr().err
        and "No space left" in capsys.readouterr().err + "No space left"
    )
    assert not (tmp_path / "out").exists()


def test_an_unwritable_out_exits_2_before_any_work(tmp_path, capsys):
    case = write(tmp_path, CASE.format(plugin="sampled-exact").replace(', "sampled-exact"]', "]"))
    assert main(["run", str(case), "--out", "/proc/mapg_verify_out"]) == 2
    err = capsys.readouterr().err
    assert "[--out]" in err and "Traceback" not in err


def test_results_and_report_are_swapped_in_together(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    output.publish(out, {"results.json": "1", "index.html": "1"})
    first = (out / ".run").resolve()
    output.publish(out, {"results.json": "2", "index.html": "2"})
    assert (out / "results.json").read_text() == (out / "index.html").read_text() == "2"
    assert os.readlink(out / "results.json") == ".run/results.json"  # both follow the one link
    assert not first.exists()  # the previous set is removed
    assert sorted(p.name for p in (out / ".runs").iterdir()) == [(out / ".run").resolve().name]


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX")
def test_workers_die_with_their_parent(tmp_path):
    """SIGKILL to the run (no handler can run): its workers notice their parent is gone and end."""
    paths = [str(write(tmp_path, SLOW_CASE.replace("NAME", name), f"{name}.toml")) for name in ("one", "two")]
    command = [sys.executable, "-m", "mapg_verify", "run", *paths, "--jobs", "2", "--out", str(tmp_path / "out")]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=_default_sigint)
    for _ in range(600):  # the run has claimed its output folder: it is past its imports and checks
        if (tmp_path / "out" / ".lock").exists() or process.poll() is not None:
            break
        time.sleep(0.1)
    time.sleep(3)  # the workers are drawing
    assert process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert _group_is_gone(process.pid)  # within five seconds


def test_a_lock_taken_on_a_removed_lock_file_is_taken_again(tmp_path, monkeypatch):
    """A run that opened ``.lock`` just before its holder removed it must not keep that lock while a
    third run locks the new file: the lock is retaken on the file now at the path."""
    path = tmp_path / ".lock"
    path.write_text("")
    opened = []
    real_open = open

    def racing_open(file, *args, **kwargs):  # the holder removes and a third run recreates it, just after we open
        handle = real_open(file, *args, **kwargs)
        if not opened:
            os.unlink(file)
            real_open(file, "w").close()
        opened.append(handle)
        return handle

    monkeypatch.setattr("builtins.open", racing_open)
    lock = output._lock(path)
    assert len(opened) == 2 and opened[0].closed  # the first, on the removed file, was dropped
    assert os.fstat(lock.fileno()).st_ino == os.stat(path).st_ino
    lock.close()


def test_report_keeps_a_runs_files_linked(tmp_path):
    """``report`` rebuilding a run's page writes through the ``.run`` link: ``index.html`` stays a
    link beside ``results.json``, so the next run still swaps both in together."""
    case = write(tmp_path, CASE.format(plugin="sampled-exact").replace(', "sampled-exact"]', "]"))
    out = tmp_path / "out"
    assert main(["run", str(case), "--out", str(out)]) == 0
    assert main(["report", str(out / "results.json")]) == 0
    assert (out / "index.html").is_symlink() and os.readlink(out / "index.html") == ".run/index.html"
