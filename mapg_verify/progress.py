"""A progress bar on standard error: redrawn in place on a terminal, a few plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``total`` steps of ``label``; :meth:`advance` after each, :meth:`close` at the end. Drawn
    only once the work has taken more than ``delay`` seconds, so quick work stays quiet."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None, delay: float = 1.0) -> None:
        self.total, self.label, self.done = max(total, 1), label, 0
        self.stream = stream or sys.stderr
        self.started, self.delay = time.perf_counter(), delay
        self.terminal = getattr(self.stream, "isatty", lambda: False)()
        self.shown_quarter = -1

    def advance(self, note: str = "") -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.started
        if elapsed < self.delay and self.done < self.total:
            return
        if self.terminal:
            filled = int(30 * self.done / self.total)
            bar = "#" * filled + "-" * (30 - filled)
            self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {elapsed:.0f} s {note[:40]:<40}")
            self.stream.flush()
        elif (quarter := 4 * self.done // self.total) > self.shown_quarter and elapsed >= self.delay:
            self.shown_quarter = quarter
            self.stream.write(f"{self.label}: {self.done}/{self.total} ({elapsed:.0f} s)\n")
            self.stream.flush()

    def close(self) -> None:
        if self.terminal and time.perf_counter() - self.started >= self.delay:
            self.stream.write("\n")
            self.stream.flush()
