"""The documentation (issue 31): the README is a landing page, the site builds with --strict, the
case-file reference is generated from the records, and the code examples run as written
(```python fences run; ```py fences are fragments, not run)."""

import dataclasses
import os
import re
import subprocess
import sys

import pytest
from test_cli import ROOT

from mapg_verify.casefile import reader
from mapg_verify.casefile.reference import RECORDS, case_file_reference
from mapg_verify.spec.case import Case

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_the_readme_is_a_landing_page_with_the_ci_command():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    command = next(line for line in (ROOT / ".ci/run").read_text().splitlines() if "pytest" in line and "pip" in line)
    assert command.split(" || ")[0].strip() in readme  # .ci/run calls exactly the README's test command


def test_the_case_file_reference_lists_every_key_and_every_field():
    text = case_file_reference()
    for section, keys in reader.SECTIONS.items():
        assert all(f"`{key}`" in text for key in keys or ()), section
    for record in (*RECORDS.values(), Case):
        missing = [f.name for f in dataclasses.fields(record) if f"`{record.__name__}.{f.name}`" not in text]
        assert not missing, (record.__name__, missing)


def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra: pip install -e '.[docs]' (the README's test command has it)")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "site" / "reference" / "case-file" / "index.html").read_text()
    assert "EstimatorSettings.plugin_timeout" in page  # the generated reference is on the page


def _blocks(path):
    return [
        re.sub(r"^ {0,3}", "", b, flags=re.M)
        for b in re.findall(r"^ *```python\n(.*?)^ *```", path.read_text(), re.S | re.M)
    ]


@pytest.mark.parametrize("path", [p for p in PAGES if _blocks(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_the_code_examples_run(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    namespace: dict = {}
    for block in _blocks(path):
        exec(compile(block, str(path), "exec"), namespace)
