"""Plug-ins written in JAX or PyTorch, called where they live: ``"jax:module:function"`` and
``"torch:module:function"`` (a plain ``module:function`` is numpy).

One call hands the plug-in its batches as the framework's arrays (64-bit floats; states and
actions 64-bit integers) and ``theta`` as framework arrays, every agent's (torch leaves with
``requires_grad``). It returns the estimate of ``grad_{theta^i} J^i``, shaped like ``theta[i]``,
or a scalar surrogate ``s`` whose gradient the toolkit takes with the framework's own autograd:
``torch.autograd.grad(s, theta[i])``, or, in JAX, the pull-back of ``jax.vjp`` with respect to
``theta[i]`` (so a JAX plug-in is called under ``jax.vjp`` and must be traceable, written in
``jax.numpy``). The surrogate is an objective to ascend, like the estimate: a loss to minimise is
handed over negated. Batched plug-ins receive every replicate at once, ``theta[k]`` as
``(R, *shape)`` (each replicate its own copy, so the gradient of the surrogates' sum is each
replicate's own), and return ``(R, *shape)`` estimates or ``(R,)`` surrogates.

JAX runs with 64-bit floats enabled (``jax_enable_x64``, process-wide) and torch calls with the
default dtype float64; :class:`~mapg_verify.estimators.records.Batch` is registered as a pytree
of both, so ``jax.vmap`` and ``torch.func.vmap`` map over batches directly.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util

import numpy as np

from mapg_verify.estimators.records import Batch
from mapg_verify.problem.errors import InputError

FRAMEWORKS = ("numpy", "jax", "torch")
INSTALL = "python -m pip install -e '.[{0}]' from a clone of mapg_verify ('mapg-verify[{0}]' from an index)"


def split_framework(name: str) -> tuple[str, str]:
    """``"jax:pkg.mod:fn"`` to ``("jax", "pkg.mod:fn")``; a plain ``module:function`` is numpy's."""
    head, _, rest = name.partition(":")
    if head in FRAMEWORKS[1:] and ":" in rest:
        return head, rest
    return "numpy", name


def installed(framework: str) -> str:
    """``"yes"``, or the command that installs the framework (found without importing it)."""
    if framework == "numpy" or importlib.util.find_spec(framework) is not None:
        return "yes"
    return "no: " + INSTALL.format(framework)


def require(framework: str, key: str, name: str) -> None:
    """Import the framework and prepare it (see the module's docstring); an input error with the
    install command when it is not installed."""
    if framework == "numpy":
        return
    try:
        _prepared(framework)
    except ImportError as error:
        raise InputError(
            key,
            f"plug-in {name!r} needs {framework}, which cannot be imported ({error}); install it: "
            + INSTALL.format(framework),
        ) from None


@functools.cache
def _prepared(framework: str):
    module = importlib.import_module(framework)
    fields = ["states", "actions", "rewards", "phi", "values"]
    if framework == "jax":
        module.config.update("jax_enable_x64", True)
    with contextlib.suppress(ValueError):  # registered already
        if framework == "jax":
            module.tree_util.register_dataclass(Batch, data_fields=fields, meta_fields=[])
        else:
            importlib.import_module("torch.utils._pytree").register_dataclass(Batch)
    return module


def caller(framework: str, function, settings, surrogate_shape: tuple[int, ...]):
    """``call(inner, outer, theta)`` on numpy batches and ``theta`` (numpy, one array per agent):
    the plug-in's estimate (the surrogate's gradient where it returns one of ``surrogate_shape``)
    and its ``phis`` (``None`` where it returns none), both as numpy. A JAX plug-in's call, the
    gradient included, is compiled with ``jax.jit`` once per shape (``settings`` static), and run
    uncompiled where tracing it fails (Python control flow on values)."""
    if framework == "numpy":
        return lambda inner, outer, theta: _split(function(inner, outer, theta, settings))
    if framework == "jax":
        return _jax_caller(function, settings, surrogate_shape)
    return functools.partial(_torch, _prepared("torch"), function, settings=settings, surrogate_shape=surrogate_shape)


def _split(value):
    """``(estimate, phis)`` from what a plug-in returned (``phis`` ``None`` where it returned none)."""
    if isinstance(value, tuple) and len(value) == 2:
        return value
    return value, None


def _convert(batches, array) -> tuple:
    return tuple(
        None
        if b is None
        else Batch(array(b.states), array(b.actions), array(b.rewards), tuple(map(array, b.phi)), array(b.values))
        for b in batches
    )


def _numpy(value):
    """Framework arrays (or nested lists and tuples of them) to numpy."""
    if isinstance(value, (list, tuple)):
        return type(value)(_numpy(v) for v in value)
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


@functools.lru_cache(maxsize=32)
def _jax_caller(function, settings, surrogate_shape: tuple[int, ...]):
    jax = _prepared("jax")
    numpy, agent = jax.numpy, settings.meta_agent

    def run(inner, outer, params):
        def at(part):
            local = tuple(part if k == agent else p for k, p in enumerate(params))
            value, phis = _split(function(inner, outer, local, settings))
            return numpy.asarray(value, dtype=numpy.float64), phis

        value, pullback, phis = jax.vjp(at, params[agent], has_aux=True)
        if value.shape == surrogate_shape:
            (value,) = pullback(numpy.ones_like(value))
        return value, phis

    compiled, traceable = jax.jit(run), [True]

    def call(inner, outer, theta):
        arguments = (
            _convert(inner, numpy.asarray),
            _convert(outer, numpy.asarray),
            tuple(numpy.asarray(t, dtype=numpy.float64) for t in theta),
        )
        value, phis = None, None
        if traceable[0]:
            try:
                value, phis = compiled(*arguments)
            except jax.errors.JAXTypeError:
                traceable[0] = False
        if not traceable[0]:
            value, phis = run(*arguments)
        return np.asarray(value), None if phis is None else _numpy(phis)

    return call


def _torch(torch, function, inner, outer, theta, *, settings, surrogate_shape):
    inner, outer = _convert(inner, torch.as_tensor), _convert(outer, torch.as_tensor)
    params = tuple(torch.tensor(np.asarray(t), dtype=torch.float64, requires_grad=True) for t in theta)
    agent = settings.meta_agent
    with _float64(torch), torch.enable_grad():
        value, phis = _split(function(inner, outer, params, settings))
        if isinstance(value, torch.Tensor) and tuple(value.shape) == surrogate_shape:
            if not value.requires_grad:
                raise ValueError("its surrogate does not depend on theta (no autograd graph): was it detached?")
            (gradient,) = torch.autograd.grad(value.sum(), params[agent], allow_unused=True)
            value = torch.zeros_like(params[agent]) if gradient is None else gradient
    return _numpy(value), None if phis is None else _numpy(phis)


@contextlib.contextmanager
def _float64(torch):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
