"""A progress bar on standard error (redrawn in place on a terminal, a few plain lines otherwise),
and the meter of a plug-in's calls: the one module the mathematics below the top level prints through."""

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


TIMED_CALLS = 3  # calls timed (after a first one, which may compile or warm up) before the duration is printed
ANNOUNCED_SECONDS = 10.0  # work expected to take longer than this is announced, with a progress bar


class CallMeter:
    """The calls of one piece of plug-in work (plug-in ``name``, ``total`` calls, ``what`` it is): after
    :data:`TIMED_CALLS` calls, the expected duration is printed on standard error when it exceeds
    :data:`ANNOUNCED_SECONDS`, and a progress bar runs."""

    def __init__(self, name: str, total: int, what: str) -> None:
        self.name, self.total, self.what, self.calls = name, total, what, 0
        self.started, self.bar = time.perf_counter(), None

    def tick(self) -> None:
        self.calls += 1
        if self.bar is not None:
            self.bar.advance()
        elif self.calls == 1:
            self.started = time.perf_counter()
        elif self.calls == TIMED_CALLS + 1 and self.calls < self.total:
            each = (time.perf_counter() - self.started) / TIMED_CALLS
            if each * self.total > ANNOUNCED_SECONDS:
                print(
                    f"    plug-in {self.name}: {self.what}: {self.total:,} calls, about "
                    f"{each * self.total:,.0f} s ({each * 1e3:.3g} ms a call, from {TIMED_CALLS} timed calls)",
                    file=sys.stderr,
                    flush=True,
                )
                self.bar = Progress(self.total - self.calls, f"    plug-in {self.name}", delay=1.0)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
