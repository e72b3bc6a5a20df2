"""The field's newer estimators: their published claims, settled exactly on small games.

Run: ``python benchmarks/findings_newer.py [OUT.json]`` (default ``benchmarks/findings_newer.json``).
Prints the findings table (docs/findings.md, "The field's newer estimators") and writes its figures to the
JSON; the rows are built by :mod:`mapg_verify.checks.findings`, which ``experiments/newer/findings.toml``
also runs (its figures then in ``results.json``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mapg_verify.checks.findings import newer_rows  # noqa: E402


def main(out: Path) -> None:
    rows = newer_rows()
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print("| estimator | published claim | exact verdict | command |\n|---|---|---|---|")
    for row in rows:
        print(f"| `{row['estimator']}` | {row['claim']} | {row['verdict']} | `{row['command']}` |")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "benchmarks" / "findings_newer.json")
