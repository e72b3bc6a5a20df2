"""Case files: TOML in, a validated :class:`mapg_verify.spec.case.Case` out (the reader, its value
helpers, and the limits and budgets checked before anything is computed)."""
