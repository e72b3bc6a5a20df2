"""``python -m mapg_verify``."""

from __future__ import annotations

import sys

from mapg_verify.cli import main

if __name__ == "__main__":  # not when a spawned pool worker imports it (pipeline.run_cases)
    sys.exit(main())
