"""Exact truth: symbolic values and their compiled derivatives, trajectory enumeration, REINFORCE
terms in closed form, and the exact meta-gradients of both inner models and LOLA."""
