"""Verification checks (SPEC §5): the record every check returns, the statistics, the exact checks
(oracles and identities), the estimator checks (implementation, bias, fingerprint), calibration
and power, and the registry the pipeline and ``list`` read."""
