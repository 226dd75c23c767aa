"""The standard benchmark table: every standard-scenario method on one protocol and budget.

The reference toolbox's B10-Inc10 protocol (10 tasks of 10 classes, class order seed 1993)
on the embedded gm100, one seed, one CPU-sized budget shared by every method: a small CNN
on 64-bin log-mels at a 40 ms hop (101 frames per 4 s note), ``--epochs`` epochs in every
training stage (each method's own learning rate, a cosine schedule), the same exemplar
budget (``--memory`` clips in all, 10 per class after the last task, for methods that keep a
memory; methods that keep a fixed number per class get ``memory / classes``).
Each method runs in this process (``audiocil.run.run``) into ``<out>/<label>``; a finished
run is read, an interrupted one resumed, so the script can be stopped and started again.
It prints and writes ``<out>/table.md``: AA, last accuracy and forgetting of the method's
main classifier (and NME where it has one), parameters after the last task, exemplars kept
and minutes per task.

    PYTHONPATH=src python benchmarks/standard_table.py --out outputs/standard_table
    # one method, or a variant with its own overrides (the label is <method>@<anything>):
    #   --methods icarl,icarl@long --set-for icarl@long:method.later_tasks.epochs=8
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench_common import add_run_arguments, compose, extra_overrides, run_table, stage_nodes
from omegaconf import OmegaConf

METHODS = ("finetune,replay,ewc,lwf,icarl,gem,bic,wa,podnet,der,coil,acil,ds_al,foster,beef,"
           "fetril,joint")


def overrides(label: str, a: argparse.Namespace) -> list[str]:
    """The protocol and budget for one method (a label is ``<method>[@variant]``)."""
    method = label.split("@")[0]
    common = [f"dataset={a.dataset}", f"method={method}", "scenario=standard",
              f"scenario.init_cls={a.init_cls}", f"scenario.increment={a.increment}",
              "backbone=smallcnn", f"backbone.width={a.width}", f"dataset.frontend.n_mels={a.n_mels}",
              f"dataset.frontend.hop_length={a.hop_length}",
              f"seed={a.seed}", "trainer.enable_progress_bar=false", "logger=csv",
              "trainer.limit_val_batches=0", f"method.batch_size={a.batch_size}"]
    cfg = compose(common, a.root)
    out = list(common)
    for node in stage_nodes(cfg.method):
        stage = OmegaConf.select(cfg, node)
        if int(stage.epochs) > 0:  # a closed-form stage stays closed-form
            out.append(f"{node}.epochs={a.epochs}")
        if stage.get("scheduler") is not None:
            out.append(f"{node}.scheduler.kind=cosine")
    mem = cfg.method.get("memory")
    if mem:
        if mem.get("size") is not None:
            out.append(f"method.memory.size={a.memory}")
        else:
            n_classes = a.init_cls + a.increment * ((100 - a.init_cls) // a.increment)
            out.append(f"method.memory.per_class={a.memory // n_classes}")
    return out + extra_overrides(label, a)


def finished(run_dir: Path) -> bool:
    path = run_dir / "results.json"
    if not path.exists():
        return False
    r = json.loads(path.read_text())
    return r.get("completed_tasks") == len(r.get("tasks", [])) > 0


def fmt(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def table(results: dict[str, dict], a: argparse.Namespace) -> str:
    head = ["method", "classifier", "AA", "last", "forgetting", "NME AA", "NME last",
            "params (M)", "exemplars", "min/task"]
    lines = [f"gm100, B{a.init_cls}-Inc{a.increment}, seed {a.seed}, {a.epochs} epochs per stage, "
             f"smallcnn width {a.width}, {a.n_mels} mels, hop {a.hop_length}, memory {a.memory}", "",
             "| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for label, r in results.items():
        name = next(iter(r.get("classifiers", {"cnn": None})))
        nme = r.get("nme") or {}
        minutes = sum(r["time_s_per_task"]) / 60 / max(len(r["time_s_per_task"]), 1)
        row = [label, name, fmt(r["avg_incremental_accuracy"]), fmt(r["last_accuracy"]),
               fmt(r["forgetting"]), fmt(nme.get("avg_incremental_accuracy")),
               fmt(nme.get("last_accuracy")), f"{r['params_per_task'][-1] / 1e6:.2f}",
               str(r["memory_samples"][-1]), f"{minutes:.1f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line (tests/test_docs_commands.py parses the documented ones with it)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=METHODS, help="comma-separated labels")
    p.add_argument("--dataset", default="gm100")
    p.add_argument("--init-cls", type=int, default=10)
    p.add_argument("--increment", type=int, default=10)
    p.add_argument("--epochs", type=int, default=4, help="epochs of every training stage")
    p.add_argument("--memory", type=int, default=1000,
                   help="exemplars in all (PyCIL keeps 2000 of CIFAR-100's 50 000 clips; gm100 has "
                        "10 000 training clips: 1000 is 10 per class at the end)")
    p.add_argument("--width", type=int, default=16, help="smallcnn width")
    p.add_argument("--n-mels", type=int, default=64)
    p.add_argument("--hop-length", type=int, default=640, help="log-mel hop at 16 kHz (40 ms)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=1993)
    add_run_arguments(p, "outputs/standard_table", threads=2)
    return p


def main() -> None:
    a = build_parser().parse_args()
    run_table(a.methods.split(","), a, lambda label: overrides(label, a), finished,
              lambda results: table(results, a))


if __name__ == "__main__":
    main()
