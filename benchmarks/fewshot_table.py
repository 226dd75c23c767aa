"""Few-shot class-incremental check: every method on one protocol, one CPU budget, a table.

Runs the methods one after the other in this process (``audiocil.run.run``), each on
``experiment=<protocol>`` (default ``gm100_fscil``: 55 base classes + 9 sessions of 5-way
5-shot on the embedded gm100) with ``--trials`` draws of the shots after one base session,
the same base-session budget for every method (``--epochs`` epochs, cosine learning rate
from each method's own initial rate) on a small CNN, then prints a markdown table of
accuracy per session (mean over trials), AA, PD, the last session's base / novel / HM
accuracy and CPI, and writes it to ``<out>/table.md``.

    PYTHONPATH=src python benchmarks/fewshot_table.py --trials 3 --epochs 8 --width 8 \\
        --n-mels 64 --out outputs/fewshot_table
    # any other Hydra override for every method: --set dataset.loader.seed=1
    # a variant of a method, with its own overrides (the label is <method>@<anything>):
    #   --methods prototype,meta_sc,meta_sc@shuffled --set-for meta_sc@shuffled:method.episodes=null

A finished run directory (``<out>/<label>``) is read, an interrupted one resumed.

Incremental-session budgets are each method's own (conf/method/*.yaml) except finetune
(``--finetune-epochs`` epochs on the shots) and iCaRL (``--icarl-epochs``, a memory of
``--icarl-memory`` clips), whose sessions train the whole network.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench_common import add_run_arguments, extra_overrides, run_table

DEFAULT_METHODS = "finetune,prototype,meta_sc,pan,amfo"


def overrides(label: str, a: argparse.Namespace) -> list[str]:
    method = label.split("@")[0]
    out = [f"experiment={a.experiment}", f"method={method}", f"scenario.trials={a.trials}",
           "backbone=smallcnn", f"backbone.width={a.width}", f"dataset.frontend.n_mels={a.n_mels}",
           f"method.first_task.epochs={a.epochs}", "method.first_task.scheduler.kind=cosine",
           f"seed={a.seed}", "trainer.enable_progress_bar=false", "logger=csv"]
    if method == "finetune":
        out += [f"method.later_tasks.epochs={a.finetune_epochs}", "method.later_tasks.scheduler.kind=cosine",
                "trainer.limit_val_batches=0"]
    if method == "icarl":
        out += [f"method.later_tasks.epochs={a.icarl_epochs}", "method.later_tasks.scheduler.kind=cosine",
                f"method.memory.size={a.icarl_memory}", "trainer.limit_val_batches=0"]
    return out + extra_overrides(label, a)


def finished(run_dir: Path) -> bool:
    """A run whose results.json holds every task (read, not re-run)."""
    path = run_dir / "results.json"
    if not path.exists():
        return False
    r = json.loads(path.read_text())
    p = r.get("protocol", {})
    return r.get("completed_tasks") == 1 + p.get("trials", 0) * p.get("sessions", 0)


def fmt(m: float | None, s: float | None = None) -> str:
    if m is None:
        return "-"
    return f"{m:.1f}" if not s else f"{m:.1f} ± {s:.1f}"


def table(results: dict[str, dict]) -> str:
    any_res = next(iter(results.values()))
    n = len(any_res["accuracy_per_session"])
    head = ["method", *[f"A{i}" for i in range(n)], "AA", "PD", "base (last)", "novel (last)",
            "HM (last)", "CPI", "min"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        row = [name, *[fmt(a) for a in r["accuracy_per_session"]], fmt(r["aa"], r["aa_std"]),
               fmt(r["pd"], r["pd_std"]), fmt(r["base_accuracy_per_session"][-1]),
               fmt(r["novel_accuracy_per_session"][-1]), fmt(r["hm_per_session"][-1]),
               fmt(r["cpi"], r["cpi_std"]), f"{sum(r['time_s_per_task']) / 60:.1f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line (tests/test_docs_commands.py parses the documented ones with it)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", default="gm100_fscil")
    p.add_argument("--methods", default=DEFAULT_METHODS, help="comma-separated")
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--epochs", type=int, default=8, help="base-session epochs, every method")
    p.add_argument("--width", type=int, default=8, help="smallcnn width")
    p.add_argument("--n-mels", type=int, default=64)
    p.add_argument("--finetune-epochs", type=int, default=20)
    p.add_argument("--icarl-epochs", type=int, default=5)
    p.add_argument("--icarl-memory", type=int, default=550)
    p.add_argument("--seed", type=int, default=1993)
    add_run_arguments(p, "outputs/fewshot_table")
    return p


def main() -> None:
    a = build_parser().parse_args()
    run_table(a.methods.split(","), a, lambda label: overrides(label, a), finished, table)


if __name__ == "__main__":
    main()
