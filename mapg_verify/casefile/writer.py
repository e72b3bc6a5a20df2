"""The one TOML writer: a case document (nested dicts of scalars, lists and arrays) as a case file."""

from __future__ import annotations

import numpy as np


def toml_text(document: dict) -> str:
    """``document`` as TOML: top-level scalars first, then each dict as a ``[section]``, a dict in a
    section as ``[section.key]``, and deeper dicts inline (``{ key = value }``)."""
    lines = [f"{key} = {toml_value(v)}" for key, v in document.items() if not isinstance(v, dict)]
    for section, table in ((k, v) for k, v in document.items() if isinstance(v, dict)):
        lines += ["", f"[{section}]"]
        lines += [f"{key} = {toml_value(v)}" for key, v in table.items() if not isinstance(v, dict)]
        for key, sub in ((k, v) for k, v in table.items() if isinstance(v, dict)):
            lines += ["", f"[{section}.{key}]"]
            lines += [f"{toml_value(name)} = {toml_value(v)}" for name, v in sub.items()]
    return "\n".join(lines) + "\n"


def toml_value(v) -> str:
    """One TOML value: booleans, quoted strings, numbers (numpy's as Python's), arrays and lists of
    them, inline tables."""
    if isinstance(v, np.ndarray):
        return toml_value(v.tolist())
    if isinstance(v, np.generic):
        return toml_value(v.item())
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{toml_value(key)} = {toml_value(item)}" for key, item in v.items()) + " }"
    return repr(v)
