"""The multi-label CIL table: avg F1, avg mAP and forgetting of every multi-label method.

Runs ``experiment=gmmix50_iodfd`` (gmmix50, 30 base classes + 4 phases of 5, a small CNN;
see ``conf/experiment/gmmix50_iodfd.yaml``) once per method with the same seed and budget,
then prints a markdown table in the shape of Table 1 of Mulimani & Mesaros (ICASSP 2024)
and writes it, with every run's figures, under ``--out``:

    PYTHONPATH=src python benchmarks/multilabel_table.py
    PYTHONPATH=src python benchmarks/multilabel_table.py --methods ft iodfd -- seed=7

Hydra overrides after ``--`` apply to every run. A method whose run directory already holds
a finished run is not run again (delete ``--out`` to start over); an interrupted run is
resumed from its last finished phase.

**Phase 0 is trained once.** In phase 0 every class is new and no previous learner exists,
so all seven methods train the same thing: BCE over the base classes on the same clips
with the same labels, schedule, sampler and seed (``at`` trains on every seen clip with every
seen label, which in phase 0 is the same set). The script trains phase 0 with the first
method and starts the others from its checkpoint (``--no-share-phase0`` trains it in every
run). It checks that the phase-0 settings agree before sharing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from audiocil.config import compose

METHODS = ["indl", "ft", "fe", "at", "iod", "ifd", "iodfd"]
COLUMNS = [("avg_macro_f1", "avg macro-F1"), ("avg_map", "avg mAP"),
           ("avg_forgetting", "forgetting (avg Fr, F1)"), ("last_macro_f1", "last macro-F1"),
           ("last_map", "last mAP"), ("avg_micro_f1", "avg micro-F1"),
           ("avg_map_thresholded", "avg mAP (thresholded)")]


#: the method settings that act in phase 0 (the rest only from phase 1 on)
PHASE0_KEYS = ("_target_", "batch_size", "memory", "first_task", "sampler", "pos_weight")


def phase0_settings(cfg) -> dict:
    from omegaconf import OmegaConf

    m = OmegaConf.to_container(cfg.method, resolve=True)
    rest = OmegaConf.to_container(cfg, resolve=True)
    rest.pop("method")
    return {"method": {k: m.get(k) for k in PHASE0_KEYS}, "rest": rest}


def start_from_shared_phase0(cfg, source: Path, run_dir: Path) -> bool:
    """Seed ``run_dir`` with phase 0 of the run in ``source``; False if it cannot be shared."""
    from omegaconf import OmegaConf

    from audiocil.engine import checkpoints
    from audiocil.run import load_strategy

    if (run_dir / "checkpoints").exists():
        return True  # already started (resumed as it is)
    src_cfg = OmegaConf.load(source / "config.yaml")
    if phase0_settings(src_cfg) != phase0_settings(cfg):
        return False
    state = checkpoints.load(source / "checkpoints" / "task_0.pt")
    load_strategy(cfg, state)  # the phase-0 state loads into this method as it is
    state["config"] = OmegaConf.to_container(cfg, resolve=True)
    state["record"]["meta"]["method"] = cfg.method.name
    state["record"]["meta"]["phase0_from"] = str(source)
    (run_dir / "checkpoints").mkdir(parents=True)
    checkpoints.atomic_save(state, run_dir / "checkpoints" / "task_0.pt")
    return True


def run_method(method: str, out: Path, overrides: list[str], phase0: Path | None = None) -> dict:
    from audiocil.run import run

    cfg = compose(["experiment=gmmix50_iodfd", f"method={method}",
                   "trainer.enable_progress_bar=false", *overrides])
    run_dir = out / method
    if phase0 is not None and phase0 != run_dir:
        if not start_from_shared_phase0(cfg, phase0, run_dir):
            print(f"== {method}: phase-0 settings differ from {phase0.name}'s: trains its own")
    t0 = time.time()
    res = run(cfg, run_dir)
    res["wall_s"] = time.time() - t0
    return res


PAPER_ORDER = ["ft", "fe", "at", "indl", "iod", "ifd", "iodfd"]


def in_paper_order(results: dict[str, dict]) -> dict[str, dict]:
    rank = {m: i for i, m in enumerate(PAPER_ORDER)}
    return dict(sorted(results.items(), key=lambda kv: rank.get(kv[0], len(rank))))


def markdown(results: dict[str, dict]) -> str:
    head = "| method | " + " | ".join(name for _, name in COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(COLUMNS)
    rows = []
    for m, r in results.items():
        cells = ["n/a" if r.get(k) is None else f"{r[k]:.1f}" for k, _ in COLUMNS]
        rows.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *rows])


def per_phase(results: dict[str, dict]) -> str:
    lines = ["| method | macro-F1 per phase | mAP per phase | Fr per phase (F1) |", "|---|---|---|---|"]
    for m, r in results.items():
        def f(xs):
            return " / ".join("n/a" if x is None else f"{x:.1f}" for x in xs)
        lines.append(f"| {m} | {f(r['macro_f1_per_phase'])} | {f(r['map_per_phase'])} | "
                     f"{f(r['forgetting_per_phase'])} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line (tests/test_docs_commands.py parses the documented ones with it)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--out", type=Path, default=Path("outputs/multilabel_table"))
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: the fastest for a small CNN on a shared machine)")
    ap.add_argument("--no-share-phase0", action="store_true",
                    help="train phase 0 in every run instead of once")
    ap.add_argument("--phase0-from", type=Path, default=None,
                    help="the run directory whose phase 0 the others start from (default: "
                         "the first method's); lets a second process share it")
    ap.add_argument("--set", action="append", default=[],
                    help="extra Hydra override for every run, repeatable (as after --)")
    return ap


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    args = build_parser().parse_args(argv)
    extra = [*args.set, *extra]

    import torch

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    phase0 = None if args.no_share_phase0 else (args.phase0_from or args.out / args.methods[0])
    for m in args.methods:
        print(f"== {m}", flush=True)
        results[m] = run_method(m, args.out, extra, phase0)
        print(f"== {m}: done in {results[m]['wall_s']:.0f} s", flush=True)
    results = in_paper_order(results)
    table = markdown(results)
    phases = per_phase(results)
    command = "PYTHONPATH=src python benchmarks/multilabel_table.py " + " ".join(
        [*(["--methods", *args.methods] if args.methods != METHODS else []),
         *(["--no-share-phase0"] if args.no_share_phase0 else []),
         *(["--", *extra] if extra else [])])
    text = f"{command.strip()}\n\n{table}\n\n{phases}\n"
    (args.out / "table.md").write_text(text)
    (args.out / "summary.json").write_text(json.dumps(
        {m: {k: r.get(k) for k in ("avg_macro_f1", "avg_map", "avg_forgetting", "last_macro_f1",
                                     "last_map", "avg_micro_f1", "avg_map_thresholded",
                                     "macro_f1_per_phase", "map_per_phase", "forgetting_per_phase",
                                     "f1_matrix", "time_s_per_task", "wall_s")}
         for m, r in results.items()}, indent=1))
    print("\n" + text)


if __name__ == "__main__":
    main()
