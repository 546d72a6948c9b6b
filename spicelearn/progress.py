"""A minimal progress bar for long runs (stderr; appears only after a second)."""

from __future__ import annotations

import sys
import time


class Progress:
    """Report ``done/total`` steps (or other ``unit``) with rate and time left, once the run has lasted ``delay`` s.

    Parameters
    ----------
    total : int
    label : str
    enabled : bool
    delay : float
        Seconds before the bar first appears; short runs stay silent.
    """

    def __init__(self, total: int, label: str = "train", enabled: bool = True, delay: float = 1.0, stream=None,
                 unit: str = "steps"):
        self.total, self.label, self.enabled, self.delay, self.unit = total, label, enabled, delay, unit
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self._last = 0.0
        self._shown = False
        self._done = -1  # count last drawn
        self._count = 0  # count last reported

    def update(self, done: int) -> None:
        self._count = done
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.t0 < self.delay or (now - self._last < 0.2 and done < self.total):
            return
        self._draw(done, now)

    def _draw(self, done: int, now: float) -> None:
        elapsed = now - self.t0
        self._last, self._done = now, done
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (self.total - done) / rate if rate > 0 else float("nan")
        width = 30
        fill = int(width * done / max(self.total, 1))
        self.stream.write(f"\r{self.label} [{'#' * fill}{'.' * (width - fill)}] {done}/{self.total} "
                          f"{rate:,.3g} {self.unit}/s, {elapsed:.1f} s, {left:.1f} s left ")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        """End the bar's line, showing the last reported count (not the total: a run may stop early)."""
        if self._shown:
            if self._done != self._count:
                self._draw(self._count, time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()
