"""Oracles independent of the symbolic path: autograd (:mod:`.autodiff`), Richardson finite
differences (:mod:`.differences`) and mpmath at 50 digits (:mod:`.highprecision`)."""
