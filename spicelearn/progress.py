"""A minimal progress bar for long runs, on stderr; it appears only after a second.

On a terminal the bar redraws in place (``\\r``) at most five times a second. Into
a log file or a pipe it writes a plain line every ``log_every`` seconds (default
10) instead, so a long run leaves a few lines, not kilobytes of redraws.
"""

from __future__ import annotations

import sys
import time

__all__ = ["Progress", "request_stop"]

_stop_requested = False


def request_stop(requested: bool = True) -> None:
    """Ask every long loop to stop: its next :meth:`Progress.update` (every tick of a run, every job of a sweep)
    raises ``KeyboardInterrupt``. The command line's SIGTERM handler raises one at once as well; this one comes
    where that was swallowed on the way (a signal handler's exception raised inside a finaliser is only printed,
    and a sweep of a million points went on). ``False`` withdraws the request."""
    global _stop_requested
    _stop_requested = requested


class Progress:
    """Report ``done/total`` steps (or other ``unit``) with rate and time left, once the run has lasted ``delay`` s.

    Parameters
    ----------
    total : int
    label : str
    enabled : bool
    delay : float
        Seconds before the bar first appears; short runs stay silent.
    stream : file, optional
        Default stderr.
    unit : str
    log_every : float
        Seconds between lines where ``stream`` is not a terminal.
    """

    def __init__(self, total: int, label: str = "train", enabled: bool = True, delay: float = 1.0, stream=None,
                 unit: str = "steps", log_every: float = 10.0):
        self.total, self.label, self.enabled, self.delay, self.unit = total, label, enabled, delay, unit
        self.stream = stream or sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.terminal = bool(isatty and isatty())
        self.interval = 0.2 if self.terminal else log_every
        self.t0 = time.perf_counter()
        self._last = self.t0 - self.interval + delay  # the first report comes after `delay`
        self._shown = False
        self._done = -1  # count last drawn
        self._count = 0  # count last reported

    def update(self, done: int) -> None:
        if _stop_requested:
            raise KeyboardInterrupt
        self._count = done
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.t0 < self.delay or now - self._last < self.interval:
            return
        self._draw(done, now)

    def _draw(self, done: int, now: float) -> None:
        elapsed = now - self.t0
        self._last, self._done = now, done
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (self.total - done) / rate if rate > 0 else float("nan")
        text = f"{done}/{self.total} {rate:,.3g} {self.unit}/s, {elapsed:.1f} s, {left:.1f} s left"
        if self.terminal:
            width = 30
            fill = int(width * done / max(self.total, 1))
            self.stream.write(f"\r{self.label} [{'#' * fill}{'.' * (width - fill)}] {text} ")
        else:
            self.stream.write(f"{self.label}: {text}\n")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        """End the bar, showing the last reported count (not the total: a run may stop early)."""
        if self._shown:
            if self._done != self._count:
                self._draw(self._count, time.perf_counter())
            if self.terminal:
                self.stream.write("\n")
            self.stream.flush()
