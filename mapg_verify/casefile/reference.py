"""The case-file reference, generated from the records themselves (``spec/case.py``) and the
reader's table of keys, so that the documentation cannot drift from the code: the docs site's
"Case files" page is this function's output (``docs/hooks.py``)."""

from __future__ import annotations

import dataclasses
import inspect

from mapg_verify.casefile import reader
from mapg_verify.spec.case import (
    Case,
    CheckSettings,
    DerivativeSettings,
    EstimatorSettings,
    InnerLoop,
    PaperSettings,
)

RECORDS = {"inner": InnerLoop, "estimators": EstimatorSettings, "checks": CheckSettings}
RECORDS |= {"derivatives": DerivativeSettings, "paper": PaperSettings}
KEY_OF_FIELD = {"models": "model"}  # a record field read from a key of another name


def case_file_reference() -> str:
    """Markdown: the defaults as the reader states them, then one table per section, each key
    with the record field it sets, its type and its default (``required`` where it has none)."""
    lines = ["## Keys and defaults", "", inspect.cleandoc(reader.__doc__ or ""), ""]
    for section, keys in reader.SECTIONS.items():
        record = RECORDS.get(section)
        lines += [f"## `[{section}]`" if keys is not None or section == "game" else f"## `{section}`", ""]
        if section == "game":
            lines += ["A built-in game's name and options, or an inline game: `python -m mapg_verify list`.", ""]
            continue
        if keys is None:
            lines += ["The case's name (default: the file's stem).", ""]
            continue
        if record is not None:
            lines += [inspect.cleandoc(record.__doc__ or ""), ""]
        lines += ["| key | record field | type | default |", "|---|---|---|---|"]
        fields = {KEY_OF_FIELD.get(f.name, f.name): f for f in dataclasses.fields(record)} if record else {}
        for key in keys:
            field = fields.pop(key, None)
            lines.append(_row(key, record, field))
        lines += [_row("", record, field) for field in fields.values()]  # fields set from other keys
        lines.append("")
    lines += ["## The `Case` record", "", inspect.cleandoc(Case.__doc__ or ""), ""]
    lines += ["| key | record field | type | default |", "|---|---|---|---|"]
    lines += [_row("", Case, field) for field in dataclasses.fields(Case)]
    return "\n".join(lines) + "\n"


def _row(key: str, record, field) -> str:
    if field is None:
        return f"| `{key}` | | | |"
    if field.default is not dataclasses.MISSING:
        default = f"`{field.default!r}`"
    elif field.default_factory is not dataclasses.MISSING:
        default = f"`{field.default_factory()!r}`"
    else:
        default = "required, or as the reader's defaults say"
    name, kind = f"`{record.__name__}.{field.name}`", str(field.type).replace("|", "\\|")
    return f"| {f'`{key}`' if key else '(derived)'} | {name} | `{kind}` | {default} |"
