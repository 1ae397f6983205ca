"""A progress bar on stderr: redrawn in place on a terminal, a line every few seconds in a
log (a replay run by a job), so both show a long replay is moving."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30
REDRAW_S = 0.2
LOG_EVERY_S = 5.0


class Progress:
    def __init__(self, total: int, label: str, stream: TextIO | None = None,
                 enabled: bool = True) -> None:
        self.total = max(0, total)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._drawn_at = 0.0
        self._line = ""

    def line(self, done: int, note: str) -> str:
        """`label [#####.....]  45%  1,234/2,700  note`."""
        share = min(1.0, done / self.total) if self.total else 1.0
        filled = int(share * WIDTH)
        bar = "#" * filled + "." * (WIDTH - filled)
        return (f"{self.label} [{bar}] {share:4.0%}  {done:,}/{self.total:,}"
                + (f"  {note}" if note else ""))

    def update(self, done: int, note: str = "", force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        every = REDRAW_S if self.tty else LOG_EVERY_S
        if not force and now - self._drawn_at < every:
            return
        self._drawn_at = now
        self._line = self.line(done, note)
        if self.tty:
            self.stream.write("\r\x1b[2K" + self._line)
        else:
            self.stream.write(self._line + "\n")
        self.stream.flush()

    def close(self, done: int, note: str = "") -> None:
        """The final state, on its own line."""
        if not self.enabled:
            return
        self._drawn_at = 0.0
        self.update(done, note, force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
