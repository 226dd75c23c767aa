"""The datamodule: cached features read from the cache's files on demand, one task at a time.

Class ids are remapped to their position in the class order, so the classes of task t
occupy the contiguous positions ``known..total-1`` of a growing classifier.

Memory. The features are not copied into the process: :class:`FileFeatures` reads the rows
a batch needs from the cache entry's ``data.npy`` with positioned reads (``pread``). The
file's pages live in the kernel's page cache, one copy per machine, shared by DataLoader
workers, DDP ranks and parallel sweep jobs; each process holds only the rows it has read
(a batch). Nothing of the file is mapped: a memory map's pages count in the resident set
of the process that touches them, and on kernels whose page cache holds large folios one
51 KB row read through a map made about 0.8 MB resident (benchmarks/bench_scale.py).
``serve="copy"`` restores the old behaviour (every split copied into RAM).

Several processes. The global rank 0 builds a missing cache entry; every other rank waits
for it (:func:`launch_rank`, ``cached_array(build=False)``), so a cache on a file system
shared by several machines is built once, never by every rank at once.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from audiocil.data.cache import cached_array, launch_rank
from audiocil.data.catalog import SPLITS, AudioDataset
from audiocil.data.embeddings import EmbeddingCache
from audiocil.data.samplers import EpisodeBatchSampler

log = logging.getLogger(__name__)

SERVE_MODES = ("file", "copy")
#: How long a rank other than 0 waits for rank 0 to build a cache entry (seconds).
CACHE_WAIT_SECONDS = float(os.environ.get("AUDIOCIL_CACHE_WAIT_S", 4 * 3600))


class FileFeatures:
    """The rows of a ``.npy`` array, read from the file when asked for.

    ``x[i]`` is the (F, T) (or (S,)) tensor of row ``i``; ``x[idx]`` with an index array,
    list, tensor or slice is a (B, F, T) tensor. Both are fresh arrays in the file's dtype
    (float16 for the cache), so callers may keep or modify them. Each run of consecutive
    rows is one positioned read (``os.preadv`` into the output), which goes through the
    page cache without mapping the file: the process's resident set grows by the rows it
    returns, nothing more. The descriptor is position-free, so forked DataLoader workers
    share it; a spawned worker (pickling) opens the file again.

    Args:
        path: the ``.npy`` file (format 1.0-3.0, C order).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)
        self._open()

    def _open(self) -> None:
        fmt = np.lib.format
        with open(self.path, "rb") as f:
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = read(f)
            offset = f.tell()
        if fortran:
            raise ValueError(f"{self.path}: only C-ordered arrays are served")
        self._shape, self._np_dtype, self._offset = tuple(shape), np.dtype(dtype), int(offset)
        self._row_bytes = int(np.prod(self._shape[1:], dtype=np.int64)) * self._np_dtype.itemsize
        need, size = self._offset + len(self) * self._row_bytes, os.path.getsize(self.path)
        if size < need:
            raise OSError(f"{self.path}: {size} bytes where its header says {need}; the cache "
                          "entry is truncated (delete it to rebuild)")
        self._fd = os.open(self.path, os.O_RDONLY)

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.path = state["path"]
        self._open()

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)
            self._fd = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._shape)

    @property
    def dtype(self) -> torch.dtype:
        return torch.from_numpy(np.empty(0, self._np_dtype)).dtype

    def __len__(self) -> int:
        return int(self._shape[0])

    def element_size(self) -> int:
        return int(self._np_dtype.itemsize)

    def __getitem__(self, idx) -> torch.Tensor:
        if isinstance(idx, torch.Tensor):
            idx = idx.numpy()
        n = len(self)
        if isinstance(idx, (int, np.integer)):
            i = int(idx) + n if int(idx) < 0 else int(idx)
            if not 0 <= i < n:
                raise IndexError(f"row {int(idx)} out of range for {n} rows of {self.path}")
            return torch.from_numpy(self._rows(np.array([i]))[0])
        rows = (np.arange(*idx.indices(n)) if isinstance(idx, slice)
                else np.asarray(idx, dtype=np.int64))
        if rows.ndim != 1:
            raise IndexError(f"{self.path}: rows are indexed by an int, a slice or a 1-d array")
        rows = np.where(rows < 0, rows + n, rows)
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise IndexError(f"rows out of range for {n} rows of {self.path}")
        return torch.from_numpy(self._rows(rows))

    def _rows(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *self._shape[1:]), dtype=self._np_dtype)
        if not len(rows):
            return out
        flat = out.reshape(len(rows), -1).view(np.uint8)
        # runs of consecutive rows: [starts[k], ends[k]) in ``rows``
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        starts = np.concatenate(([0], breaks))
        ends = np.concatenate((breaks, [len(rows)]))
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            self._read_into(flat[a:b].reshape(-1), self._offset + int(rows[a]) * self._row_bytes)
        return out

    def _read_into(self, buf: np.ndarray, offset: int) -> None:
        view, done = memoryview(buf), 0
        while done < len(view):
            got = os.preadv(self._fd, [view[done:]], offset + done)
            if got <= 0:
                raise OSError(f"{self.path}: file ended at byte {offset + done} while reading "
                              "a row; the cache entry is truncated (delete it to rebuild)")
            done += got


class ArrayDataset(Dataset):
    """Items ``(x, y, i)`` of a subset of the features: input, target, dataset index.

    Args:
        target_mask: multi-label only: a (C,) mask applied to every target, or an (N, C) mask
            whose row ``i`` applies to dataset index ``i`` (see
            :meth:`CILDataModule.set_target_mask`); None serves the targets as they are.
    """

    def __init__(self, data: FileFeatures | torch.Tensor, targets: torch.Tensor,
                 indices: np.ndarray, target_mask: torch.Tensor | None = None) -> None:
        self.data, self.targets, self.indices = data, targets, np.asarray(indices, dtype=np.int64)
        self.target_mask = target_mask

    def __len__(self) -> int:
        return len(self.indices)

    def target(self, i: int) -> torch.Tensor:
        """The (masked) target of dataset index ``i``."""
        y = self.targets[i]
        if self.target_mask is None:
            return y
        return y * (self.target_mask if self.target_mask.dim() == 1 else self.target_mask[i])

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        i = int(self.indices[k])
        return self.data[i], self.target(i), i


class TensorItems(Dataset):
    """Items ``(x[k], y[k], k)`` of tensors a stage made (e.g. fixed embeddings); ``x`` may be
    a tuple of tensors with one row per item each."""

    def __init__(self, x: torch.Tensor | tuple[torch.Tensor, ...], y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, k: int):
        x = tuple(t[k] for t in self.x) if isinstance(self.x, tuple) else self.x[k]
        return x, self.y[k], k


class EpochShuffleSampler(Sampler[int]):
    """A permutation drawn from (seed, epoch): a resumed run sees the same batches."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 10007 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class ClassBalancedSampler(DistributedSampler):
    """Class-balanced sampling for multi-label data: each draw picks an active class
    uniformly, then one of that class's clips uniformly (as the balanced sampler of PANNs,
    Kong et al., 2020), so rare classes are seen as often as frequent ones.

    An epoch has as many draws as the dataset has items. The draws come from
    (seed, epoch) and are shared by all ranks, each taking every ``world``-th one.

    Args:
        targets: (N, C) multi-hot (masked) targets of the dataset's items.
        seed: seeds the draws.
        world, rank: DDP sharding (1, 0 on one process).

    A :class:`DistributedSampler` subclass only so that Lightning does not wrap it again
    under DDP: it shards itself.
    """

    def __init__(self, targets: torch.Tensor, seed: int, world: int = 1, rank: int = 0) -> None:
        super().__init__(targets, num_replicas=world, rank=rank, shuffle=False)  # type: ignore[arg-type]
        pos = targets > 0
        self.per_class = [torch.nonzero(pos[:, c]).flatten() for c in range(pos.shape[1])]
        self.per_class = [ix for ix in self.per_class if len(ix)]
        if not self.per_class:
            raise ValueError("balanced sampling: no training clip has an active label")
        self.n, self.seed, self.epoch, self.world, self.rank = len(targets), seed, 0, world, rank

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 10007 + self.epoch)
        total = len(self) * self.world
        classes = torch.randint(len(self.per_class), (total,), generator=g)
        picks = torch.rand(total, generator=g, dtype=torch.float64)
        out = []
        for c, u in zip(classes.tolist(), picks.tolist(), strict=True):
            ix = self.per_class[c]
            out.append(int(ix[int(u * len(ix))]))
        return iter(out[self.rank::self.world])

    def __len__(self) -> int:
        return math.ceil(self.n / self.world)


class UnpaddedDistributedSampler(DistributedSampler):
    """Shards an evaluation set across ranks without padding: each item is scored once."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        self.num_samples = len(range(rank, len(dataset), num_replicas))  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, len(self.dataset), self.num_replicas))  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.num_samples


class CILDataModule(L.LightningDataModule):
    """Serves the current task's training data and the seen classes' evaluation data.

    Args:
        dataset: the loaded :class:`AudioDataset`.
        class_order: dataset class ids in arrival order.
        cache_dir: where the feature cache lives (``paths.cache_dir``).
        frontend: log-mel settings (``dataset.frontend``).
        cache: ``"features"`` caches log-mels; ``"waveform"`` caches audio and leaves the
            log-mel to the model's front end on the training device.
        on_bad_file: ``"error"`` or ``"skip"``.
        verify_cache: ``data.verify_cache``, how much of each cache entry is checked on open:
            ``off`` (sizes, headers), ``quick`` (+ sampled blocks) or ``full`` (every block).
        num_workers: DataLoader workers (0 is usually fastest: reading a row is a copy).
        seed: seeds the per-epoch shuffles.
        serve: ``file`` (default) reads the rows a batch needs from the cache's files
            (:class:`FileFeatures`); ``copy`` copies every split into this process's RAM
            first (the pre-issue-13 behaviour, kept for comparison: same values, same
            results).
        eval_per_class: ``data.eval_clips_per_class``: evaluation (val and test) reads only
            the first this many valid clips of each class, in file order (multi-label: of
            each class it carries, the union); None: every clip. For quick checks only.

    ``data[split][idx]`` is a (B, F, T) float16 tensor for an index array (and (F, T) for
    an int) in both modes; ``targets[split]`` is in RAM. ``embeddings`` keeps what frozen
    encoders computed (:class:`~audiocil.data.embeddings.EmbeddingCache`); it outlives the
    strategies a run rebuilds from checkpoints.
    """

    def __init__(self, dataset: AudioDataset, class_order: Sequence[int], cache_dir: str,
                 frontend: dict, cache: str = "features", on_bad_file: str = "error",
                 num_workers: int = 0, seed: int = 0, verify_cache: str = "quick",
                 serve: str = "file", eval_per_class: int | None = None) -> None:
        super().__init__()
        if cache not in ("features", "waveform"):
            raise ValueError(f"data.cache must be features|waveform, got {cache!r}")
        if serve not in SERVE_MODES:
            raise ValueError(f"serve must be one of {'|'.join(SERVE_MODES)}, got {serve!r}")
        self.serve = serve
        if eval_per_class is not None and int(eval_per_class) < 1:
            raise ValueError(f"data.eval_clips_per_class must be >= 1 or null, got {eval_per_class}")
        self.eval_per_class = None if eval_per_class is None else int(eval_per_class)
        self.dataset = dataset
        self.order = list(class_order)
        self.position = np.empty(len(self.order), dtype=np.int64)
        self.position[self.order] = np.arange(len(self.order))
        self.cache_dir, self.frontend_cfg, self.cache = cache_dir, dict(frontend), cache
        self.on_bad_file, self.num_workers, self.seed = on_bad_file, num_workers, seed
        self.verify_cache = verify_cache
        self.data: dict[str, FileFeatures | torch.Tensor] = {}
        self.targets: dict[str, torch.Tensor] = {}
        self.valid: dict[str, np.ndarray] = {}
        self.skipped: dict[str, list[str]] = {}
        self.batch_size = 32
        self.train_indices = np.zeros(0, dtype=np.int64)
        self.own_indices = np.zeros(0, dtype=np.int64)
        self.n_seen = 0
        self.task = 0
        self.stage = 0
        self.sampler = "shuffle"
        self.target_positions: list[int] | None = None  # multi-label training target mask
        self.target_extra: dict[int, list[int]] = {}
        # few-shot: validation on these class positions only (the base classes), and
        # episodic training batches {n_way, n_per, n_batches} when a method asks for them
        self.val_classes: list[int] | None = None
        self.episodes: dict | None = None
        self.stage_dataset: Callable[[int], Dataset] | None = None
        # clips embedded by a frozen encoder, once per encoder state (not in the state dict:
        # its key is the encoder's content, so a resumed run refills it exactly)
        self.embeddings = EmbeddingCache()

    # ---- loading -----------------------------------------------------------------------
    def prepare(self) -> None:
        """Build (or open) the cache of every split and map it (or copy it, ``serve=copy``).

        Only the global rank 0 (:func:`launch_rank`) builds a missing entry; the other
        ranks wait for it (up to :data:`CACHE_WAIT_SECONDS`, ``AUDIOCIL_CACHE_WAIT_S``).
        """
        if self.data:
            return
        builder = launch_rank() == 0
        for split in SPLITS:
            data, keep, meta = cached_array(
                self.dataset, split, self.cache_dir,
                self.frontend_cfg if self.cache == "features" else None, self.on_bad_file,
                verify=self.verify_cache, build=builder, wait_seconds=CACHE_WAIT_SECONDS)
            if self.serve == "copy":
                self.data[split] = torch.from_numpy(np.array(data))  # into this process's RAM
            else:
                self.data[split] = FileFeatures(data.filename)
            del data
            targets = self.dataset.splits[split].targets
            if self.dataset.multilabel:
                self.targets[split] = torch.from_numpy(targets[:, self.order].astype(np.float32))
            else:
                self.targets[split] = torch.from_numpy(self.position[targets])
            self.valid[split] = np.flatnonzero(keep)
            self.skipped[split] = meta["skipped"]

    @property
    def multilabel(self) -> bool:
        return bool(self.dataset.multilabel)

    @property
    def sample_nbytes(self) -> int:
        x = self.data["train"]
        return int(np.prod(x.shape[1:], dtype=np.int64)) * x.element_size()

    def class_positions(self, split: str) -> np.ndarray:
        """(N,) class position of each clip of a single-label split."""
        return self.targets[split].numpy()

    def indices_of(self, positions: Sequence[int], split: str = "train") -> np.ndarray:
        """Valid clip indices whose class position is in ``positions`` (single-label)."""
        valid = self.valid[split]
        if self.dataset.multilabel:
            hits = self.targets[split][valid][:, list(positions)].sum(1) > 0
            return valid[hits.numpy()]
        return valid[np.isin(self.class_positions(split)[valid], list(positions))]

    def by_class(self, positions: Sequence[int], split: str = "train",
                 within: np.ndarray | None = None) -> dict[int, np.ndarray]:
        """Class position -> clip indices of that class (multi-label: clips carrying it).

        Args:
            within: restrict to these clip indices (e.g. the task's own few shots);
                default: every valid clip of the split.
        """
        pool = self.valid[split] if within is None else np.asarray(within, dtype=np.int64)
        if self.dataset.multilabel:
            hot = self.targets[split].numpy()
            return {int(c): pool[hot[pool, c] > 0] for c in positions}
        pos = self.class_positions(split)
        return {int(c): pool[pos[pool] == c] for c in positions}

    def first_task_stats(self, positions: Sequence[int], frontend: torch.nn.Module | None = None,
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-mel-bin mean and std of the given classes' training log-mels, (F,) each."""
        idx = self.indices_of(positions)
        total, total_sq, count = None, None, 0
        for a in range(0, len(idx), 256):
            x = self.data["train"][idx[a:a + 256]]
            if frontend is not None:
                with torch.no_grad():
                    x = frontend.features(x)[:, 0]  # (B, F, T)
            x = x.double()
            s, sq = x.sum(dim=(0, 2)), (x**2).sum(dim=(0, 2))
            total = s if total is None else total + s
            total_sq = sq if total_sq is None else total_sq + sq
            count += x.shape[0] * x.shape[2]
        mean = total / count
        std = (total_sq / count - mean**2).clamp(min=0).sqrt()
        return mean.float(), std.float()

    # ---- the current task -------------------------------------------------------------
    def set_own(self, indices: np.ndarray, n_seen: int | None = None) -> None:
        """The current task's own training clips, as the scenario chose them, and the number
        of classes seen once it is learnt (evaluation serves classes ``0..n_seen-1``)."""
        self.own_indices = np.asarray(indices, dtype=np.int64)
        if n_seen is not None:
            self.n_seen = int(n_seen)

    def set_task(self, task: int, train_indices: np.ndarray, n_seen: int, batch_size: int,
                 stage: int = 0, sampler: str | dict = "shuffle",
                 dataset: Callable[[int], Dataset] | None = None) -> None:
        """Serve ``train_indices`` for training and classes ``0..n_seen-1`` for evaluation.

        Args:
            stage: the task's stage (seeds the shuffles: each stage draws its own).
            sampler: ``shuffle``, ``balanced`` (:meth:`set_sampler`) or few-shot episodes
                ``{n_way, n_per, n_batches}``.
            dataset: the stage's own items (``epoch -> Dataset``), served instead of the
                clips ``train_indices`` (shuffled; not with balanced or episodic batches).
        """
        self.task, self.n_seen, self.batch_size, self.stage = task, n_seen, batch_size, stage
        self.train_indices = np.asarray(train_indices, dtype=np.int64)
        if len(self.train_indices) == 0:
            raise ValueError(f"task {task} has no training data")
        if dataset is not None and sampler != "shuffle":
            raise ValueError(f"a stage's own dataset is served with sampler=shuffle, got {sampler!r}")
        if isinstance(sampler, dict):
            self.set_sampler("shuffle")
            self.episodes = dict(sampler)
        else:
            self.set_sampler(sampler)
            self.episodes = None
        self.stage_dataset = dataset

    def set_target_mask(self, positions: Sequence[int] | None,
                        extra: dict[int, Sequence[int]] | None = None) -> None:
        """Multi-label only: which class positions training targets keep (the others read 0).

        The multi-label scenario calls this before each task with the task's own classes,
        so labels of past and future classes on a clip are masked out of its target and
        methods need not know about it. A method that needs more (e.g. replayed exemplars
        keeping the labels they were stored with, or an upper bound using every seen label)
        calls it again in ``before_task`` / ``train_indices``.

        Args:
            positions: class positions kept for every training clip; None: no mask.
            extra: dataset index -> further positions kept for that clip only.
        """
        self.target_positions = None if positions is None else [int(p) for p in positions]
        self.target_extra = {int(i): [int(p) for p in v] for i, v in (extra or {}).items()}

    def target_mask(self) -> torch.Tensor | None:
        """The mask of training targets: None, (C,), or (N_train, C) with per-clip extras."""
        if not self.dataset.multilabel or self.target_positions is None:
            return None
        n_cls = self.targets["train"].shape[1]
        mask = torch.zeros(n_cls)
        mask[self.target_positions] = 1.0
        if not self.target_extra:
            return mask
        full = mask.repeat(len(self.targets["train"]), 1)
        for i, pos in self.target_extra.items():
            full[i, pos] = 1.0
        return full

    def set_sampler(self, kind: str) -> None:
        """``shuffle`` (a permutation per epoch) or ``balanced`` (multi-label class-balanced
        draws, :class:`ClassBalancedSampler`) for the training loader."""
        if kind not in ("shuffle", "balanced"):
            raise ValueError(f"sampler must be shuffle|balanced, got {kind!r}")
        if kind == "balanced" and not self.dataset.multilabel:
            raise ValueError("sampler=balanced is for multi-label datasets")
        self.sampler = kind

    def subset(self, indices: np.ndarray, split: str = "train") -> ArrayDataset:
        mask = self.target_mask() if split == "train" else None
        return ArrayDataset(self.data[split], self.targets[split], indices, mask)

    def _world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return trainer.world_size, trainer.global_rank

    def train_dataloader(self) -> DataLoader:
        trainer = getattr(self, "trainer", None)
        ds = self.subset(self.train_indices) if self.stage_dataset is None else \
            self.stage_dataset(trainer.current_epoch if trainer is not None else 0)
        world, rank = self._world()
        seed = self.seed * 1000 + self.task + 7919 * self.stage
        sampler: Sampler[int]
        if self.sampler == "balanced":
            targets = torch.stack([ds.target(int(i)) for i in ds.indices]) if len(ds) else \
                torch.zeros(0, 0)
            sampler = ClassBalancedSampler(targets, seed, world, rank)
        elif world > 1:
            sampler = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        else:
            sampler = EpochShuffleSampler(len(ds), seed)
        if self.episodes:  # batches of n_way classes x n_per clips, drawn from (seed, rank, epoch)
            labels = self.targets["train"][ds.indices].numpy()
            episodes = EpisodeBatchSampler(labels, seed=seed * 100 + rank, **self.episodes)
            return DataLoader(ds, batch_sampler=episodes, num_workers=self.num_workers)
        return DataLoader(ds, batch_size=self.batch_size, sampler=sampler, drop_last=False,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def eval_dataloader(self, split: str, positions: Sequence[int] | None = None,
                        distributed: bool = True) -> DataLoader:
        """Clips of the seen classes (or of ``positions``), each served exactly once."""
        pos = range(self.n_seen) if positions is None else positions
        ds = self.subset(self.eval_subset(self.indices_of(pos, split), split), split)
        world, rank = self._world() if distributed else (1, 0)
        sampler = UnpaddedDistributedSampler(ds, world, rank) if world > 1 else None
        return DataLoader(ds, batch_size=max(self.batch_size, 128), sampler=sampler,
                          shuffle=False, num_workers=self.num_workers)

    def eval_subset(self, indices: np.ndarray, split: str) -> np.ndarray:
        """``indices`` (ascending), limited to the first :attr:`eval_per_class` of each class."""
        k = self.eval_per_class
        if k is None or len(indices) == 0:
            return indices
        labels = self.targets[split][indices]
        if self.dataset.multilabel:
            rank = torch.cumsum(labels, dim=0) * labels  # 1-based rank among the class's clips
            return indices[((rank >= 1) & (rank <= k)).any(dim=1).numpy()]
        keep = np.zeros(len(indices), dtype=bool)
        pos = labels.numpy()
        for c in np.unique(pos):
            keep[np.flatnonzero(pos == c)[:k]] = True
        return indices[keep]

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("val", self.val_classes)

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")

    def steps_per_epoch(self) -> int:
        world, _ = self._world()
        n = len(self.train_indices)
        if self.stage_dataset is not None:
            trainer = getattr(self, "trainer", None)
            n = len(self.stage_dataset(trainer.current_epoch if trainer is not None else 0))
        return math.ceil(n / world / self.batch_size)

    def state_dict(self) -> dict:
        return {"task": self.task, "n_seen": self.n_seen, "train_indices": self.train_indices.tolist(),
                "own_indices": self.own_indices.tolist(), "batch_size": self.batch_size,
                "sampler": self.sampler, "target_positions": self.target_positions,
                "target_extra": self.target_extra, "stage": self.stage, "episodes": self.episodes,
                "val_classes": self.val_classes}

    def load_state_dict(self, state: dict) -> None:
        self.task, self.n_seen, self.batch_size = state["task"], state["n_seen"], state["batch_size"]
        self.train_indices = np.asarray(state["train_indices"], dtype=np.int64)
        self.own_indices = np.asarray(state["own_indices"], dtype=np.int64)
        self.sampler = state.get("sampler", "shuffle")
        self.target_positions = state.get("target_positions")
        self.target_extra = {int(i): v for i, v in state.get("target_extra", {}).items()}
        self.stage, self.episodes = state.get("stage", 0), state.get("episodes")
        self.val_classes = state.get("val_classes")
