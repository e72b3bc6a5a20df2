"""``python -m mapg_verify``."""

import sys

from .cli import main

sys.exit(main())
