"""``python -m mapg_verify``."""

from __future__ import annotations

import sys

from mapg_verify.cli import main

sys.exit(main())
