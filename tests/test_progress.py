"""Progress: one line per task with an estimate; preparation steps log a few lines, not one
per item, when output is not a terminal."""

from __future__ import annotations

import logging

from audiocil.core import Task
from audiocil.progress import Progress, StreamProgress, duration


class Rec:
    def __init__(self):
        self.steps = []


def test_stream_line_per_task_with_an_estimate(caplog, monkeypatch):
    monkeypatch.setenv("AUDIOCIL_PROGRESS", "lines")
    caplog.set_level(logging.INFO, logger="audiocil.progress")
    tasks = [Task(0, (), 0, 10, ), Task(1, (), 10, 15), Task(2, (), 15, 20), Task(3, (), 20, 25)]
    stream, rec = StreamProgress(tasks), Rec()
    for t, secs in zip(tasks, (100.0, 30.0, 30.0, 30.0), strict=True):
        rec.steps.append({"task": t.index, "time_s": secs})
        stream(rec, t)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[stream]")]
    assert len(lines) == 4
    assert lines[0].startswith("[stream] task 1 of 4 done in 1m40s")
    assert "about 2m30s left" in lines[0]  # 15 new classes at task 0's pace (10 s/class)
    assert "about 1m00s left" in lines[1]  # then at the later tasks' pace (6 s/class)
    assert lines[3].endswith("stream finished")


def test_a_long_step_logs_a_few_lines_off_a_terminal(monkeypatch):
    monkeypatch.setenv("AUDIOCIL_PROGRESS", "lines")
    lines: list[str] = []
    with Progress(1000, "feature cache x/train", "clip", emit=lines.append,
                  min_interval_s=0) as bar:
        for _ in range(1000):
            bar.update(1)
    assert len(lines) <= 12  # the start, one per 10 %, the end
    assert lines[0] == "feature cache x/train: 1000 clip(s)"
    assert lines[-1].startswith("feature cache x/train: 1000/1000 clip(s) (100%)")
    assert duration(3725) == "1h02m" and duration(42) == "42s"


def test_a_bar_on_a_terminal(monkeypatch, capsys):
    monkeypatch.setenv("AUDIOCIL_PROGRESS", "bar")
    lines: list[str] = []
    with Progress(5, "[gm100] rendering", "instrument", emit=lines.append) as bar:
        for _ in range(5):
            bar.update(1, note="Acoustic Grand Piano")
    assert not lines and "5/5" in capsys.readouterr().err
