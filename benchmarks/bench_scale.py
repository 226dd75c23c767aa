"""Scale benchmark (issue 13): memory of a large run, and the embedded datasets' build times.

    make bench-scale                                   # both parts
    make bench-scale ARGS="memory --clips 50000 --batches 200"
    make bench-scale ARGS="memory --ddp-copy"          # also two ranks with the old copy (2 x 2.6 GB)
    make bench-scale ARGS="build --datasets gm100"     # from nothing, into a temporary folder

``memory`` makes a synthetic LS-100-sized cache entry (``--clips`` training clips of
128 x 201 float16 log-mels, ~51 KB each: 2.6 GB for 50 000) in a temporary folder through
the cache's own build code (with a cheap filler instead of audio decoding), then trains
``--batches`` batches of a SmallCNN (``--width``, 8 by default: the figure is about the
data, and a width-32 SmallCNN takes ~2 s per batch of these log-mels on one CPU core)
through the datamodule in fresh processes and prints each
one's peak resident set (``ru_maxrss``) and peak proportional set (PSS, sampled from
``/proc/<pid>/smaps_rollup``: shared pages are split among the processes that map them,
so the PSS of several processes add up to what they hold together):

- ``copy``: ``serve=copy``, every split copied into the process (the pre-issue-13 path);
- ``file``: rows read from the cache's file as batches need them (the default); and the same
  on a 2 000-clip entry, to show that the peak does not grow with the dataset;
- ``ddp file``: two DDP ranks (``ddp`` on CPU, gloo) on one machine: their PSS summed.

The folder is deleted at the end (``--keep`` keeps it).

``build`` builds gm100 and gmmix50 from nothing into a temporary folder and prints the wall
time, with the machine's load average before and after (the machine is shared: say how
loaded it was when quoting a figure).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
N_CLASSES = 100
SHAPE = (128, 201)  # LS-100's log-mels: 128 bands x 201 frames (2 s, hop 160 at 16 kHz)
EVAL_CLIPS = 1000


# ---- the synthetic entry ------------------------------------------------------------------
def synthetic_dataset(n_train: int, name: str):
    """An LS-100-shaped dataset whose clips do not exist: only its cache entry will."""
    from audiocil.data.catalog import AudioDataset, ClipTable

    splits = {}
    for split, n in (("train", n_train), ("val", EVAL_CLIPS), ("test", EVAL_CLIPS)):
        paths = [f"/nonexistent/{name}/{split}/{i:06d}.wav" for i in range(n)]
        splits[split] = ClipTable(paths, np.arange(n) % N_CLASSES)
    return AudioDataset(name, [f"spk{k:03d}" for k in range(N_CLASSES)], 16000, 2.0, False,
                        splits)


def frontend() -> dict:
    return {"sample_rate": 16000, "n_fft": 400, "hop_length": 160, "n_mels": SHAPE[0],
            "f_min": 0.0, "f_max": 8000.0, "log_floor": 1e-6}


def make_entry(cache_dir: Path, n_train: int, name: str) -> None:
    """Build the entries with the cache's code, filling ``data.npy`` with a cheap pattern."""
    from audiocil.data import cache as C

    def fill(table, dataset, frontend, out, on_bad_file, chunk):
        t0, n = time.time(), len(table)
        data = np.lib.format.open_memmap(out / "data.npy", mode="w+", dtype=np.float16,
                                         shape=(n, *SHAPE))
        block = np.random.default_rng(0).standard_normal((1024, *SHAPE)).astype(np.float16)
        for a in range(0, n, len(block)):
            data[a:a + len(block)] = block[: n - a]
        data.flush()
        del data
        np.save(out / "keep.npy", np.ones(n, bool))
        return {"n": n, "shape": [n, *SHAPE], "skipped": [], "skipped_index": [],
                "seconds": time.time() - t0}

    C._build = fill
    ds = synthetic_dataset(n_train, name)
    for split in ("train", "val", "test"):
        C.cached_array(ds, split, cache_dir, frontend())


# ---- one measured run ---------------------------------------------------------------------
class MemoryProbe(threading.Thread):
    """Samples this process's PSS and RSS (kB from /proc/self/smaps_rollup) every 0.2 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = {"Pss": 0, "Rss": 0, "Pss_Anon": 0, "Pss_File": 0}
        self.running = True

    def sample(self) -> None:
        try:
            text = Path("/proc/self/smaps_rollup").read_text()
        except OSError:
            return
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            if key in self.peak:
                self.peak[key] = max(self.peak[key], int(rest.split()[0]))

    def run(self) -> None:
        while self.running:
            self.sample()
            time.sleep(0.2)


def train(args) -> None:
    probe = MemoryProbe()
    probe.start()
    import lightning as L
    import torch

    from audiocil.config import compose
    from audiocil.core import Task
    from audiocil.data.datamodule import CILDataModule
    from audiocil.run import build_strategy

    torch.set_num_threads(1 if args.ddp else 2)
    cfg = compose(["dataset=ls100", "dataset.root=/nonexistent", "backbone=smallcnn",
                   f"backbone.width={args.width}", "method=finetune",
                   f"method.batch_size={args.batch}"])
    strategy = build_strategy(cfg)
    # the sequencer's stages build the optimizers; here a plain SGD with momentum (its state
    # is part of "the model")
    strategy.configure_optimizers = lambda: torch.optim.SGD(strategy.parameters(), lr=0.01,
                                                            momentum=0.9)
    probe.sample()
    model_kb = probe.peak["Rss"]  # interpreter, torch, Lightning and the model
    ds = synthetic_dataset(args.clips, args.name)
    dm = CILDataModule(ds, list(range(N_CLASSES)), args.cache_dir, frontend(), seed=0,
                       serve=args.serve, verify_cache="off")
    dm.prepare()
    task = Task(0, tuple(range(N_CLASSES)), 0, N_CLASSES)
    dm.set_own(dm.indices_of(range(N_CLASSES)), N_CLASSES)
    dm.set_task(0, dm.own_indices, N_CLASSES, args.batch)
    strategy.before_task(task, dm)
    t0 = time.time()
    trainer = L.Trainer(max_epochs=1, limit_train_batches=args.batches, limit_val_batches=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu",
                        devices=2 if args.ddp else 1, strategy="ddp" if args.ddp else "auto",
                        num_sanity_val_steps=0)
    trainer.fit(strategy, datamodule=dm)
    seconds = time.time() - t0
    probe.sample()
    probe.running = False
    out = {"rank": trainer.global_rank, "serve": args.serve, "clips": args.clips,
           "batches": args.batches, "batch": args.batch, "width": args.width,
           "seconds": round(seconds, 1),
           "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "peak_pss_mb": probe.peak["Pss"] / 1024, "peak_rss_mb": probe.peak["Rss"] / 1024,
           "peak_pss_anon_mb": probe.peak["Pss_Anon"] / 1024,
           "peak_pss_file_mb": probe.peak["Pss_File"] / 1024, "before_data_mb": model_kb / 1024,
           "dataset_mb": args.clips * int(np.prod(SHAPE)) * 2 / 2**20}
    Path(args.out, f"rank{trainer.global_rank}.json").write_text(json.dumps(out))


# ---- drivers ------------------------------------------------------------------------------
def child(argv: list[str]) -> None:
    env = dict(os.environ, PYTHONPATH=str(HERE.parents[1] / "src"))
    env.pop("AUDIOCIL_RUN_DIR", None)
    subprocess.run([sys.executable, str(HERE), *argv], check=True, env=env)


def measured(work: Path, label: str, clips: int, name: str, serve: str, batches: int,
             batch: int, width: int, ddp: bool = False) -> list[dict]:
    out = work / f"out-{label.replace(' ', '_').replace(',', '')}"
    out.mkdir()
    child(["_train", "--cache-dir", str(work / "cache"), "--clips", str(clips), "--name", name,
           "--serve", serve, "--batches", str(batches), "--batch", str(batch), "--out", str(out),
           "--width", str(width), *(["--ddp"] if ddp else [])])
    ranks = [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]
    for r in ranks:
        print(f"{label:<22} rank {r['rank']}: peak RSS {r['max_rss_mb']:7.0f} MB, peak PSS "
              f"{r['peak_pss_mb']:7.0f} MB (anon {r['peak_pss_anon_mb']:.0f}, file "
              f"{r['peak_pss_file_mb']:.0f}); before the data {r['before_data_mb']:.0f} MB; "
              f"{r['batches']} batches in {r['seconds']:.0f} s", flush=True)
    if len(ranks) > 1:
        print(f"{label:<22} sum of the ranks' peak PSS {sum(r['peak_pss_mb'] for r in ranks):.0f}"
              f" MB (features {ranks[0]['dataset_mb']:.0f} MB)", flush=True)
    return ranks


def memory(args) -> None:
    work = Path(tempfile.mkdtemp(prefix="audiocil-scale-", dir=args.dir))
    try:
        print(f"making the synthetic entries in {work} ({args.clips} x {SHAPE[0]} x {SHAPE[1]} "
              f"float16 = {args.clips * np.prod(SHAPE) * 2 / 1e9:.2f} GB) ...", flush=True)
        t0 = time.time()
        child(["_make", "--cache-dir", str(work / "cache"), "--clips", str(args.clips),
               "--name", "ls100synth"])
        child(["_make", "--cache-dir", str(work / "cache"), "--clips", "2000",
               "--name", "ls100small"])
        print(f"made in {time.time() - t0:.0f} s; each run: {args.batches} batches of "
              f"{args.batch}, SmallCNN width {args.width}", flush=True)
        common = dict(batches=args.batches, batch=args.batch, width=args.width)
        measured(work, "copy", args.clips, "ls100synth", "copy", **common)
        measured(work, "file", args.clips, "ls100synth", "file", **common)
        measured(work, "file, 2000 clips", 2000, "ls100small", "file", **common)
        measured(work, "ddp file", args.clips, "ls100synth", "file", ddp=True, **common)
        if args.ddp_copy:
            measured(work, "ddp copy", args.clips, "ls100synth", "copy", ddp=True, **common)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def build(args) -> None:
    env = dict(os.environ, PYTHONPATH=str(HERE.parents[1] / "src"))
    for name in args.datasets:
        work = Path(tempfile.mkdtemp(prefix=f"audiocil-build-{name}-", dir=args.dir))
        try:
            code = (f"from audiocil.data.embedded.{name} import build_{name}; "
                    f"build_{name}({str(work)!r}, seed=0, workers={args.workers}, verbose=False)")
            load0 = os.getloadavg()
            t0 = time.time()
            subprocess.run([sys.executable, "-c", code], check=True, env=env)
            seconds = time.time() - t0
            load1 = os.getloadavg()
            man = json.loads(next(work.glob(f"{name}-*/manifest.json")).read_text())
            print(f"{name:<8} built from nothing in {seconds:6.1f} s with {args.workers} "
                  f"worker(s); load average {load0[0]:.1f} before, {load1[0]:.1f} after; "
                  f"content sha256 {man['content_sha256'][:12]}", flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def build_parser() -> argparse.ArgumentParser:
    """The command line (tests/test_docs_commands.py parses the documented ones with it)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command")
    mem = sub.add_parser("memory", help="peak RSS / PSS of a 50 000-clip run: read from the file vs copied, DDP")
    mem.add_argument("--clips", type=int, default=50000)
    mem.add_argument("--batches", type=int, default=200)
    mem.add_argument("--batch", type=int, default=64)
    mem.add_argument("--width", type=int, default=8, help="SmallCNN width")
    mem.add_argument("--dir", default=None, help="where the temporary entry goes (default: TMPDIR)")
    mem.add_argument("--ddp-copy", action="store_true", help="also two ranks with serve=copy")
    mem.add_argument("--keep", action="store_true", help="keep the temporary folder")
    bld = sub.add_parser("build", help="gm100 / gmmix50 build times from nothing")
    bld.add_argument("--datasets", nargs="+", default=["gm100", "gmmix50"],
                     choices=["gm100", "gmmix50"])
    bld.add_argument("--workers", type=int, default=2)
    bld.add_argument("--dir", default=None)
    for name in ("_make", "_train"):  # internal: run in fresh processes by the drivers
        p = sub.add_parser(name)
        p.add_argument("--cache-dir", type=Path, required=True)
        p.add_argument("--clips", type=int, required=True)
        p.add_argument("--name", required=True)
        if name == "_train":
            p.add_argument("--serve", choices=["copy", "file"], required=True)
            p.add_argument("--batches", type=int, required=True)
            p.add_argument("--batch", type=int, required=True)
            p.add_argument("--out", required=True)
            p.add_argument("--width", type=int, default=8)
            p.add_argument("--ddp", action="store_true")
    return ap


def main() -> None:
    args = build_parser().parse_args()
    if args.command == "_make":
        make_entry(args.cache_dir, args.clips, args.name)
    elif args.command == "_train":
        train(args)
    elif args.command == "memory":
        memory(args)
    elif args.command == "build":
        build(args)
    else:  # both parts, default settings
        memory(build_parser().parse_args(["memory"]))
        build(build_parser().parse_args(["build"]))


if __name__ == "__main__":
    main()
