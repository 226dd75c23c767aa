"""Progress a person can follow, that does not flood a log file.

* :class:`Progress`: a bar for a long preparation step (rendering an embedded dataset,
  extracting features into the cache). On a terminal, a tqdm bar on stderr; otherwise (a log
  file, a batch job) one log line at the start, about one per 10 % (at most one per 30 s),
  and one at the end.
* :class:`StreamProgress`: one line per task for the whole task stream (``task 2 of 5 done
  in 1m02s · elapsed 3m10s · about 4m left``), logged after each task, above the next
  task's Lightning bar. The estimate weighs the remaining tasks by their new classes at the
  pace of the tasks after the first (the first usually has its own schedule), or of the
  first while no later task has finished.

``AUDIOCIL_PROGRESS=lines`` forces the line form on a terminal, ``=bar`` the bar elsewhere.
This module imports nothing of audiocil: every layer may use it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable

log = logging.getLogger("audiocil.progress")


def interactive(stream=None) -> bool:
    """True when progress should be drawn as a bar (stderr is a terminal)."""
    mode = os.environ.get("AUDIOCIL_PROGRESS", "").lower()
    if mode in ("bar", "lines"):
        return mode == "bar"
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def duration(seconds: float) -> str:
    """``1h02m``, ``3m10s``, ``42s``."""
    s = int(round(max(seconds, 0)))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class Progress:
    """A progress bar (terminal) or a few log lines (elsewhere) for ``total`` items.

    >>> with Progress(3, "rendering gm100", "instrument") as bar:  # doctest: +SKIP
    ...     for _ in range(3):
    ...         bar.update(1, note="Acoustic Grand Piano")
    """

    def __init__(self, total: int, desc: str, unit: str = "it",
                 emit: Callable[[str], None] | None = None, min_interval_s: float = 30.0) -> None:
        self.total, self.desc, self.unit = int(total), desc, unit
        self.emit = emit or log.info  # where the lines go when there is no terminal
        self.done, self.t0 = 0, time.monotonic()
        self.min_interval_s = min_interval_s
        self._last_t, self._last_decile = self.t0, 0
        self.bar = None
        if interactive():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=desc, unit=unit, file=sys.stderr,
                            dynamic_ncols=True, leave=True)
        else:
            self.emit(f"{desc}: {self.total} {unit}(s)")

    def update(self, n: int = 1, note: str | None = None) -> None:
        self.done += n
        if self.bar is not None:
            if note:
                self.bar.set_postfix_str(note[:40], refresh=False)
            self.bar.update(n)
            return
        now = time.monotonic()
        decile = int(10 * self.done / max(self.total, 1))
        if self.done >= self.total or (decile > self._last_decile
                                       and now - self._last_t >= self.min_interval_s):
            self._line(now)
            self._last_t, self._last_decile = now, decile

    def _line(self, now: float) -> None:
        el = now - self.t0
        rate = self.done / el if el > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        self.emit(f"{self.desc}: {self.done}/{self.total} {self.unit}(s) "
                  f"({100 * self.done // max(self.total, 1)}%), {rate:.1f}/s, elapsed "
                  f"{duration(el)}" + (f", about {duration(left)} left" if self.done < self.total
                                       else ""))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.done < self.total and self.done > 0:
            self._line(time.monotonic())

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StreamProgress:
    """The task stream's line, called after each task as ``fn(record, task)``.

    Args:
        tasks: every task of the stream (their ``new`` class counts weigh the estimate).
        start: the first task this invocation runs (a resumed run starts later).
    """

    def __init__(self, tasks, start: int = 0) -> None:
        self.weights = [max(int(getattr(t, "new", 1)), 1) for t in tasks]
        self.n, self.start, self.t0 = len(tasks), start, time.monotonic()
        self.seconds: dict[int, float] = {}
        if start < self.n:
            log.info("task stream: %d task(s)%s", self.n - start,
                     f" (resuming at task {start + 1} of {self.n})" if start else "")

    def estimate(self, done: int) -> float | None:
        """Seconds left once tasks ``0..done-1`` are finished, or None without a pace."""
        later = [i for i in self.seconds if i > 0]
        basis = later or list(self.seconds)
        if not basis:
            return None
        pace = sum(self.seconds[i] for i in basis) / sum(self.weights[i] for i in basis)
        return pace * sum(self.weights[done:])

    def __call__(self, record, task) -> None:
        steps = getattr(record, "steps", [])
        took = next((s.get("time_s") for s in steps if s.get("task") == task.index), None)
        if took is not None:
            self.seconds[task.index] = float(took)
        done = task.index + 1
        left = self.estimate(done)
        parts = [f"task {done} of {self.n} done" + (f" in {duration(took)}" if took else ""),
                 f"elapsed {duration(time.monotonic() - self.t0)}"]
        if done < self.n:
            parts.append(f"about {duration(left)} left" if left is not None else "")
        else:
            parts.append("stream finished")
        log.info("[stream] %s", " · ".join(p for p in parts if p))
