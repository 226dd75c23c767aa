"""Finding runs and grouping them: what a report is made of.

A run is a directory with ``results_long.csv`` and ``config.yaml`` (what every run writes);
nothing else is read, so any scenario works. A Hydra job directory (it has ``.hydra/``)
without results, or whose results stop before its last task, is listed as failed or
incomplete with what the sweep's callback wrote about it (``job_status.json``).

Runs that differ only by seed or class order form a group (the seeds are its replicates);
``compare=KEY`` groups by the method and one config key instead (``method.lamda``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from audiocil.results.io import read_long

log = logging.getLogger(__name__)

#: config keys that do not make another experiment: the replicate keys (seed, class order)
#: and where or how a run is run
IGNORED = ("seed", "scenario.class_order_seed", "scenario.class_order", "scenario.shot_seed",
           "paths.", "resume", "logger", "task_name", "optimized_metric", "hydra",
           "trainer.enable_progress_bar", "trainer.devices", "trainer.accelerator",
           "trainer.strategy", "data.num_workers", "data.verify_cache", "dataset.root",
           "dataset.loader.root", "dataset.loader.data_dir", "dataset.loader.cache_dir")
STATUS_FILE = "job_status.json"


def flatten(node, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists become tuples."""
    out: dict = {}
    if isinstance(node, dict):
        for k, v in node.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(node, list):
        out[prefix[:-1]] = tuple(json.dumps(v, sort_keys=True) if isinstance(v, (dict, list))
                                 else v for v in node)
    else:
        out[prefix[:-1]] = node
    return out


def ignored(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) or key.startswith(k + ".")
               for k in IGNORED)


@dataclass
class Run:
    """One run: its directory, flat config and long-format rows."""

    path: Path
    config: dict
    rows: list[dict]

    def get(self, key: str, default=None):
        return self.config.get(key, default)

    @property
    def method(self) -> str:
        return str(self.get("method.name") or (self.rows[0]["method"] if self.rows else "?"))

    @property
    def dataset(self) -> str:
        return str(self.get("dataset.name") or (self.rows[0]["dataset"] if self.rows else "?"))

    @property
    def scenario(self) -> str:
        return str(self.get("scenario.name") or (self.rows[0]["scenario"] if self.rows else "?"))

    @property
    def seed(self):
        return self.get("seed")

    @property
    def name(self) -> str:
        return self.path.name

    def run_value(self, metric: str) -> float | None:
        """A run-level row of no classifier (``completed_tasks``, ``tasks``)."""
        for r in self.rows:
            if r["classifier"] == "" and r["metric"] == metric and r["step"] is None:
                return r["value"]
        return None

    @property
    def complete(self) -> bool:
        done, total = self.run_value("completed_tasks"), self.run_value("tasks")
        return done is None or total is None or done >= total

    def classifiers(self) -> list[str]:
        return list(dict.fromkeys(r["classifier"] for r in self.rows if r["classifier"]))

    def trials(self) -> list[int | None]:
        return sorted({r["trial"] for r in self.rows if r["classifier"]},
                      key=lambda t: -1 if t is None else t)


@dataclass
class Problem:
    """A job that has no complete results: failed, killed, or still running."""

    path: Path
    status: str
    error: str | None = None
    overrides: list[str] = field(default_factory=list)
    completed: str | None = None


@dataclass
class Group:
    """Runs that differ only by seed or class order (or share a ``compare`` value)."""

    label: str
    runs: list[Run]
    key: tuple = ()

    @property
    def method(self) -> str:
        return self.runs[0].method

    @property
    def seeds(self) -> list:
        return sorted({r.seed for r in self.runs}, key=str)


def _overrides(job: Path) -> list[str]:
    p = job / ".hydra" / "overrides.yaml"
    if p.is_file():
        try:
            return [str(o) for o in OmegaConf.to_container(OmegaConf.load(p)) or []]  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - a damaged file must not stop the report
            return []
    return []


def _status(job: Path) -> dict:
    p = job / STATUS_FILE
    if p.is_file():
        try:
            return json.loads(p.read_text())
        except ValueError:
            return {}
    return {}


def _marker(job: Path) -> dict:
    """What a run's own FAILED / PREEMPTED file says (:mod:`audiocil.engine.rundir`)."""
    from audiocil.engine import rundir

    state = rundir.status(job)
    if state == "failed":
        return {"status": "FAILED", "error": rundir.failure_reason(job)}
    if state == "preempted":
        return {"status": "PREEMPTED", "error": "stopped by a signal; resume=<this directory> continues it"}
    return {}


def _candidates(path: Path) -> Iterable[Path]:
    if (path / "results_long.csv").is_file() or (path / ".hydra").is_dir():
        yield path
        return
    found = {p.parent for p in path.rglob("results_long.csv")}
    found |= {p.parent for p in path.rglob(".hydra") if p.is_dir()}
    found = {p for p in found if "report" not in p.relative_to(path).parts}

    def order(p: Path):
        return [(0, int(x), "") if x.isdigit() else (1, 0, x) for x in p.relative_to(path).parts]

    yield from sorted(found, key=order)


def load_runs(paths: Sequence[str | Path]) -> tuple[list[Run], list[Problem]]:
    """The complete runs under ``paths`` (run or sweep directories, any depth), and the jobs
    that have no complete results."""
    runs, problems, seen = [], [], set()
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such run or sweep directory")
        for job in _candidates(path):
            if job.resolve() in seen:
                continue
            seen.add(job.resolve())
            status = _status(job) or _marker(job)
            long_csv, cfg_file = job / "results_long.csv", job / "config.yaml"
            if not long_csv.is_file() or not cfg_file.is_file():
                problems.append(Problem(job, status.get("status", "no results"),
                                        status.get("error"), _overrides(job)))
                continue
            cfg = OmegaConf.to_container(OmegaConf.load(cfg_file), resolve=False)
            run = Run(job, flatten(cfg), read_long(long_csv))
            if status.get("status") == "FAILED" or not run.complete:
                done, total = run.run_value("completed_tasks"), run.run_value("tasks")
                problems.append(Problem(job, status.get("status", "incomplete"),
                                        status.get("error"), _overrides(job),
                                        f"{done:.0f} of {total:.0f} tasks" if total else None))
                continue
            runs.append(run)
    return runs, problems


def _fmt(v) -> str:
    if isinstance(v, tuple):
        return "[" + ",".join(str(x) for x in v) + "]"
    return str(v)


def group_runs(runs: Sequence[Run], compare: str | None = None) -> tuple[list[Group], list[str]]:
    """Groups of replicates, and notes on what else differs inside a group.

    Without ``compare``: runs whose configs are equal but for :data:`IGNORED` keys; the
    label is the method and the keys in which the groups differ. With ``compare``: the
    method and the value of that key.
    """
    notes: list[str] = []
    if compare is not None:
        missing = [r.name for r in runs if compare not in r.config]
        if missing:
            raise KeyError(f"--compare {compare}: not a config key of run(s) {', '.join(missing)}")
    keyed: dict[tuple, list[Run]] = {}
    for r in runs:
        if compare is not None:
            key = (("method.name", r.method), ("dataset.name", r.dataset),
                   ("scenario.name", r.scenario), (compare, _fmt(r.config[compare])))
        else:
            key = tuple(sorted((k, _fmt(v)) for k, v in r.config.items() if not ignored(k)))
        keyed.setdefault(key, []).append(r)
    # what tells apart the groups of one method (a sweep over one of its settings)
    by_method: dict[str, list[dict]] = {}
    for key in keyed:
        by_method.setdefault(dict(key).get("method.name", "?"), []).append(dict(key))
    varying: dict[str, list[str]] = {}
    for m, every in by_method.items():
        names = sorted({n for d in every for n in d})
        varying[m] = [n for n in names if len({d.get(n) for d in every}) > 1]
    groups = []
    for key, members in keyed.items():
        d = dict(key)
        vary = [compare] if compare else varying.get(d.get("method.name", "?"), [])
        parts = [f"{n}={d.get(n, '-')}" for n in vary[:3]]
        if len(vary) > 3:
            parts.append("...")
            notes.append(f"{members[0].method}: its groups differ in {', '.join(vary)}")
        label = members[0].method + (f" ({', '.join(parts)})" if parts else "")
        groups.append(Group(label, members, key))
        if compare is not None:
            inner = {k for r in members for k, v in r.config.items()
                     if not ignored(k) and any(o.config.get(k) != v for o in members)}
            if inner:
                notes.append(f"{label}: its runs also differ in {', '.join(sorted(inner)[:6])}")
    return groups, list(dict.fromkeys(notes))


def sections(groups: Sequence[Group]) -> list[tuple[str, list[Group]]]:
    """Groups split by (dataset, scenario): one set of figures and tables each."""
    out: dict[str, list[Group]] = {}
    for g in groups:
        out.setdefault(f"{g.runs[0].dataset}-{g.runs[0].scenario}", []).append(g)
    return list(out.items())
