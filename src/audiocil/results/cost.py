"""The cost of each task in a record's steps: in ``results.json`` as ``cost_per_task`` and in
``results_long.csv`` as rows with an empty ``classifier``.

Figures (:data:`audiocil.engine.cost.COST_KEYS`, written by the task sequencer): ``time_s``
(wall time of the whole task: training, end-of-task work, validation and test passes),
``train_time_s`` (inside ``Trainer.fit`` only), ``train_samples`` (summed over epochs, stages
and DDP ranks), ``train_samples_per_s``, ``peak_host_memory_bytes``,
``peak_accelerator_memory_bytes`` (None without CUDA), ``params``, ``memory_samples`` and
``memory_bytes`` (the exemplar memory: ``{index_bytes, data_bytes}`` in ``results.json``, the
clips it points at as the datamodule holds them; None without one). In the long format
``memory_bytes`` is their sum.
"""

from __future__ import annotations

COST_FIELDS = ("time_s", "train_time_s", "train_samples", "train_samples_per_s",
               "peak_host_memory_bytes", "peak_accelerator_memory_bytes", "params",
               "memory_samples", "memory_bytes")


def cost_per_task(steps: list[dict]) -> list[dict]:
    """One dict per recorded step: ``task`` (and ``trial``/``session`` where the scenario has
    them) and the :data:`COST_FIELDS` (None where a step predates a figure)."""
    out = []
    for s in steps:
        row = {"task": s["task"]}
        for k in ("trial", "session"):
            if k in s:
                row[k] = s[k]
        out.append({**row, **{k: s.get(k) for k in COST_FIELDS}})
    return out


def cost_rows(steps: list[dict]) -> list[dict]:
    """Long-format rows (without the run's columns) of each step's cost and ``n_classes``;
    ``step`` is the task's session in a few-shot run (with its ``trial``), its index
    otherwise."""
    rows = []
    for s in steps:
        step = s.get("session", s["task"])
        trial = s.get("trial")
        for k in ("n_classes", *COST_FIELDS):
            v = s.get(k)
            if isinstance(v, dict):  # memory_bytes: {index_bytes, data_bytes}
                v = sum(v.values())
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                rows.append({"trial": trial, "step": step, "classifier": "", "metric": k,
                             "value": float(v)})
    return rows
