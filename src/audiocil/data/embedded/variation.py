"""Seeded recording variation: what makes clean SoundFont renders sound recorded.

Pure numpy functions of (waveform, parameters, random generator); the same generator
state gives the same output. :func:`vary` chains them in the order a recording would:

1. detune by a few cents (resampling by linear interpolation; the clip keeps its length),
2. a short synthetic room: a direct path plus an exponentially decaying noise tail,
   whose 60 dB decay time and direct-to-reverberant ratio (DRR) are drawn per clip,
3. a microphone / preamp colouring: a spectral tilt (dB per octave around 1 kHz) and
   three random peaking bands (centre 100 Hz-6 kHz, 0.3-1 octave wide, gain within
   +-``eq_db``), applied together as one zero-phase gain curve,
4. peak normalisation and a random gain,
5. additive coloured noise (spectral slope between white and brown) at a random SNR,
   measured against the clip's mean power.

All ranges are :class:`Variation` fields, flat floats so Hydra can override each one;
``Variation.off()`` disables everything except the peak gain.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields

import numpy as np
import scipy.signal  # noqa: F401 - imported here, once (workers forked later inherit it)


@dataclass(frozen=True)
class Variation:
    """Ranges of the recording variation (each value drawn uniformly per clip).

    Attributes:
        gain_db_min, gain_db_max: peak level of the clean clip before noise, dBFS.
        snr_db_min, snr_db_max: signal-to-noise ratio of the added noise, dB
            (``snr_db_min >= 200`` turns noise off).
        noise_slope_max: noise spectral slope is drawn in ``[0, noise_slope_max]``:
            0 = white, 1 = pink, 2 = brown.
        detune_cents: detuning drawn in ``[-detune_cents, +detune_cents]``.
        room_rt60_ms_min, room_rt60_ms_max: 60 dB decay time of the room tail, ms
            (``room_rt60_ms_max == 0`` turns the room off).
        room_drr_db_min, room_drr_db_max: direct-to-reverberant energy ratio, dB.
        tilt_db_per_octave: spectral tilt drawn in ``[-tilt, +tilt]`` dB per octave.
        eq_db: gain of each of the three random peaking bands, drawn in ``[-eq_db, eq_db]``.
    """

    gain_db_min: float = -20.0
    gain_db_max: float = -1.0
    snr_db_min: float = -10.0
    snr_db_max: float = 20.0
    noise_slope_max: float = 2.0
    detune_cents: float = 25.0
    room_rt60_ms_min: float = 30.0
    room_rt60_ms_max: float = 400.0
    room_drr_db_min: float = -6.0
    room_drr_db_max: float = 15.0
    tilt_db_per_octave: float = 4.0
    eq_db: float = 9.0

    def __post_init__(self) -> None:
        for lo, hi in (("gain_db_min", "gain_db_max"), ("snr_db_min", "snr_db_max"),
                       ("room_rt60_ms_min", "room_rt60_ms_max"),
                       ("room_drr_db_min", "room_drr_db_max")):
            if getattr(self, lo) > getattr(self, hi):
                raise ValueError(f"variation: {lo}={getattr(self, lo)} > {hi}={getattr(self, hi)}")
        for name in ("detune_cents", "noise_slope_max", "room_rt60_ms_min",
                     "tilt_db_per_octave", "eq_db"):
            if getattr(self, name) < 0:
                raise ValueError(f"variation: {name} must be >= 0, got {getattr(self, name)}")
        if self.gain_db_max > 0:
            raise ValueError(f"variation: gain_db_max must be <= 0 dBFS, got {self.gain_db_max}")

    @classmethod
    def from_kwargs(cls, **kwargs) -> Variation:
        """Build from keyword arguments, naming the valid ones when one is unknown."""
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - valid)
        if unknown:
            raise TypeError(f"unknown variation parameter(s) {unknown}; valid: {sorted(valid)}")
        return cls(**{k: float(v) for k, v in kwargs.items()})

    @classmethod
    def off(cls) -> Variation:
        """Clean renders: no detune, room, tilt or noise (peak gain -1 dBFS)."""
        return cls(gain_db_min=-1.0, gain_db_max=-1.0, snr_db_min=200.0, snr_db_max=200.0,
                   noise_slope_max=0.0, detune_cents=0.0, room_rt60_ms_min=0.0,
                   room_rt60_ms_max=0.0, room_drr_db_min=0.0, room_drr_db_max=0.0,
                   tilt_db_per_octave=0.0, eq_db=0.0)

    @classmethod
    def from_settings(cls, settings: dict) -> Variation:
        """The inverse of :meth:`asdict` (a missing ``eq_db`` means no EQ)."""
        return cls(**{"eq_db": 0.0, **settings})

    def asdict(self) -> dict:
        """The fields; ``eq_db`` only when the EQ is on, so that a chain without EQ keeps
        the settings (and the dataset hash) it had before the EQ existed."""
        out = asdict(self)
        if not self.eq_db:
            del out["eq_db"]
        return out


def detune(wave: np.ndarray, cents: float) -> np.ndarray:
    """Shift pitch (and speed) by ``cents``; the output has the input's length."""
    if cents == 0:
        return wave.astype(np.float32, copy=True)
    ratio = 2.0 ** (cents / 1200.0)
    n = len(wave)
    pos = np.arange(n, dtype=np.float64) * ratio
    return np.interp(pos, np.arange(n), wave, right=0.0).astype(np.float32)


def room_impulse_response(rng: np.random.Generator, sample_rate: int, rt60_ms: float,
                          drr_db: float) -> np.ndarray:
    """Direct path (1 at t=0) plus a decaying noise tail whose energy is ``-drr_db`` dB.

    The tail starts after a 1-5 ms pre-delay, decays by 60 dB in ``rt60_ms`` and is
    smoothed by a one-pole low-pass (air and wall absorption), drawn per call.
    """
    n_tail = max(1, int(sample_rate * rt60_ms / 1000.0))
    predelay = int(sample_rate * rng.uniform(0.001, 0.005))
    t = np.arange(n_tail) / sample_rate
    tail = rng.standard_normal(n_tail) * np.exp(-6.9078 * t / (rt60_ms / 1000.0))
    a = rng.uniform(0.2, 0.8)  # low-pass pole
    from scipy.signal import lfilter

    tail = lfilter([1 - a], [1, -a], tail)
    tail *= np.sqrt(10 ** (-drr_db / 10.0) / (np.sum(tail**2) + 1e-20))
    ir = np.zeros(predelay + n_tail)
    ir[0] = 1.0
    ir[predelay:] += tail
    return ir


def convolve(wave: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """Convolve and keep the input's length."""
    from scipy.signal import fftconvolve

    return fftconvolve(wave, ir)[: len(wave)].astype(np.float32)


EQ_BANDS = 3


def colour(wave: np.ndarray, sample_rate: int, db_per_octave: float,
           bands: list[tuple[float, float, float]] = ()) -> np.ndarray:
    """Zero-phase spectral colouring: a tilt of ``db_per_octave`` around 1 kHz plus peaking
    ``bands`` given as (centre Hz, width in octaves, gain dB), in the FFT domain."""
    if db_per_octave == 0 and not any(g for _, _, g in bands):
        return wave
    f = np.fft.rfftfreq(len(wave), 1.0 / sample_rate)
    octaves = np.log2(np.maximum(f, 50.0) / 1000.0)
    gain_db = db_per_octave * octaves
    for centre, width, gain in bands:
        gain_db = gain_db + gain * np.exp(-0.5 * ((octaves - np.log2(centre / 1000.0))
                                                  / width) ** 2)
    spec = np.fft.rfft(wave) * 10 ** (gain_db / 20.0)
    return np.fft.irfft(spec, n=len(wave)).astype(np.float32)


def tilt(wave: np.ndarray, sample_rate: int, db_per_octave: float) -> np.ndarray:
    """Spectral tilt of ``db_per_octave`` around 1 kHz (zero-phase, in the FFT domain)."""
    return colour(wave, sample_rate, db_per_octave)


def coloured_noise(rng: np.random.Generator, n: int, slope: float) -> np.ndarray:
    """Unit-power noise whose power falls by ``slope`` * 3 dB per octave (0 white, 1 pink)."""
    white = rng.standard_normal(n)
    if slope == 0:
        return white
    spec = np.fft.rfft(white)
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    noise = np.fft.irfft(spec / f ** (slope / 2.0), n=n)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-20)


def add_noise(wave: np.ndarray, rng: np.random.Generator, snr_db: float,
              slope: float) -> np.ndarray:
    """Add coloured noise at ``snr_db`` relative to the clip's mean power."""
    power = float(np.mean(np.square(wave, dtype=np.float64)))
    if power <= 0 or snr_db >= 200:
        return wave
    noise = coloured_noise(rng, len(wave), slope) * np.sqrt(power / 10 ** (snr_db / 10.0))
    return (wave + noise).astype(np.float32)


def set_peak(wave: np.ndarray, peak_db: float) -> np.ndarray:
    peak = float(np.max(np.abs(wave))) if len(wave) else 0.0
    if peak <= 0:
        return wave.astype(np.float32, copy=True)
    return (wave * (10 ** (peak_db / 20.0) / peak)).astype(np.float32)


def vary(wave: np.ndarray, sample_rate: int, params: Variation,
         rng: np.random.Generator, *, detune_ok: bool = True) -> tuple[np.ndarray, dict]:
    """Apply the whole recording chain to one clean clip.

    Args:
        wave: (S,) float clip.
        detune_ok: False skips the detune (e.g. for unpitched drum hits).

    Returns:
        the varied clip (S,) float32 in [-1, 1], and the values drawn (for the manifest or
        heuristic labels).
    """
    u = rng.uniform
    drawn = {
        "detune_cents": float(u(-params.detune_cents, params.detune_cents)),
        "rt60_ms": float(u(params.room_rt60_ms_min, params.room_rt60_ms_max)),
        "drr_db": float(u(params.room_drr_db_min, params.room_drr_db_max)),
        "tilt_db_per_octave": float(u(-params.tilt_db_per_octave, params.tilt_db_per_octave)),
        "gain_db": float(u(params.gain_db_min, params.gain_db_max)),
        "snr_db": float(u(params.snr_db_min, params.snr_db_max)),
        "noise_slope": float(u(0.0, params.noise_slope_max)),
    }
    out = wave.astype(np.float32, copy=True)
    if detune_ok and drawn["detune_cents"] != 0:
        out = detune(out, drawn["detune_cents"])
    if params.room_rt60_ms_max > 0 and drawn["rt60_ms"] > 0:
        out = convolve(out, room_impulse_response(rng, sample_rate, drawn["rt60_ms"],
                                                  drawn["drr_db"]))
    # eq_db == 0 draws nothing, so the noise that follows is that of a chain without EQ
    n_bands = EQ_BANDS if params.eq_db else 0
    bands = [(float(np.exp(u(np.log(100.0), np.log(6000.0)))), float(u(0.3, 1.0)),
              float(u(-params.eq_db, params.eq_db))) for _ in range(n_bands)]
    drawn["eq_bands"] = bands
    out = colour(out, sample_rate, drawn["tilt_db_per_octave"], bands)
    out = set_peak(out, drawn["gain_db"])
    out = add_noise(out, rng, drawn["snr_db"], drawn["noise_slope"])
    return np.clip(out, -1.0, 1.0).astype(np.float32), drawn


# ---- version 2: one spectral pass -----------------------------------------------------------
def draw(params: Variation, rng: np.random.Generator, *, detune_ok: bool = True) -> dict:
    """The per-clip values of the version-2 chain, drawn before the clip is rendered (the
    detune is rendered into the note: see :func:`record`)."""
    u = rng.uniform
    drawn = {
        "detune_cents": float(u(-params.detune_cents, params.detune_cents)) if detune_ok else 0.0,
        "rt60_ms": float(u(params.room_rt60_ms_min, params.room_rt60_ms_max)),
        "drr_db": float(u(params.room_drr_db_min, params.room_drr_db_max)),
        "tilt_db_per_octave": float(u(-params.tilt_db_per_octave, params.tilt_db_per_octave)),
        "gain_db": float(u(params.gain_db_min, params.gain_db_max)),
        "snr_db": float(u(params.snr_db_min, params.snr_db_max)),
        "noise_slope": float(u(0.0, params.noise_slope_max)),
    }
    n_bands = EQ_BANDS if params.eq_db else 0
    drawn["eq_bands"] = [(float(np.exp(u(np.log(100.0), np.log(6000.0)))), float(u(0.3, 1.0)),
                          float(u(-params.eq_db, params.eq_db))) for _ in range(n_bands)]
    return drawn


@functools.lru_cache(maxsize=8)
def _bins(n_fft: int, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(octaves re 1 kHz, floored at 50 Hz; natural log of the bin index, bin 0 as 1) of
    the ``rfft`` bins of length ``n_fft``, float32."""
    f = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    k = np.arange(len(f), dtype=np.float64)
    k[0] = 1.0
    return (np.log2(np.maximum(f, 50.0) / 1000.0).astype(np.float32),
            np.log(k).astype(np.float32))


def _energy(spec: np.ndarray, n_fft: int) -> float:
    """Sum of squares of the length-``n_fft`` real signal whose ``rfft`` is ``spec``."""
    e = 2.0 * float(np.vdot(spec, spec).real) - float(abs(spec[0]) ** 2)
    if n_fft % 2 == 0:
        e -= float(abs(spec[-1]) ** 2)
    return e / n_fft


def record(wave: np.ndarray, sample_rate: int, params: Variation, drawn: dict,
           rng: np.random.Generator) -> np.ndarray:
    """The version-2 recording chain on a clip rendered with ``drawn["detune_cents"]``.

    In one FFT of length ``N >= len(wave) + len(room) - 1``: the room (a linear
    convolution, truncated to the clip), the tilt and EQ (the same zero-phase gain curve
    as :func:`colour`) and coloured noise drawn in the frequency domain (unit bins of random
    phase shaped by ``k ** -(slope / 2)``, as :func:`coloured_noise` shapes white noise) at
    ``snr_db`` against the clean clip's mean power (both by Parseval, over the clip's
    length). Then the clip's peak is set to ``gain_db`` (so nothing is clipped). Three real
    FFTs, in float32.

    Returns:
        (S,) float32, peak ``10 ** (gain_db / 20)``.
    """
    from scipy import fft as F

    n = len(wave)
    ir = None
    if params.room_rt60_ms_max > 0 and drawn["rt60_ms"] > 0:
        ir = room_impulse_response(rng, sample_rate, drawn["rt60_ms"], drawn["drr_db"])
    n_fft = F.next_fast_len(n + (len(ir) - 1 if ir is not None else 0), real=True)
    spec = F.rfft(wave.astype(np.float32, copy=False), n_fft)
    if ir is not None:
        spec *= F.rfft(ir.astype(np.float32), n_fft)
    octaves, log_k = _bins(n_fft, sample_rate)
    bands = drawn["eq_bands"]
    if drawn["tilt_db_per_octave"] or any(g for _, _, g in bands):
        gain_db = np.float32(drawn["tilt_db_per_octave"]) * octaves
        for centre, width, gain in bands:
            z = (octaves - np.float32(np.log2(centre / 1000.0))) * np.float32(1.0 / width)
            gain_db += np.float32(gain) * np.exp(np.float32(-0.5) * z * z)
        spec *= np.exp(gain_db * np.float32(np.log(10.0) / 20.0))
    if params.snr_db_min < 200 and drawn["snr_db"] < 200:
        power = _energy(spec, n_fft) / n
        if power > 0:
            # white noise as unit bins of random phase (a flat spectrum: its samples are
            # Gaussian by the central limit theorem), then coloured
            phase = rng.random(len(spec), dtype=np.float32) * np.float32(2 * np.pi)
            noise = np.empty(len(spec), np.complex64)
            noise.real, noise.imag = np.cos(phase), np.sin(phase)
            noise[0] = 0.0
            noise *= np.exp(np.float32(-drawn["noise_slope"] / 2.0) * log_k)
            noise_power = _energy(noise, n_fft) / n_fft
            spec += noise * np.float32(np.sqrt(power / 10 ** (drawn["snr_db"] / 10.0)
                                               / noise_power))
    out = F.irfft(spec, n_fft)[:n]
    return set_peak(out, drawn["gain_db"])
