"""The one family of user errors: bad input, reported with file, key and reason (exit code 2)."""

from __future__ import annotations


class InputError(Exception):
    """Bad input: ``key`` is a dotted TOML path (``game.transitions``), ``path`` the file, if any.

    A plain exception, not a frozen dataclass: Python sets ``__traceback__`` on
    exceptions as they cross generator-based context managers.
    """

    def __init__(self, key: str, reason: str, path: str | None = None) -> None:
        super().__init__(key, reason, path)
        self.key, self.reason, self.path = key, reason, path

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{where}[{self.key}] {self.reason}"

    def at(self, path: str) -> InputError:
        """The same error, located in file ``path``."""
        return InputError(self.key, self.reason, path)
