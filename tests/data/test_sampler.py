"""The numba sample player of the version-2 embedded datasets, checked against midirenderer
(the Rust synthesiser version 1 rendered with) on the real SoundFont."""

from __future__ import annotations

import numpy as np
import pytest

from audiocil.data.embedded import sampler as P
from audiocil.data.embedded import soundfont as S


@pytest.fixture(scope="module")
def font() -> P.SoundFont:
    return P.soundfont(S.default_soundfont())


def test_the_soundfont_is_parsed_as_rustysynth_parses_it(font):
    assert len(font.wave) > 1_000_000 and font.wave.dtype == np.float32
    assert {(0, p) for p in range(128)} <= set(font.presets) and (128, 0) in font.presets
    assert font.preset(0, 200) is font.presets[font.default]  # no such program: the first
    assert font.preset(5, 40) is font.presets[(0, 40)]  # unknown bank: the GM fallback
    v = P.voices(font, 0, 60, 100)
    assert v.shape[1] == len(P.V_FIELDS) and len(v) >= 1


@pytest.mark.parametrize(("program", "pitch", "velocity", "drum"), [
    (0, 60, 100, False), (24, 52, 80, False), (40, 70, 127, False), (73, 80, 50, False),
    (88, 60, 100, False), (0, 38, 100, True), (0, 49, 100, True)])
def test_a_note_sounds_like_midirenderer_s(font, program, pitch, velocity, drum):
    """Same level (within 1 dB) and timbre (fingerprint within 6 dB) as the Rust renderer,
    which adds its reverb (the SoundFont's effect sends) on top: the dry voice is the same."""
    hold, length = (0.3, 2.0) if drum else (3.0, 4.0)
    ev = [S.NoteEvent(pitch, velocity, hold, length)]
    ref = S.render_events(S.default_soundfont(), program, ev, is_drum=drum)[0]
    ours = S.render_events(S.default_soundfont(), program, ev, is_drum=drum, engine="sampler")[0]
    assert ours.shape == ref.shape == (int(length * 16000),) and ours.dtype == np.float32
    assert S.rms_db(ours) == pytest.approx(S.rms_db(ref), abs=1.0)
    assert S.fingerprint_distance(S.fingerprint([ours]), S.fingerprint([ref])) < 6.0


def test_renders_are_deterministic_and_detune_shifts_the_pitch(font):
    a = P.render_note(font, 73, 69, 100, 1.0, 1.5)
    assert np.array_equal(a, P.render_note(font, 73, 69, 100, 1.0, 1.5))
    up = P.render_note(font, 73, 69, 100, 1.0, 1.5, detune_cents=100.0)

    def f0(x):  # strongest spectral peak over the held part, parabolic interpolation
        seg = x[P.RENDER_RATE // 4: P.RENDER_RATE]
        spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
        k = int(np.argmax(spec[5:])) + 5
        d = 0.5 * (spec[k - 1] - spec[k + 1]) / (spec[k - 1] - 2 * spec[k] + spec[k + 1])
        return (k + d) * P.RENDER_RATE / len(seg)

    assert f0(up) / f0(a) == pytest.approx(2 ** (1 / 12), rel=0.01)


def test_note_off_releases_and_silent_keys_are_silent(font):
    x = P.render_note(font, 24, 52, 100, 0.5, 3.0)  # nylon guitar: decays after the note-off
    r = P.RENDER_RATE
    assert S.rms_db(x[int(2.5 * r):]) < S.rms_db(x[: int(0.5 * r)]) - 30
    kit = P.render_note(font, 0, 5, 100, 0.3, 1.0, is_drum=True)  # no drum on key 5
    assert not kit.any()


def test_the_sampler_is_much_faster_than_midirenderer():
    """The point of version 2 (a loose bound: the machine is shared)."""
    import time

    events = [S.NoteEvent(60 + k % 12, 100, 3.0, 4.0) for k in range(24)]
    S.render_events(S.default_soundfont(), 0, events[:1], engine="sampler")  # compiled
    t0 = time.process_time()
    S.render_events(S.default_soundfont(), 0, events, engine="sampler")
    ours = time.process_time() - t0
    t0 = time.process_time()
    S.render_events(S.default_soundfont(), 0, events)
    ref = time.process_time() - t0
    assert ours < ref / 2, (ours, ref)
