"""The plug-in API, where plug-in authors import it: the records a plug-in receives
(:class:`Batch`, :class:`Settings`) and the functions that draw and enumerate a plug-in
(defined in :mod:`mapg_verify.estimators.plugins`)."""

from mapg_verify.estimators.plugins import Batch, Settings, draw_plugin, plugin_expectation

__all__ = ["Batch", "Settings", "draw_plugin", "plugin_expectation"]
