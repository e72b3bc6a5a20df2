"""Sampled estimators (SPEC §4): the table of estimators, the DiCE surrogate they share, the
trajectory sampler, Monte-Carlo draws, exact expectations by enumeration, plug-ins, and the
autograd DiCE reference they are tested against."""
