"""A SoundFont 2 sample player: one note at a time, dry, fast (numba).

The voice model is rustysynth's (``sinshu/rustysynth`` 1.3, the synthesiser inside
``midirenderer``, which the version-1 embedded datasets were rendered with): a preset's
regions that contain the key and velocity each start a voice; a voice plays its sample
with linear interpolation (looping as the sample mode says), through a resonant low-pass
filter, under a DAHDSR volume envelope, a modulation envelope and two triangle LFOs
(vibrato, modulation) acting on pitch, cutoff and level, panned by constant power and
mixed at the General-MIDI channel defaults (volume 100, expression 127, centre pan).
SoundFont modulators are ignored, as rustysynth ignores them.

What differs from a MIDI render (on purpose):

- each note is rendered on its own, from a silent synthesiser, so a clip never carries
  the tail of another note;
- no reverb or chorus (the SoundFont's effect sends are ignored): the recording chain of
  :mod:`audiocil.data.embedded.variation` adds a seeded room to every clip;
- a detune is part of the note (``detune_cents``, a pitch offset like a fine-tune), not a
  resampling of the finished clip, so the envelopes keep their timing;
- the output is mono float32 (the mean of the two pan channels), not 16-bit stereo.

The note is rendered at :data:`RENDER_RATE` = 32 kHz and resampled to the wanted rate
(16 kHz) with soxr: what linear interpolation aliases between 16 and 24 kHz folds above
8 kHz and is filtered out (against a 96 kHz render, the 16 kHz result is at a median 35 dB
SNR; at 48 kHz, 41 dB, for 1.5x the time). About 8 ns of CPU per rendered sample and voice.
The kernel is compiled by numba on first use (seconds; numba caches it on disk, next to
this file, for later processes).
"""

from __future__ import annotations

import functools
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

RENDER_RATE = 32000
BLOCK = 64  # samples per control block (envelopes, LFOs, filter and gains are per block)
N_GEN = 61  # SoundFont 2.04 generator count
NON_AUDIBLE = 1e-3
_LOG_NON_AUDIBLE = math.log(NON_AUDIBLE)

# generator ids (SoundFont 2.04, section 8.1.2)
(G_START_OFS, G_END_OFS, G_STARTLOOP_OFS, G_ENDLOOP_OFS, G_START_COARSE, G_MODLFO_PITCH,
 G_VIBLFO_PITCH, G_MODENV_PITCH, G_CUTOFF, G_Q, G_MODLFO_CUTOFF, G_MODENV_CUTOFF,
 G_END_COARSE, G_MODLFO_VOL) = range(14)
G_PAN = 17
(G_DELAY_MODLFO, G_FREQ_MODLFO, G_DELAY_VIBLFO, G_FREQ_VIBLFO, G_DELAY_MODENV, G_ATTACK_MODENV,
 G_HOLD_MODENV, G_DECAY_MODENV, G_SUSTAIN_MODENV, G_RELEASE_MODENV, G_KEY_MODENV_HOLD,
 G_KEY_MODENV_DECAY, G_DELAY_VOLENV, G_ATTACK_VOLENV, G_HOLD_VOLENV, G_DECAY_VOLENV,
 G_SUSTAIN_VOLENV, G_RELEASE_VOLENV, G_KEY_VOLENV_HOLD, G_KEY_VOLENV_DECAY, G_INSTRUMENT) = \
    range(21, 42)
G_KEY_RANGE, G_VEL_RANGE, G_STARTLOOP_COARSE = 43, 44, 45
G_ATTENUATION, G_ENDLOOP_COARSE, G_COARSE_TUNE, G_FINE_TUNE, G_SAMPLE_ID, G_SAMPLE_MODES = \
    48, 50, 51, 52, 53, 54
G_SCALE_TUNING, G_EXCLUSIVE, G_ROOT_KEY = 56, 57, 58

# the General-MIDI channel defaults rustysynth mixes a note at (channel.rs, synthesizer.rs)
MASTER_VOLUME = 0.5
_CHANNEL_GAIN = ((100 << 7) / 16383 * (127 << 7) / 16383) ** 2
_CHANNEL_PAN = 100 / 16383 * (64 << 7) - 50


@dataclass
class Region:
    """A preset or instrument zone: its generators (int16, N_GEN) and what it points at."""

    gs: np.ndarray
    target: int  # instrument id (preset zones) or sample id (instrument zones)

    def contains(self, key: int, velocity: int) -> bool:
        kr, vr = int(self.gs[G_KEY_RANGE]) & 0xFFFF, int(self.gs[G_VEL_RANGE]) & 0xFFFF
        return (kr & 0xFF) <= key <= (kr >> 8) and (vr & 0xFF) <= velocity <= (vr >> 8)


class SoundFont:
    """The parts of a ``.sf2`` a sample player needs (parsed as rustysynth parses them)."""

    def __init__(self, data: bytes) -> None:
        if data[:4] != b"RIFF" or data[8:12] != b"sfbk":
            raise ValueError("not a SoundFont 2 file (no RIFF sfbk header)")
        lists = {data[o:o + 4]: (o + 4, o + s) for cid, o, s in _chunks(data, 12, len(data))
                 if cid == b"LIST"}
        smpl = {cid: (o, s) for cid, o, s in _chunks(data, *lists[b"sdta"])}[b"smpl"]
        self.wave = np.frombuffer(data, "<i2", smpl[1] // 2, smpl[0]).astype(np.float32)
        self.wave *= np.float32(1 / 32768)
        pd = {cid: (o, s) for cid, o, s in _chunks(data, *lists[b"pdta"])}

        def table(name: bytes, fmt: str) -> list[tuple]:
            o, s = pd[name]
            size = struct.calcsize(fmt)
            return [struct.unpack_from(fmt, data, o + i * size) for i in range(s // size)]

        shdr = table(b"shdr", "<20s5iBbHH")[:-1]
        self.samples = [{"start": r[1], "end": r[2], "start_loop": r[3], "end_loop": r[4],
                         "rate": r[5], "pitch": r[6], "correction": r[7]} for r in shdr]
        inst_zones = _zones(table(b"ibag", "<HH"), table(b"igen", "<Hh"))
        self.instruments = [_regions(inst_zones[a:b], G_SAMPLE_ID, instrument=True)
                            for (a, b) in _spans(table(b"inst", "<20sH"), 1)]
        pre_zones = _zones(table(b"pbag", "<HH"), table(b"pgen", "<Hh"))
        phdr = table(b"phdr", "<20sHHHIII")
        self.presets: dict[tuple[int, int], list[Region]] = {}
        for row, (a, b) in zip(phdr, _spans(phdr, 3), strict=False):
            self.presets[(row[2], row[1])] = _regions(pre_zones[a:b], G_INSTRUMENT,
                                                      instrument=False)
        self.default = min(self.presets)

    def preset(self, bank: int, program: int) -> list[Region]:
        """rustysynth's lookup: the exact preset, else the GM fallback, else the first."""
        if (bank, program) in self.presets:
            return self.presets[(bank, program)]
        fallback = (0, program) if bank < 128 else (128, 0)
        return self.presets.get(fallback, self.presets[self.default])


def _chunks(buf: bytes, off: int, end: int):
    while off + 8 <= end:
        cid, size = buf[off:off + 4], struct.unpack_from("<I", buf, off + 4)[0]
        yield cid, off + 8, size
        off += 8 + size + (size & 1)


def _zones(bags: list[tuple], gens: list[tuple]) -> list[list[tuple[int, int]]]:
    return [gens[bags[i][0]:bags[i + 1][0]] for i in range(len(bags) - 1)]


def _spans(headers: list[tuple], col: int) -> list[tuple[int, int]]:
    return [(headers[i][col], headers[i + 1][col]) for i in range(len(headers) - 1)]


def _regions(zones: list[list[tuple[int, int]]], last: int, instrument: bool) -> list[Region]:
    """Zones -> regions; a first zone that does not end in ``last`` is the global zone."""
    if not zones:
        return []
    has_global = not zones[0] or zones[0][-1][0] != last
    base = np.zeros(N_GEN, np.int16)
    base[G_KEY_RANGE] = base[G_VEL_RANGE] = 0x7F00
    if instrument:
        base[G_CUTOFF] = 13500
        for g in (G_DELAY_MODLFO, G_DELAY_VIBLFO, G_DELAY_MODENV, G_ATTACK_MODENV,
                  G_HOLD_MODENV, G_DECAY_MODENV, G_RELEASE_MODENV, G_DELAY_VOLENV,
                  G_ATTACK_VOLENV, G_HOLD_VOLENV, G_DECAY_VOLENV, G_RELEASE_VOLENV):
            base[g] = -12000
        base[G_SCALE_TUNING], base[G_ROOT_KEY] = 100, -1
        base[46] = base[47] = -1  # keynum, velocity overrides (unused)
    if has_global:
        for t, v in zones[0]:
            if t < N_GEN:
                base[t] = v
        zones = zones[1:]
    out = []
    for zone in zones:
        gs = base.copy()
        for t, v in zone:
            if t < N_GEN:
                gs[t] = v
        out.append(Region(gs, int(np.uint16(gs[last]))))
    return out


@functools.lru_cache(maxsize=2)
def load_soundfont(path: str, mtime_ns: int) -> SoundFont:
    return SoundFont(Path(path).read_bytes())


def soundfont(path: str | os.PathLike) -> SoundFont:
    """The parsed SoundFont, once per process."""
    p = Path(path)
    return load_soundfont(str(p), p.stat().st_mtime_ns)


# ---- voices ------------------------------------------------------------------------------
def _tc(x: float) -> float:  # timecents -> seconds (and cents -> factor)
    return 2.0 ** (x / 1200.0)


#: Layout of a voice's parameter vector (float64) handed to the kernel.
V_FIELDS = ("start", "end", "start_loop", "end_loop", "loop_mode", "rate_ratio", "root_key",
            "tune", "scale", "note_gain", "cutoff", "resonance", "vib_pitch", "mod_pitch",
            "env_pitch", "mod_cutoff", "env_cutoff", "mod_volume", "gain_l", "gain_r",
            "ve_delay", "ve_attack", "ve_hold", "ve_decay", "ve_sustain", "ve_release",
            "me_delay", "me_attack", "me_hold", "me_decay", "me_sustain", "me_release",
            "vib_delay", "vib_freq", "mod_delay", "mod_freq")
_V = {name: i for i, name in enumerate(V_FIELDS)}


def voices(sf: SoundFont, program: int, key: int, velocity: int, is_drum: bool = False,
           rate: int = RENDER_RATE) -> np.ndarray:
    """(V, len(V_FIELDS)) parameters of the voices a note starts (rustysynth's RegionPair,
    RegionEx and Voice.start, at the GM channel defaults)."""
    rows = []
    for pr in sf.preset(128 if is_drum else 0, 0 if is_drum else program):
        if not pr.contains(key, velocity):
            continue
        for ir in sf.instruments[pr.target]:
            if not ir.contains(key, velocity):
                continue
            rows.append(_voice(sf, pr.gs.astype(np.int32) + ir.gs.astype(np.int32),
                               ir.gs.astype(np.int32), sf.samples[ir.target], key, velocity,
                               rate))
    return np.array(rows, np.float64).reshape(len(rows), len(V_FIELDS))


def _voice(sf: SoundFont, g: np.ndarray, ig: np.ndarray, smp: dict, key: int, velocity: int,
           rate: int) -> list[float]:
    v = np.zeros(len(V_FIELDS))

    def ofs(fine: int, coarse: int) -> int:
        return 32768 * int(ig[coarse]) + int(ig[fine])

    v[_V["start"]] = smp["start"] + ofs(G_START_OFS, G_START_COARSE)
    v[_V["end"]] = smp["end"] + ofs(G_END_OFS, G_END_COARSE)
    v[_V["start_loop"]] = smp["start_loop"] + ofs(G_STARTLOOP_OFS, G_STARTLOOP_COARSE)
    v[_V["end_loop"]] = smp["end_loop"] + ofs(G_ENDLOOP_OFS, G_ENDLOOP_COARSE)
    mode = int(ig[G_SAMPLE_MODES])
    v[_V["loop_mode"]] = 0 if mode == 2 else mode
    v[_V["rate_ratio"]] = smp["rate"] / rate
    v[_V["root_key"]] = ig[G_ROOT_KEY] if ig[G_ROOT_KEY] != -1 else smp["pitch"]
    v[_V["tune"]] = g[G_COARSE_TUNE] + 0.01 * (g[G_FINE_TUNE] + smp["correction"])
    v[_V["scale"]] = 0.01 * g[G_SCALE_TUNING]
    attenuation, q_db = 0.1 * g[G_ATTENUATION], 0.1 * g[G_Q]
    db = 2 * 20 * math.log10(velocity / 127) - 0.4 * attenuation - 0.5 * q_db
    v[_V["note_gain"]] = 10 ** (db / 20)
    v[_V["cutoff"]] = 8.176 * _tc(g[G_CUTOFF])
    v[_V["resonance"]] = 10 ** (q_db / 20)
    v[_V["vib_pitch"]] = 0.01 * g[G_VIBLFO_PITCH]
    v[_V["mod_pitch"]] = 0.01 * g[G_MODLFO_PITCH]
    v[_V["env_pitch"]] = 0.01 * g[G_MODENV_PITCH]
    v[_V["mod_cutoff"]] = g[G_MODLFO_CUTOFF]
    v[_V["env_cutoff"]] = g[G_MODENV_CUTOFF]
    v[_V["mod_volume"]] = 0.1 * g[G_MODLFO_VOL]
    pan = min(max(0.1 * g[G_PAN], -50.0), 50.0)
    angle = math.pi / 200 * (_CHANNEL_PAN + pan + 50)
    left, right = (1.0, 0.0) if angle <= 0 else (0.0, 1.0) if angle >= math.pi / 2 else \
        (math.cos(angle), math.sin(angle))
    v[_V["gain_l"]], v[_V["gain_r"]] = left, right

    def keynum(cents: int) -> float:
        return _tc(cents * (60 - key))

    v[_V["ve_delay"]] = _tc(g[G_DELAY_VOLENV])
    v[_V["ve_attack"]] = _tc(g[G_ATTACK_VOLENV])
    v[_V["ve_hold"]] = _tc(g[G_HOLD_VOLENV]) * keynum(g[G_KEY_VOLENV_HOLD])
    v[_V["ve_decay"]] = _tc(g[G_DECAY_VOLENV]) * keynum(g[G_KEY_VOLENV_DECAY])
    v[_V["ve_sustain"]] = min(max(10 ** (-0.1 * g[G_SUSTAIN_VOLENV] / 20), 0.0), 1.0)
    v[_V["ve_release"]] = max(_tc(g[G_RELEASE_VOLENV]), 0.01)
    v[_V["me_delay"]] = _tc(g[G_DELAY_MODENV])
    v[_V["me_attack"]] = _tc(g[G_ATTACK_MODENV]) * (145 - velocity) / 144
    v[_V["me_hold"]] = _tc(g[G_HOLD_MODENV]) * keynum(g[G_KEY_MODENV_HOLD])
    v[_V["me_decay"]] = _tc(g[G_DECAY_MODENV]) * keynum(g[G_KEY_MODENV_DECAY])
    v[_V["me_sustain"]] = min(max(1 - 0.1 * g[G_SUSTAIN_MODENV] / 100, 0.0), 1.0)
    v[_V["me_release"]] = _tc(g[G_RELEASE_MODENV])
    v[_V["vib_delay"]] = _tc(g[G_DELAY_VIBLFO])
    v[_V["vib_freq"]] = 8.176 * _tc(g[G_FREQ_VIBLFO])
    v[_V["mod_delay"]] = _tc(g[G_DELAY_MODLFO])
    v[_V["mod_freq"]] = 8.176 * _tc(g[G_FREQ_MODLFO])
    return v.tolist()


# ---- the kernel --------------------------------------------------------------------------
@numba.njit(cache=True)
def _envelope(t, delay, attack, hold, decay, sustain, released, t_rel, level_rel, vol):
    """DAHDSR envelope value at time ``t`` (s). ``vol``: the volume envelope (exponential
    decay and release, -9.226 nepers over the decay time, as rustysynth), else the
    modulation envelope (linear). Once ``released`` (at ``t_rel``, from ``level_rel``),
    ``decay`` holds the release time."""
    if released:
        dt = t - t_rel
        if vol:
            x = -9.226 / decay * dt if decay > 0 else 0.0
            return level_rel * (math.exp(x) if x >= _LOG_NON_AUDIBLE else 0.0)
        return max(level_rel * (1.0 - dt / decay), 0.0) if decay > 0 else 0.0
    if t < delay:
        return 0.0
    if t < delay + attack:
        return (t - delay) / attack
    if t < delay + attack + hold:
        return 1.0
    dt = t - (delay + attack + hold)
    if vol:
        x = -9.226 / decay * dt
        return max(math.exp(x) if x >= _LOG_NON_AUDIBLE else 0.0, sustain)
    return max(1.0 - dt / decay, sustain) if decay > 0 else sustain


@numba.njit(cache=True)
def _lfo(t, delay, freq):
    """Triangle LFO in [-1, 1], starting at 0 after ``delay``."""
    if freq <= 1e-3 or t < delay:
        return 0.0
    phase = ((t - delay) * freq) % 1.0
    if phase < 0.25:
        return 4.0 * phase
    if phase < 0.75:
        return 4.0 * (0.5 - phase)
    return 4.0 * (phase - 1.0)


@numba.njit(cache=True)
def _render(out, wave, v, key, detune, off_sample, rate):
    """Add one voice (parameters ``v``, laid out as :data:`V_FIELDS`) into ``out``
    (float32, mono) from sample 0, note-off at ``off_sample``, pitch ``key + detune``
    (semitones). Envelopes, LFOs, filter and gain are updated every :data:`BLOCK` samples,
    as rustysynth does. Returns the number of samples the voice sounded."""
    (start, end, start_loop, end_loop, loop_mode, rate_ratio, root_key, tune, scale,
     note_gain, cutoff, resonance, vib_pitch, mod_pitch, env_pitch, mod_cutoff, env_cutoff,
     mod_volume, gain_l, gain_r, ve_delay, ve_attack, ve_hold, ve_decay, ve_sustain,
     ve_release, me_delay, me_attack, me_hold, me_decay, me_sustain, me_release, vib_delay,
     vib_freq, mod_delay, mod_freq) = v
    n = out.shape[0]
    last = min(int(end), wave.shape[0] - 1)  # a non-looping voice stops at its sample's end
    start_loop, end_loop = int(start_loop), int(end_loop)
    looping = (loop_mode == 1 or loop_mode == 3) and int(start) <= start_loop < end_loop <= last
    pos = float(int(start))
    q = resonance - (1.0 - 1.0 / math.sqrt(2.0)) / (1.0 + 6.0 * (resonance - 1.0))
    x1 = x2 = y1 = y2 = 0.0
    a0 = a1 = a2 = a3 = a4 = 0.0
    smoothed = cutoff
    mono = 0.5 * (gain_l + gain_r) * MASTER_VOLUME * _CHANNEL_GAIN  # mean of the pan pair
    dynamic_cutoff = mod_cutoff != 0.0 or env_cutoff != 0.0
    filter_on = False
    released = False
    t_rel = ve_level = me_level = ve_value = me_value = 0.0
    prev_gain = -1.0
    block = np.zeros(BLOCK, np.float64)
    written = 0
    for b0 in range(0, n, BLOCK):
        if not released and b0 >= off_sample and b0 >= rate // 500:
            released = True
            t_rel, ve_level, me_level = b0 / rate, ve_value, me_value
            if loop_mode == 3:
                looping = False
        tb = (b0 + BLOCK) / rate  # rustysynth evaluates the envelopes at the block's end
        if released:
            ve_value = _envelope(tb, 0.0, 0.0, 0.0, ve_release, 0.0, True, t_rel, ve_level,
                                 True)
            me_value = _envelope(tb, 0.0, 0.0, 0.0, me_release, 0.0, True, t_rel, me_level,
                                 False)
        else:
            ve_value = _envelope(tb, ve_delay, ve_attack, ve_hold, ve_decay, ve_sustain, False,
                                 0.0, 0.0, True)
            me_value = _envelope(tb, me_delay, me_attack, me_hold, me_decay, me_sustain, False,
                                 0.0, 0.0, False)
        if (released or tb >= ve_delay + ve_attack + ve_hold) and ve_value <= NON_AUDIBLE:
            break
        vib = _lfo(tb, vib_delay, vib_freq)
        mod = _lfo(tb, mod_delay, mod_freq)
        pitch = key + detune + vib_pitch * vib + mod_pitch * mod + env_pitch * me_value
        ratio = rate_ratio * 2.0 ** ((scale * (pitch - root_key) + tune) / 12.0)
        # oscillator: linear interpolation, looping between start_loop and end_loop
        m = min(BLOCK, n - b0)
        ended = False
        if looping:
            span = float(end_loop - start_loop)
            for k in range(m):
                if pos >= end_loop:
                    pos -= span
                i = int(pos)
                j = i + 1 if i + 1 < end_loop else start_loop
                x = wave[i]
                block[k] = x + (pos - i) * (wave[j] - x)
                pos += ratio
        else:
            for k in range(m):
                i = int(pos)
                if i >= last:
                    ended = True
                    block[k:m] = 0.0
                    break
                x = wave[i]
                block[k] = x + (pos - i) * (wave[i + 1] - x)
                pos += ratio
        # resonant low-pass (RBJ biquad), its cutoff following the LFO and the envelope
        c = cutoff
        if dynamic_cutoff:
            c = cutoff * 2.0 ** ((mod_cutoff * mod + env_cutoff * me_value) / 1200.0)
            c = min(max(c, 0.5 * smoothed), 2.0 * smoothed)  # at most x2 per block
            smoothed = c
        if c < 0.499 * rate:
            if not filter_on or dynamic_cutoff:
                w = 2.0 * math.pi * c / rate
                cw, alpha = math.cos(w), math.sin(w) / (2.0 * q)
                norm = 1.0 + alpha
                a0 = (1.0 - cw) / 2.0 / norm
                a1 = (1.0 - cw) / norm
                a2 = a0
                a3 = -2.0 * cw / norm
                a4 = (1.0 - alpha) / norm
            filter_on = True
            for k in range(m):
                xin = block[k]
                yout = a0 * xin + a1 * x1 + a2 * x2 - a3 * y1 - a4 * y2
                x2, x1, y2, y1 = x1, xin, y1, yout
                block[k] = yout
        else:
            filter_on = False
            if m >= 2:
                x2, x1 = block[m - 2], block[m - 1]
                y2, y1 = x2, x1
        gain = note_gain * ve_value * mono
        if mod_volume > 0.05:
            gain *= 10.0 ** (mod_volume * mod / 20.0)
        if prev_gain < 0.0:
            prev_gain = gain
        step = (gain - prev_gain) / BLOCK  # a linear ramp across the block
        for k in range(m):
            out[b0 + k] += np.float32((prev_gain + step * k) * block[k])
        prev_gain = gain
        written = b0 + m
        if ended:
            break
    return written


def warm_up() -> None:
    """Compile the kernel now (before forking workers, so that they inherit it)."""
    v = np.zeros(len(V_FIELDS))
    v[_V["end"]] = v[_V["end_loop"]] = 4
    for name in ("rate_ratio", "note_gain", "ve_attack", "ve_release", "me_attack",
                 "me_release"):
        v[_V[name]] = 1.0
    _render(np.zeros(BLOCK * 2, np.float32), np.zeros(8, np.float32), v, 60.0, 0.0, BLOCK,
            RENDER_RATE)


def render_note(sf: SoundFont, program: int, pitch: int, velocity: int, hold: float,
                length: float, *, is_drum: bool = False, detune_cents: float = 0.0,
                rate: int = RENDER_RATE) -> np.ndarray:
    """One note, dry and mono, at ``rate``: (round(length * rate),) float32."""
    n = int(round(length * rate))
    out = np.zeros(n, np.float32)
    off = int(round(hold * rate))
    for v in voices(sf, program, pitch, velocity, is_drum, rate):
        _render(out, sf.wave, v, float(pitch), float(detune_cents) / 100.0, off, rate)
    return out
