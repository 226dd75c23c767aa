"""Rendering General-MIDI notes and drum hits from a SoundFont, and measuring presets.

Two engines (``engine=``), no system package either way. The default SoundFont is
``TimGM6mb.sf2``, which ships inside the ``pretty_midi`` package.

- ``"sampler"`` (the embedded datasets' version 2): :mod:`audiocil.data.embedded.sampler`,
  each note rendered on its own, dry, by a numba sample player with rustysynth's voice
  model, at 32 kHz, resampled with soxr (~1.5 ms of CPU per 4 s note).
- ``"midirenderer"`` (version 1): MIDI written with ``pretty_midi`` and rendered by
  ``midirenderer`` (rustysynth in Rust, 48 kHz, with its reverb and chorus always running:
  ~90x real time whatever the number of voices). One call renders a *batch* of notes of
  the same preset, each in its own time slot (note, release, an All-Sound-Off controller,
  a short gap), cut apart afterwards; the channel's reverb and chorus sends are set to
  zero, but the SoundFont's own effect sends still feed the effects, whose tails carry
  from one slot into the next. Kept so that version-1 datasets rebuild byte for byte.

Measuring presets (:func:`probe_presets`, :func:`select_distinct`): each candidate preset
plays a few fixed probe notes; a preset whose loudest probe is below a floor is *silent*,
one whose spectral fingerprint is within a small distance of an already kept preset is a
*duplicate*, and when more distinct presets remain than wanted the least distinct ones are
dropped. Nothing is excluded by a hand-written list.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

from audiocil.errors import DataError

RENDER_RATE = 48000  # what midirenderer produces (read back from the WAV header anyway)
ENGINES = ("midirenderer", "sampler")

# General-MIDI program -> family. The names follow NSynth where NSynth has the family
# (bass 0, brass 1, flute 2, guitar 3, keyboard 4, mallet 5, organ 6, reed 7, string 8,
# synth_lead 9, vocal 10, with NSynth's ids); GM groups NSynth lacks get ids 11..15.
FAMILIES = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed",
            "string", "synth_lead", "vocal", "synth_pad", "synth_fx", "ethnic", "percussion",
            "sound_fx")
SOURCES = ("acoustic", "electronic", "synthetic")  # NSynth's instrument_source ids 0, 1, 2

_FAMILY_OF_RANGE = [
    (range(0, 8), "keyboard"), (range(8, 16), "mallet"), (range(16, 21), "organ"),
    (range(21, 24), "reed"),  # accordion, harmonica, bandoneon
    (range(24, 32), "guitar"), (range(32, 40), "bass"), (range(40, 47), "string"),
    (range(47, 48), "percussion"),  # timpani
    (range(48, 52), "string"), (range(52, 55), "vocal"), (range(55, 56), "synth_fx"),
    (range(56, 64), "brass"), (range(64, 72), "reed"), (range(72, 80), "flute"),
    (range(80, 88), "synth_lead"), (range(88, 96), "synth_pad"), (range(96, 104), "synth_fx"),
    (range(104, 112), "ethnic"), (range(112, 120), "percussion"), (range(120, 128), "sound_fx"),
]
_ELECTRONIC = {2, 4, 5, 16, 17, 18, 26, 27, 28, 29, 30, 31, 33, 34, 35, 36, 37}
_SYNTHETIC = {38, 39, 50, 51, 54, 55, 62, 63, 118} | set(range(80, 104))

# Playable MIDI pitch range per family (inclusive), and a few programs whose instrument
# sits elsewhere. Every range spans at least 36 semitones, so 5 velocities give >= 185
# distinct (pitch, velocity) pairs per preset.
_FAMILY_RANGE = {
    "keyboard": (33, 96), "mallet": (53, 96), "organ": (36, 84), "reed": (40, 84),
    "guitar": (40, 84), "bass": (28, 64), "string": (36, 84), "percussion": (36, 72),
    "vocal": (43, 81), "synth_fx": (36, 84), "brass": (40, 80), "flute": (55, 96),
    "synth_lead": (36, 84), "synth_pad": (36, 84), "ethnic": (40, 84), "sound_fx": (40, 84),
}
_PROGRAM_RANGE = {
    40: (55, 96),  # violin
    41: (48, 88),  # viola
    42: (36, 76),  # cello
    43: (28, 64),  # contrabass
    58: (28, 64),  # tuba
    57: (34, 72),  # trombone
    60: (34, 77),  # french horn
    64: (54, 90), 65: (49, 85), 66: (44, 80), 67: (36, 72),  # saxophones
    68: (58, 94), 69: (52, 88), 70: (34, 72), 71: (50, 91),  # oboe, eng. horn, bassoon, clarinet
    72: (62, 98),  # piccolo
}

# Probe notes used to fingerprint every candidate preset (the same for all presets, so
# fingerprints are comparable across families).
PROBE_PITCHES = (36, 48, 60, 72, 84)
PROBE_VELOCITY = 100
DRUM_PROBE_VELOCITY = 100
GM_DRUM_KEYS = tuple(range(35, 82))  # the General-MIDI percussion map, channel 10


def default_soundfont() -> Path:
    """``TimGM6mb.sf2`` from the ``pretty_midi`` package."""
    import pretty_midi

    path = Path(os.path.dirname(pretty_midi.__file__)) / "TimGM6mb.sf2"
    if not path.is_file():
        raise FileNotFoundError(
            f"the default SoundFont {path} is missing from the pretty_midi package; "
            f"reinstall pretty_midi or pass soundfont=/path/to/any_general_midi.sf2")
    return path


def resolve_soundfont(soundfont: str | os.PathLike | None) -> Path:
    if soundfont is None:
        return default_soundfont()
    path = Path(soundfont).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"SoundFont {path} not found (soundfont=...)")
    return path.resolve()


@functools.lru_cache(maxsize=4)
def _soundfont_bytes(path: str, mtime_ns: int) -> bytes:
    return Path(path).read_bytes()


def soundfont_bytes(path: str | os.PathLike) -> bytes:
    """The SoundFont's bytes, read once per process."""
    p = Path(path)
    return _soundfont_bytes(str(p), p.stat().st_mtime_ns)


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- General-MIDI naming ---------------------------------------------------------------

def gm_family(program: int) -> str:
    for rng, name in _FAMILY_OF_RANGE:
        if program in rng:
            return name
    raise ValueError(f"GM program must be 0..127, got {program}")


def gm_source(program: int) -> str:
    if program in _SYNTHETIC:
        return "synthetic"
    if program in _ELECTRONIC:
        return "electronic"
    return "acoustic"


def instrument_str(program: int) -> str:
    """NSynth-style instrument name ``<family>_<source>_<program:03d>``."""
    return f"{gm_family(program)}_{gm_source(program)}_{program:03d}"


def program_name(program: int) -> str:
    import pretty_midi

    return pretty_midi.program_to_instrument_name(program)


def drum_name(key: int) -> str:
    import pretty_midi

    return pretty_midi.note_number_to_drum_name(key)


def drum_class_str(key: int) -> str:
    """``drum_<key:03d>_<gm drum name>``, e.g. ``drum_038_acoustic_snare``."""
    slug = "".join(c if c.isalnum() else "_" for c in drum_name(key).lower()).strip("_")
    return f"drum_{key:03d}_{slug}"


def pitch_range(program: int) -> tuple[int, int]:
    """Inclusive MIDI pitch range used for ``program``."""
    return _PROGRAM_RANGE.get(program, _FAMILY_RANGE[gm_family(program)])


# --- rendering -------------------------------------------------------------------------

@dataclass(frozen=True)
class NoteEvent:
    """One note (or drum hit) to render in its own slot.

    Attributes:
        pitch: MIDI key (for drums: the GM percussion key).
        velocity: 1..127.
        hold: seconds between note-on and note-off.
        length: seconds kept from note-on (hold + release tail).
    """

    pitch: int
    velocity: int
    hold: float
    length: float


def _midi_bytes(program: int, is_drum: bool, events: list[NoteEvent], starts: list[float],
                end: float) -> bytes:
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)
    inst = pretty_midi.Instrument(program=0 if is_drum else program, is_drum=is_drum)
    cc = inst.control_changes
    cc.append(pretty_midi.ControlChange(number=91, value=0, time=0.0))  # reverb send off
    cc.append(pretty_midi.ControlChange(number=93, value=0, time=0.0))  # chorus send off
    for ev, t0 in zip(events, starts, strict=True):
        inst.notes.append(pretty_midi.Note(velocity=int(ev.velocity), pitch=int(ev.pitch),
                                           start=t0, end=t0 + ev.hold))
        # All Sound Off right after the kept part: nothing rings into the next slot.
        cc.append(pretty_midi.ControlChange(number=120, value=0, time=t0 + ev.length))
    # a last harmless event so the renderer does not stop at the final note-off
    cc.append(pretty_midi.ControlChange(number=110, value=0, time=end))
    pm.instruments.append(inst)
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


def _decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    import soundfile as sf

    wave, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return wave @ np.full(wave.shape[1], 1.0 / wave.shape[1], np.float32), int(sr)


def resample(wave: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Band-limited resampling with soxr (a librosa dependency), else scipy's polyphase."""
    if src == dst:
        return wave.astype(np.float32, copy=False)
    try:
        import soxr
    except ImportError:
        soxr = None
    if soxr is not None:
        return soxr.resample(wave.astype(np.float32, copy=False), src, dst,
                             quality="HQ").astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = gcd(int(src), int(dst))
    return resample_poly(wave, dst // g, src // g).astype(np.float32)


def render_events(sf_path: str | os.PathLike, program: int, events: list[NoteEvent], *,
                  is_drum: bool = False, sample_rate: int = 16000, batch: int = 24,
                  gap: float = 0.25, lead: float = 0.05, engine: str = "midirenderer",
                  detune_cents: list[float] | None = None) -> list[np.ndarray]:
    """Render each event of one preset to a mono float32 clip at ``sample_rate``.

    Args:
        sf_path: SoundFont file.
        program: GM program 0..127 (ignored for drums: the standard kit, bank 128).
        events: what to play; clip ``i`` is ``round(events[i].length * sample_rate)`` long.
        is_drum: play on the percussion channel (MIDI channel 10).
        batch, gap, lead (``midirenderer`` only): events per render call (memory: ~0.4 MB
            per second of slot), silence between slots after the All-Sound-Off, silence
            before the first slot.
        engine: ``midirenderer`` or ``sampler`` (module notes).
        detune_cents (``sampler`` only): a pitch offset per event.

    Returns:
        one array per event, in order. Deterministic: the same inputs give the same bytes.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "sampler":
        return _render_sampler(sf_path, program, events, is_drum, sample_rate, detune_cents)
    if detune_cents is not None:
        raise ValueError("detune_cents needs engine='sampler'")
    data = soundfont_bytes(sf_path)
    import midirenderer

    out: list[np.ndarray] = []
    for b0 in range(0, len(events), batch):
        chunk = events[b0:b0 + batch]
        starts, t = [], lead
        for ev in chunk:
            starts.append(round(t, 6))
            t += ev.length + gap
        wav = midirenderer.render_wave_from(data, _midi_bytes(program, is_drum, chunk, starts, t))
        wave, sr = _decode_wav(wav)
        wave = resample(wave, sr, sample_rate)
        for ev, t0 in zip(chunk, starts, strict=True):
            a = int(round(t0 * sample_rate))
            n = int(round(ev.length * sample_rate))
            clip = wave[a:a + n]
            if len(clip) < n:
                clip = np.pad(clip, (0, n - len(clip)))
            out.append(np.ascontiguousarray(clip, dtype=np.float32))
    return out


def _render_sampler(sf_path, program: int, events: list[NoteEvent], is_drum: bool,
                    sample_rate: int, detune_cents: list[float] | None) -> list[np.ndarray]:
    from audiocil.data.embedded import sampler

    font = sampler.soundfont(sf_path)
    out = []
    for k, ev in enumerate(events):
        wave = sampler.render_note(font, program, ev.pitch, ev.velocity, ev.hold, ev.length,
                                   is_drum=is_drum,
                                   detune_cents=0.0 if detune_cents is None else detune_cents[k])
        clip = resample(wave, sampler.RENDER_RATE, sample_rate)
        n = int(round(ev.length * sample_rate))
        out.append(np.ascontiguousarray(np.pad(clip, (0, max(0, n - len(clip))))[:n],
                                        dtype=np.float32))
    return out


# --- measuring presets -----------------------------------------------------------------

def rms_db(wave: np.ndarray) -> float:
    """Root-mean-square level in dB full scale (-inf-safe: floor at -200 dB)."""
    return float(10 * np.log10(np.mean(np.square(wave, dtype=np.float64)) + 1e-20))


@functools.lru_cache(maxsize=8)
def _mel_matrix(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 30.0) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters evenly spaced on the HTK mel scale."""
    def to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    def to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    edges = to_hz(np.linspace(to_mel(f_min), to_mel(sample_rate / 2), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (freqs[None, :] - lo) / (mid - lo)
    fall = (hi - freqs[None, :]) / (hi - mid)
    return np.maximum(0.0, np.minimum(rise, fall)).astype(np.float32)


def fingerprint(clips: list[np.ndarray], sample_rate: int = 16000) -> np.ndarray:
    """A level-independent timbre fingerprint (in dB) of a preset from its probe clips.

    Per clip: the time-averaged mel spectrum (64 bands, in dB, minus its mean: the spectral
    shape) and the loudness envelope (dB relative to the clip's peak frame, floored at
    -80 dB, 16 points). Silent probes give a flat -80 dB envelope and a flat spectrum.
    """
    n_fft, hop = 1024, 512
    mel = _mel_matrix(sample_rate, n_fft, 64)
    window = np.hanning(n_fft).astype(np.float32)
    parts = []
    for clip in clips:
        x = np.pad(clip.astype(np.float32), (0, max(0, n_fft - len(clip))))
        frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * window
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (T, n_fft/2+1)
        mels = power @ mel.T  # (T, 64)
        spec_db = 10 * np.log10(mels.mean(axis=0) + 1e-10)
        spec_db = np.maximum(spec_db, spec_db.max() - 80.0)
        energy_db = 10 * np.log10(mels.sum(axis=1) + 1e-10)
        env = np.maximum(energy_db - energy_db.max(), -80.0)
        idx = np.linspace(0, len(env) - 1, 16).round().astype(int)
        parts.append(np.concatenate([spec_db - spec_db.mean(), env[idx]]))
    return np.concatenate(parts).astype(np.float64)


def fingerprint_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Root-mean-square difference of two fingerprints, in dB."""
    return float(np.sqrt(np.mean((a - b) ** 2)))


@dataclass
class PresetProbe:
    """What was measured about one candidate preset."""

    key: int  # GM program, or GM drum key for drums
    is_drum: bool
    level_db: float  # RMS of the loudest probe clip, dBFS
    fingerprint: np.ndarray
    audible_keys: list[int] | None = None  # keys that sound (when scanned)


def scan_keys(program: int) -> list[int]:
    """Keys scanned for audibility: the program's range widened by an octave each side."""
    lo, hi = pitch_range(program)
    return list(range(max(12, lo - 12), min(120, hi + 12) + 1))


def audible_keys(sf_path: str | os.PathLike, program: int, keys: list[int], *,
                 silence_db: float = -90.0, sample_rate: int = 16000,
                 engine: str = "midirenderer") -> list[int]:
    """The ``keys`` at which ``program`` makes a sound (a short note at velocity 127).

    A SoundFont preset only covers the keys its samples are mapped to; outside them the
    note is silent. Measured, not assumed.
    """
    events = [NoteEvent(pitch=k, velocity=127, hold=0.25, length=0.4) for k in keys]
    clips = render_events(sf_path, program, events, sample_rate=sample_rate, batch=64,
                          gap=0.1, engine=engine)
    return [k for k, c in zip(keys, clips, strict=True) if rms_db(c) > silence_db]


def probe_preset(sf_path: str | os.PathLike, key: int, is_drum: bool = False,
                 sample_rate: int = 16000, scan: bool = False,
                 engine: str = "midirenderer") -> PresetProbe:
    """Render the probe notes of one program (or one drum key) and measure them.

    A program plays :data:`PROBE_PITCHES` (3 s held, 4 s kept). A drum key is hit once
    (4 s kept) and its clip stands in for every probe pitch, so drum and program
    fingerprints have the same layout and can be compared. ``scan`` also finds the
    program's audible keys around its range (:func:`audible_keys`).
    """
    if is_drum:
        events = [NoteEvent(pitch=key, velocity=DRUM_PROBE_VELOCITY, hold=0.3, length=4.0)]
    else:
        events = [NoteEvent(pitch=p, velocity=PROBE_VELOCITY, hold=3.0, length=4.0)
                  for p in PROBE_PITCHES]
    clips = render_events(sf_path, 0 if is_drum else key, events, is_drum=is_drum,
                          sample_rate=sample_rate, engine=engine)
    if is_drum:
        clips = clips * len(PROBE_PITCHES)
    audible = audible_keys(sf_path, key, scan_keys(key), engine=engine) \
        if scan and not is_drum else None
    return PresetProbe(key=key, is_drum=is_drum, level_db=max(rms_db(c) for c in clips),
                       fingerprint=fingerprint(clips, sample_rate), audible_keys=audible)


def _probe_task(args: tuple) -> PresetProbe:
    sf_path, key, is_drum, scan, engine = args
    return probe_preset(sf_path, key, is_drum, scan=scan, engine=engine)


def probe_presets(sf_path: str | os.PathLike, keys: list[int], is_drum: bool = False,
                  workers: int = 1, scan: bool = False,
                  engine: str = "midirenderer") -> list[PresetProbe]:
    """:func:`probe_preset` for every key, in order (in ``workers`` processes)."""
    tasks = [(str(sf_path), int(k), is_drum, scan, engine) for k in keys]
    return list(parallel_map(_probe_task, tasks, workers))


class NotEnoughPresets(DataError, RuntimeError):
    """The SoundFont has fewer distinct, audible presets than classes were asked for."""


def select_distinct(probes: list[PresetProbe], n_keep: int, *, silence_db: float = -90.0,
                    duplicate_db: float = 1.5, what: str = "preset", name=None,
                    protected: frozenset[int] | set[int] = frozenset()
                    ) -> tuple[list[int], list[dict]]:
    """Choose ``n_keep`` audible, mutually distinct presets by measurement.

    1. *silent*: the loudest probe's RMS is below ``silence_db`` dBFS;
    2. *duplicate*: in key order, a preset whose fingerprint is within ``duplicate_db`` (RMS
       dB difference) of an already kept preset;
    3. *least distinct*: while more than ``n_keep`` remain, of the closest remaining pair the
       preset with the higher key is dropped.

    Keys in ``protected`` (already chosen elsewhere) are never dropped in steps 2-3, but
    the others are compared with them.

    Returns:
        (kept keys in ascending order, one record per dropped preset with the reason and
        the measured figures).

    Raises:
        NotEnoughPresets: fewer than ``n_keep`` presets survive steps 1-2.
    """
    name = name or (lambda k: str(k))
    dropped: list[dict] = []
    kept: list[PresetProbe] = []
    for p in sorted(probes, key=lambda q: q.key):
        rec = {"key": p.key, "name": name(p.key), "level_db": round(p.level_db, 2)}
        if p.level_db < silence_db:
            dropped.append({**rec, "reason": "silent",
                            "detail": f"loudest probe RMS {p.level_db:.1f} dBFS < "
                                      f"{silence_db:.1f} dBFS"})
            continue
        dists = [(fingerprint_distance(p.fingerprint, q.fingerprint), q) for q in kept]
        close = min(dists, key=lambda dq: dq[0]) if dists else None
        if close is not None and close[0] < duplicate_db and p.key not in protected:
            dropped.append({**rec, "reason": "duplicate", "of": close[1].key,
                            "of_name": name(close[1].key), "distance_db": round(close[0], 3),
                            "detail": f"fingerprint {close[0]:.2f} dB from {name(close[1].key)}"
                                      f" (< {duplicate_db} dB)"})
            continue
        kept.append(p)
    if len(kept) < n_keep:
        raise NotEnoughPresets(
            f"only {len(kept)} distinct, audible {what}s were found ({len(dropped)} dropped as "
            f"silent or duplicate) but {n_keep} classes were asked for. Ask for fewer classes "
            f"or use a richer SoundFont (soundfont=/path/to/file.sf2). Dropped: "
            + ", ".join(f"{d['name']} ({d['reason']})" for d in dropped))
    if len(kept) > n_keep:
        fps = np.stack([p.fingerprint for p in kept])
        dist = np.sqrt(((fps[:, None, :] - fps[None, :, :]) ** 2).mean(-1))
        np.fill_diagonal(dist, np.inf)
        alive = np.ones(len(kept), bool)
        free = np.array([p.key not in protected for p in kept])
        if free.sum() < len(kept) - n_keep:
            raise ValueError(f"{int((~free).sum())} protected {what}s but n_keep={n_keep}")
        while alive.sum() > n_keep:
            pair_ok = alive[:, None] & alive[None, :] & (free[:, None] | free[None, :])
            sub = np.where(pair_ok, dist, np.inf)
            i, j = np.unravel_index(np.argmin(sub), sub.shape)
            lo, hi = sorted((int(i), int(j)), key=lambda k: kept[k].key)
            if not free[hi]:
                lo, hi = hi, lo
            alive[hi] = False
            p, q = kept[hi], kept[lo]
            dropped.append({"key": p.key, "name": name(p.key), "level_db": round(p.level_db, 2),
                            "reason": "least_distinct", "of": q.key, "of_name": name(q.key),
                            "distance_db": round(float(dist[hi, lo]), 3),
                            "detail": f"closest remaining pair with {name(q.key)} "
                                      f"({dist[hi, lo]:.2f} dB); dropped to keep {n_keep}"})
        kept = [p for p, a in zip(kept, alive, strict=True) if a]
    dropped.sort(key=lambda d: d["key"])
    return [p.key for p in kept], dropped


# --- processes -------------------------------------------------------------------------

def parallel_map(fn, tasks: list, workers: int):
    """``map(fn, tasks)`` in order, in ``workers`` processes when more than one.

    Uses ``fork`` where available (workers only run numpy and the renderer), else spawn.
    Yields results in task order as they become available.
    """
    workers = max(1, min(int(workers), len(tasks), os.cpu_count() or 1))
    if workers == 1:
        for t in tasks:
            yield fn(t)
        return
    import multiprocessing as mp

    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with mp.get_context(method).Pool(workers, initializer=_default_signals) as pool:
        yield from pool.imap(fn, tasks, chunksize=1)


def _default_signals() -> None:
    """A worker's signals as the operating system's defaults. A forked worker inherits the
    run's preemption handler (SIGTERM noted, the run goes on to its next checkpoint), and
    the pool stops its workers with SIGTERM: with that handler they would not stop, and the
    pool would wait for them for ever after the last render."""
    import signal

    from audiocil.engine.preemption import SIGNALS

    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
