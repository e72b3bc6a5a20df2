"""The one family of user errors: bad input, reported with file, key and reason (exit code 2)."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class InputError(Exception):
    """Bad input: ``key`` is a dotted TOML path (``game.transitions``), ``path`` the file, if any."""

    key: str
    reason: str
    path: str | None = None

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{where}[{self.key}] {self.reason}"

    def at(self, path: str) -> InputError:
        """The same error, located in file ``path``."""
        return replace(self, path=path)
