"""Progress of long loops on stderr: a rich bar on a terminal, else a log line every 30 s."""
from __future__ import annotations

import sys
import time


class LoopProgress:
    """``with LoopProgress("scoring", total, done) as advance: ... advance()`` once per finished item.

    ``done`` items were finished before (a resumed run); the rate and the time left count only
    the items of this process. ``unit`` names one item in the rate ("arch/s"). A ``transient`` bar
    disappears when done (a bar per epoch or per evaluated item). ``enabled=False`` is silent.
    """

    LOG_EVERY_S = 30.0

    def __init__(
        self, label: str, total: int, done: int = 0, unit: str = "arch", enabled: bool = True,
        transient: bool = False,
    ) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = Console(stderr=True)
        self.label, self.unit, self.enabled = label, unit, enabled
        self.bar = Progress(
            TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(), TextColumn("{task.fields[status]}"), console=self.console, transient=transient,
            disable=not (enabled and self.console.is_terminal),
        )
        self.task = self.bar.add_task(label, total=total, completed=done, rate="", status="")
        self.total, self.done = total, done
        self.start = self.last_log = time.perf_counter()
        self.count = 0

    def __enter__(self):
        self.bar.__enter__()
        return self.advance

    def advance(self, status: str = "") -> None:
        """One more item done; ``status`` (e.g. the current losses) is shown after the bar and in the log line."""
        self.count += 1
        now = time.perf_counter()
        elapsed = max(now - self.start, 1e-9)
        rate = format_rate(self.count, elapsed, self.unit)
        self.bar.update(self.task, advance=1, rate=rate, status=status)
        if self.enabled and not self.console.is_terminal and now - self.last_log >= self.LOG_EVERY_S:
            self.last_log = now
            left = (self.total - self.done - self.count) * elapsed / self.count
            print(
                f"{self.label}: {self.done + self.count}/{self.total} ({rate}, about {format_duration(left)} left)"
                + (f" {status}" if status else ""),
                file=sys.stderr, flush=True,
            )

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)


def format_rate(items: int, seconds: float, unit: str) -> str:
    """``"2.50 arch/s"``, or seconds per item below one item per second (``"386 s/arch"``)."""
    if items >= seconds:
        return f"{items / seconds:.2f} {unit}/s"
    per_item = seconds / items
    return f"{per_item:.1f} s/{unit}" if per_item < 10 else f"{per_item:.0f} s/{unit}"


def format_duration(seconds: float) -> str:
    """``"40 s"``, ``"7 min"``, ``"2 h 05 min"``: as precise as a person reads a time left."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"
