"""The peer protocol: the reference toolbox's iCaRL run on 20 rendered GM instruments.

Renders the protocol's dataset once into a folder with a fixed train/test split, then runs
audiocil on it through ``dataset=folder dataset.loader.split=folders`` with the protocol's
settings, and prints wall time, NME and CNN average incremental accuracy and peak RSS.

The protocol (issue 13):

- data: TimGM6mb programs :data:`PROGRAMS`; per program 60 train and 20 test notes on
  disjoint (pitch, velocity) pairs of pitches 36..84 in steps of 2 and velocities
  25/50/75/100/127 (a seeded order of the 125 pairs; silent renders skipped); 4 s at 16 kHz,
  held 3 s then released; each clip peak-normalised to 0.9; no recording variation. Rendered
  by :func:`audiocil.data.embedded.soundfont.render_events` (``midirenderer``, the embedded
  datasets' version-1 engine, by default) into ``<data-dir>/peer20-<hash>/{train,test}/
  p<program>_<instrument>/<pitch>-<velocity>.wav``; class ids follow program order.
- run: class order by seed 1993 (``scenario.class_order_seed``), 5 initial classes + 3 tasks of
  5; iCaRL with a memory of 200 herding exemplars; ResNet-18 on 128 mel bins x 63 frames
  (n_fft 2048, hop 1024, 4 s clips); SGD lr 0.1 (momentum 0.9, the reference schedule's
  weight decay; its milestones 60/120/170 and 80/120 fall after epoch 20, so the rate stays
  0.1), batch 128; 20 epochs per task.
- validation: audiocil's model selection never sees the test split, and the reference trains
  on all 60 notes, so ``--val`` (default 6) further notes per program are rendered from the
  (pitch, velocity) pairs that follow the test notes in the same seeded order, into
  ``val/``: the train and test notes are the protocol's, unchanged. (``--val 0`` carves
  ``--val-fraction`` of the training notes instead, as the first runs did: 54 notes per
  class then train, a smaller task and a last batch of 14 clips in the first task.)

Reference figures (issue 13, this machine): the reference toolbox 19:27 wall, NME AA 90.4 %,
CNN AA 56.7 %, about 2.8 GB RSS.

Re-runnable: the render is cached by its settings (made once), a finished run is read back,
an interrupted one is resumed (``resume=<run>``; the wall time printed is then that of this
invocation only, and says so). Every invocation appends its figures to ``<out>/timings.jsonl``.

    PYTHONPATH=src python benchmarks/peer_protocol.py --out outputs/peer_protocol
    # a quicker check of the pipeline (a different figure, not the protocol's)
    PYTHONPATH=src python benchmarks/peer_protocol.py --epochs 2 --out outputs/peer_protocol_e2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PROGRAMS = (0, 6, 11, 19, 24, 32, 40, 42, 48, 56, 60, 65, 68, 71, 73, 80, 88, 104, 114, 118)
PITCHES = tuple(range(36, 85, 2))
VELOCITIES = (25, 50, 75, 100, 127)
SAMPLE_RATE, CLIP_SECONDS, HOLD_SECONDS, PEAK = 16000, 4.0, 3.0, 0.9
SILENCE_DB = -90.0  # as the embedded datasets (gm100.SILENCE_DB)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="outputs/peer_protocol", help="the run goes to <out>/run")
    p.add_argument("--data-dir", default="outputs/data", help="where the rendered folder is kept")
    p.add_argument("--root", default=".", help="paths.root_dir (its outputs/cache holds the log-mels)")
    p.add_argument("--epochs", type=int, default=20, help="epochs per task (protocol: 20)")
    p.add_argument("--programs", default=",".join(map(str, PROGRAMS)),
                   help="GM programs, one class each (protocol: the 20 above)")
    p.add_argument("--train", type=int, default=60, help="train notes per program")
    p.add_argument("--test", type=int, default=20, help="test notes per program")
    p.add_argument("--init-cls", type=int, default=5)
    p.add_argument("--increment", type=int, default=5)
    p.add_argument("--memory", type=int, default=200)
    p.add_argument("--val", type=int, default=6,
                   help="validation notes per program, rendered after the test notes "
                        "(0: carve --val-fraction of the training notes instead)")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="with --val 0: share of each class's training notes carved for validation")
    p.add_argument("--engine", choices=("midirenderer", "sampler"), default="midirenderer")
    p.add_argument("--soundfont", default=None, help="default: TimGM6mb.sf2 from pretty_midi")
    p.add_argument("--seed", type=int, default=1993, help="the run's seed (class order: 1993)")
    p.add_argument("--render-seed", type=int, default=0, help="seed of the (pitch, velocity) order")
    p.add_argument("--render-workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=2, help="torch threads of the run")
    p.add_argument("--render-only", action="store_true", help="render the folder and stop")
    p.add_argument("--set", action="append", default=[], help="extra Hydra override, repeatable")
    return p


# ---- the data ----------------------------------------------------------------------------

def class_name(program: int) -> str:
    from audiocil.data.embedded import soundfont as S

    return f"p{program:03d}_{S.instrument_str(program)}"  # sorted names = program order


def pair_order(seed: int, program: int) -> list[tuple[int, int]]:
    """Every (pitch, velocity) of the protocol in a seeded order for one program."""
    pool = [(p, v) for p in PITCHES for v in VELOCITIES]
    order = np.random.default_rng([int(seed), 13, int(program)]).permutation(len(pool))
    return [pool[i] for i in order]


def render_program(task: dict) -> dict:
    """Worker: the first ``train + test + val`` audible notes of one program, peak-normalised,
    written to ``<tmp>/{train,test,val}/<class>/`` in that order."""
    from audiocil.data.embedded import soundfont as S
    from audiocil.data.embedded import write_wav

    program, need = task["program"], task["train"] + task["test"] + task["val"]
    pool, audible, silent, cursor = pair_order(task["seed"], program), [], [], 0
    while len(audible) < need and cursor < len(pool):
        take = pool[cursor:cursor + need - len(audible)]
        cursor += len(take)
        events = [S.NoteEvent(p, v, HOLD_SECONDS, CLIP_SECONDS) for p, v in take]
        clips = S.render_events(task["soundfont"], program, events, sample_rate=SAMPLE_RATE,
                                engine=task["engine"])
        for pv, clip in zip(take, clips, strict=True):
            peak = float(np.abs(clip).max())
            if S.rms_db(clip) < SILENCE_DB or peak == 0.0:
                silent.append(list(pv))
            else:
                audible.append((pv, clip * np.float32(PEAK / peak)))
    if len(audible) < need:
        raise RuntimeError(f"program {program}: only {len(audible)} audible notes of "
                           f"{len(pool)} pairs, {need} needed")
    cls = class_name(program)
    for k, ((pitch, velocity), wave) in enumerate(audible):
        split = "train" if k < task["train"] else "test" if k < task["train"] + task["test"] else "val"
        folder = Path(task["out"]) / split / cls
        folder.mkdir(parents=True, exist_ok=True)
        write_wav(folder / f"{pitch:03d}-{velocity:03d}.wav", wave, SAMPLE_RATE)
    return {"program": program, "silent": silent}


def render(a: argparse.Namespace) -> Path:
    """The rendered folder (made once per settings: :func:`cached_build`)."""
    from audiocil.data.embedded import cached_build
    from audiocil.data.embedded import soundfont as S

    sf_path = S.resolve_soundfont(a.soundfont)
    programs = [int(p) for p in str(a.programs).split(",")]
    settings = {"programs": programs, "train": a.train, "test": a.test, "pitches": list(PITCHES),
                **({"val": a.val} if a.val else {}),  # --val 0: the first runs' folder
                "velocities": list(VELOCITIES), "sample_rate": SAMPLE_RATE,
                "clip_seconds": CLIP_SECONDS, "hold_seconds": HOLD_SECONDS, "peak": PEAK,
                "engine": a.engine, "seed": a.render_seed, "soundfont": sf_path.name,
                "soundfont_sha256": S.file_sha256(sf_path)}

    def build(tmp: Path) -> dict:
        tasks = [{"program": p, "train": a.train, "test": a.test, "val": a.val, "seed": a.render_seed,
                  "engine": a.engine, "soundfont": str(sf_path), "out": str(tmp)}
                 for p in programs]
        silent = {}
        for i, done in enumerate(S.parallel_map(render_program, tasks, a.render_workers)):
            silent[done["program"]] = done["silent"]
            print(f"[peer20] rendered program {done['program']} ({i + 1}/{len(tasks)}, "
                  f"{len(done['silent'])} silent skipped)", flush=True)
        return {"silent_notes": silent}

    return cached_build(a.data_dir, "peer20", settings, build, log=lambda m: print(m, flush=True))


# ---- the run ------------------------------------------------------------------------------

def overrides(a: argparse.Namespace, data: Path) -> list[str]:
    """The protocol's settings as audiocil overrides."""
    return [
        f"paths.root_dir={Path(a.root).resolve()}", "dataset=folder", f"dataset.root={data}",
        "dataset.loader.split=folders", f"dataset.loader.val_fraction={a.val_fraction}",
        f"dataset.loader.clip_seconds={CLIP_SECONDS}", f"dataset.frontend.sample_rate={SAMPLE_RATE}",
        "dataset.frontend.n_fft=2048", "dataset.frontend.hop_length=1024",
        "dataset.frontend.n_mels=128", "dataset.frontend.f_max=8000.0",
        "scenario=standard", f"scenario.init_cls={a.init_cls}", f"scenario.increment={a.increment}",
        "scenario.class_order_seed=1993", f"seed={a.seed}",
        "method=icarl", f"method.memory.size={a.memory}", "method.batch_size=128",
        f"method.first_task.epochs={a.epochs}", f"method.later_tasks.epochs={a.epochs}",
        "method.first_task.optimizer.lr=0.1", "method.later_tasks.optimizer.lr=0.1",
        "backbone=resnet18", "trainer.enable_progress_bar=false", *a.set,
    ]


def finished(run_dir: Path) -> bool:
    path = run_dir / "results.json"
    if not path.exists():
        return False
    r = json.loads(path.read_text())
    return r.get("completed_tasks") == len(r.get("tasks", [])) > 0


def run(a: argparse.Namespace, data: Path) -> dict:
    """Run (or resume, or read) the protocol in ``<out>/run``; returns this invocation's facts."""
    run_dir = (Path(a.out) / "run").resolve()
    if finished(run_dir):
        return {"invocation": "read back (already finished)", "wall_s": None, "peak_rss_mb": None}
    if (run_dir / "config.yaml").exists():
        args, how = [f"resume={run_dir}"], "resumed (wall and RSS of this invocation only)"
    else:
        args, how = [*overrides(a, data), f"hydra.run.dir={run_dir}"], "full run"
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads)}
    cmd = [sys.executable, "-m", "audiocil", *args]
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.monotonic()
    done = subprocess.run(cmd, env=env)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        raise SystemExit(f"audiocil exited with {done.returncode}; re-run this script to resume")
    # ru_maxrss of the largest finished child, in KiB on Linux: the run's peak resident set
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"invocation": how, "wall_s": round(wall, 1), "peak_rss_mb": round(rss, 1)}


def summary(run_dir: Path) -> dict:
    r = json.loads((run_dir / "results.json").read_text())
    nme = r.get("nme") or {}
    return {"cnn_aa": r["avg_incremental_accuracy"], "nme_aa": nme.get("avg_incremental_accuracy"),
            "cnn_per_step": r["accuracy_per_step"], "nme_per_step": nme.get("accuracy_per_step"),
            "time_s_per_task": r.get("time_s_per_task")}


def main(argv: list[str] | None = None) -> None:
    a = build_parser().parse_args(argv)
    t0 = time.monotonic()
    data = render(a)
    print(f"data: {data} ({time.monotonic() - t0:.0f} s to render or find)", flush=True)
    if a.render_only:
        return
    facts = run(a, data)
    out = Path(a.out)
    figures = {**facts, **summary((out / "run").resolve()), "epochs": a.epochs, "data": str(data),
               "protocol": a.epochs == 20 and a.train == 60 and a.test == 20
               and str(a.programs) == ",".join(map(str, PROGRAMS))}
    with open(out / "timings.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(figures) + "\n")
    wall = facts["wall_s"]
    fmt = (lambda s: f"{int(s // 60)}:{int(s % 60):02d}") if wall is not None else None
    print(f"\n== peer protocol ({a.epochs} epochs per task"
          + ("" if figures["protocol"] else "; NOT the full protocol") + ") ==")
    print(f"wall time:  {fmt(wall) if fmt else '-'} ({facts['invocation']})")
    print(f"NME AA:     {figures['nme_aa']:.1f} %   per step {figures['nme_per_step']}")
    print(f"CNN AA:     {figures['cnn_aa']:.1f} %   per step {figures['cnn_per_step']}")
    print(f"peak RSS:   {facts['peak_rss_mb'] or '-'} MB")
    print("reference toolbox (issue 13): 19:27 wall, NME AA 90.4 %, CNN AA 56.7 %, ~2.8 GB RSS")


if __name__ == "__main__":
    main()
