"""Audio I/O: fixed-length policy, resampling, offsets, and a clear error for every bad file."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiocil.data.audio_io import (
    BadAudioFile,
    MissingAudioFiles,
    check_table_files,
    fix_length,
    load_clip,
    load_table,
)
from audiocil.data.catalog import ClipTable


def _load_fixtures():
    name = "audiocil_tests_data_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("fixtures.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


F = _load_fixtures()


# ----------------------------------------------------------------------------------------
# fixed-length policy


def test_fix_length_pads_short_clips_with_trailing_zeros():
    wave = np.arange(1, 6, dtype=np.float32)
    out = fix_length(wave, 8)
    assert out.shape == (8,)
    np.testing.assert_array_equal(out[:5], wave)
    np.testing.assert_array_equal(out[5:], 0)


def test_fix_length_center_and_start_crops_are_deterministic():
    wave = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(fix_length(wave, 4, "center"), [3, 4, 5, 6])
    np.testing.assert_array_equal(fix_length(wave, 4, "center"), [3, 4, 5, 6])
    np.testing.assert_array_equal(fix_length(wave, 4, "start"), [0, 1, 2, 3])
    assert fix_length(wave, 10, "random") is wave


def test_fix_length_random_crop_is_seeded():
    wave = np.arange(1000, dtype=np.float32)
    a = fix_length(wave, 10, "random", np.random.default_rng(3))
    b = fix_length(wave, 10, "random", np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    starts = {int(fix_length(wave, 10, "random", np.random.default_rng(s))[0]) for s in range(8)}
    assert len(starts) > 1
    for seed in range(8):  # every window is a contiguous slice of the input
        win = fix_length(wave, 10, "random", np.random.default_rng(seed))
        np.testing.assert_array_equal(win, np.arange(win[0], win[0] + 10))
    assert all(0 <= s <= 990 for s in starts)


def test_fix_length_rejects_unknown_crop():
    with pytest.raises(ValueError, match="crop"):
        fix_length(np.zeros(10, np.float32), 4, "middle")


# ----------------------------------------------------------------------------------------
# reading


@pytest.mark.parametrize("src_sr, dst_sr", [(44100, 16000), (8000, 16000), (22050, 32000),
                                            (16000, 16000)])
def test_resampling_gives_the_right_length(tmp_path, src_sr, dst_sr):
    path = F.write_tone(tmp_path / "a.wav", src_sr, 0.5, 440.0)
    out = load_clip(str(path), dst_sr, dst_sr // 2)
    assert out.shape == (dst_sr // 2,) and out.dtype == np.float32
    # a full-length tone: no padding at the end, amplitude preserved
    assert np.abs(out[-50:]).max() > 0.1
    assert 0.45 < np.abs(out).max() < 0.55


def test_stereo_is_mixed_down_to_mono(tmp_path):
    left = F.tone(16000, 0.1, 300.0)
    path = F.write_audio(tmp_path / "st.wav", np.stack([left, np.zeros_like(left)], 1), 16000,
                         subtype="FLOAT")
    out = load_clip(str(path), 16000, 1600)
    np.testing.assert_allclose(out, left / 2, atol=1e-6)


def test_offset_reads_the_clip_at_start_time(tmp_path):
    wave = F.ramp(4410 * 3)
    path = F.write_audio(tmp_path / "soundscape_14804.wav", wave, 44100, subtype="FLOAT")
    out = load_clip(str(path), 44100, 4410, offset_s=0.1)
    np.testing.assert_array_equal(out, wave[4410:8820])
    # a clip running past the end of the file is zero-padded
    out = load_clip(str(path), 44100, 4410, offset_s=0.25)
    np.testing.assert_array_equal(out[:2205], wave[-2205:])
    np.testing.assert_array_equal(out[2205:], 0)


def test_crop_windows_of_long_files(tmp_path):
    wave = F.ramp(16000)
    path = str(F.write_audio(tmp_path / "long.wav", wave, 16000, subtype="FLOAT"))
    np.testing.assert_array_equal(load_clip(path, 16000, 4000, crop="start"), wave[:4000])
    np.testing.assert_array_equal(load_clip(path, 16000, 4000, crop="center"),
                                  wave[6000:10000])
    a = load_clip(path, 16000, 4000, crop="random", rng=np.random.default_rng(5))
    b = load_clip(path, 16000, 4000, crop="random", rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    start = int(np.flatnonzero(wave == a[0])[0])
    np.testing.assert_array_equal(a, wave[start:start + 4000])


def test_center_crop_with_resampling_is_deterministic_and_aligned(tmp_path):
    path = str(F.write_tone(tmp_path / "t.wav", 44100, 1.0, 220.0))
    a = load_clip(path, 16000, 4000, crop="center")
    b = load_clip(path, 16000, 4000, crop="center")
    np.testing.assert_array_equal(a, b)
    full = load_clip(path, 16000, 16000)
    np.testing.assert_allclose(a, full[6000:10000], atol=1e-4)


@pytest.mark.parametrize("kind", F.BAD_KINDS)
def test_every_bad_file_raises_an_error_naming_it(tmp_path, kind):
    path = F.write_bad(tmp_path / f"guitar_electronic_017-041-075_{kind}.wav", kind)
    with pytest.raises(BadAudioFile) as err:
        load_clip(str(path), 16000, 4000)
    assert str(path) in str(err.value)
    assert err.value.path == str(path)
    assert "on_bad_file=skip" in str(err.value)  # says what to do


@pytest.mark.parametrize("kind, words", [
    ("empty", "empty"), ("truncated_data", "truncated"), ("rate_zero", "0 Hz"),
    ("rate_absurd", "3 Hz"), ("garbage", "not a readable audio file"), ("nan_samples", "NaN")])
def test_bad_file_messages_say_what_is_wrong(tmp_path, kind, words):
    path = F.write_bad(tmp_path / "x.wav", kind)
    with pytest.raises(BadAudioFile, match=words):
        load_clip(str(path), 16000, 4000)


def test_missing_file_and_offset_past_the_end(tmp_path):
    with pytest.raises(BadAudioFile, match="not found") as err:
        load_clip(str(tmp_path / "1069_684.wav"), 16000, 100)
    assert "1069_684.wav" in str(err.value)
    path = F.write_tone(tmp_path / "short.wav", 16000, 0.1)
    with pytest.raises(BadAudioFile, match="past the end"):
        load_clip(str(path), 16000, 100, offset_s=5.0)


def test_header_only_wav_has_no_samples(tmp_path):
    path = tmp_path / "hdr.wav"
    with sf.SoundFile(str(path), "w", 16000, 1, "PCM_16") as fh:
        fh.write(np.zeros(0, np.float32))
    with pytest.raises(BadAudioFile, match="no audio samples"):
        load_clip(str(path), 16000, 100)


def test_other_formats_are_read(tmp_path):
    for ext, fmt, sub in [(".flac", "FLAC", "PCM_16"), (".ogg", "OGG", "VORBIS")]:
        path = F.write_audio(tmp_path / f"a{ext}", F.tone(22050, 0.2), 22050, sub, fmt)
        assert load_clip(str(path), 16000, 3200).shape == (3200,)


def test_bad_target_settings_are_config_errors(tmp_path):
    path = str(F.write_tone(tmp_path / "a.wav"))
    with pytest.raises(ValueError, match="sample_rate"):
        load_clip(path, 0, 100)
    with pytest.raises(ValueError, match="num_samples"):
        load_clip(path, 16000, 0)


# ----------------------------------------------------------------------------------------
# tables


def _table(tmp_path, bad: dict[int, str] | None = None, n: int = 5) -> ClipTable:
    paths = []
    for i in range(n):
        p = tmp_path / f"clip_{i}.wav"
        if bad and i in bad:
            if bad[i] == "missing":
                paths.append(str(p))
                continue
            F.write_bad(p, bad[i])
        else:
            F.write_tone(p, 16000, 0.3, 200.0 + 50 * i)
        paths.append(str(p))
    return ClipTable(paths=paths, targets=np.arange(n) % 2)


def test_load_table_reads_every_clip(tmp_path):
    table = _table(tmp_path)
    waves, keep, skipped = load_table(table, 16000, 3200)
    assert waves.shape == (5, 3200) and waves.dtype == np.float32
    assert keep.all() and skipped == []
    np.testing.assert_array_equal(waves[2], load_clip(table.paths[2], 16000, 3200, crop="center"))


def test_load_table_error_mode_raises_on_the_first_bad_file(tmp_path):
    table = _table(tmp_path, {1: "truncated_data", 3: "garbage"})
    with pytest.raises(BadAudioFile) as err:
        load_table(table, 16000, 3200, on_bad_file="error")
    assert "clip_1.wav" in str(err.value)


def test_load_table_skip_mode_drops_and_counts_bad_files(tmp_path, caplog):
    table = _table(tmp_path, {1: "truncated_data", 3: "missing", 4: "empty"})
    with caplog.at_level(logging.WARNING):
        waves, keep, skipped = load_table(table, 16000, 3200, on_bad_file="skip")
    np.testing.assert_array_equal(keep, [True, False, True, False, False])
    assert len(skipped) == 3
    assert "clip_1.wav" in skipped[0] and "clip_3.wav" in skipped[1] and "clip_4.wav" in skipped[2]
    assert np.isnan(waves[~keep]).all()          # never a silent zero row
    assert np.isfinite(waves[keep]).all()
    assert "skipped 3 of 5 clips" in caplog.text


def test_load_table_skip_mode_with_only_bad_files(tmp_path):
    table = _table(tmp_path, {0: "missing", 1: "garbage"}, n=2)
    waves, keep, skipped = load_table(table, 16000, 3200, on_bad_file="skip")
    assert not keep.any() and len(skipped) == 2 and np.isnan(waves).all()


def test_load_table_random_crop_is_seeded_and_thread_independent(tmp_path):
    paths = [str(F.write_audio(tmp_path / f"r{i}.wav", F.ramp(8000), 16000, subtype="FLOAT"))
             for i in range(6)]
    table = ClipTable(paths=paths, targets=np.zeros(6, dtype=np.int64))
    a, _, _ = load_table(table, 16000, 1000, crop="random", rng=7)
    b, _, _ = load_table(table, 16000, 1000, crop="random", rng=np.random.default_rng(7),
                         num_workers=2)
    np.testing.assert_array_equal(a, b)
    assert len({float(row[0]) for row in a}) > 1      # different windows per clip
    c, _, _ = load_table(table, 16000, 1000, crop="center")
    d, _, _ = load_table(table, 16000, 1000, crop="center", num_workers=2)
    np.testing.assert_array_equal(c, d)


def test_load_table_uses_offsets(tmp_path):
    wave = F.ramp(16000)
    p = str(F.write_audio(tmp_path / "s.wav", wave, 16000, subtype="FLOAT"))
    table = ClipTable(paths=[p, p], targets=np.zeros(2, np.int64), offsets=np.array([0.0, 0.5]))
    for crop in ("start", "center", "random"):  # the clip is the window at the offset
        waves, _, _ = load_table(table, 16000, 1600, crop=crop, rng=0)
        np.testing.assert_array_equal(waves[0], wave[:1600])
        np.testing.assert_array_equal(waves[1], wave[8000:9600])


def test_load_table_rejects_unknown_policy(tmp_path):
    with pytest.raises(ValueError, match="on_bad_file"):
        load_table(_table(tmp_path, n=1), 16000, 100, on_bad_file="ignore")


def test_check_table_files_lists_missing_files(tmp_path):
    table = _table(tmp_path, {i: "missing" for i in range(1, 15)}, n=15)
    with pytest.raises(MissingAudioFiles) as err:
        check_table_files(table, source="nsynth-100-fs_train.csv")
    msg = str(err.value)
    assert "14 of 15 audio files listed in nsynth-100-fs_train.csv do not exist" in msg
    assert "clip_1.wav" in msg and "clip_10.wav" in msg
    assert "clip_11.wav" not in msg and "and 4 more" in msg
    assert len(err.value.missing) == 14
    check_table_files(_table(tmp_path / "ok", n=2))  # all present: no error


def test_check_table_files_when_nothing_exists_blames_the_root(tmp_path):
    table = _table(tmp_path, {0: "missing", 1: "missing"}, n=2)
    with pytest.raises(MissingAudioFiles, match="dataset.root"):
        check_table_files(table)
