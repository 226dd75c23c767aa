"""The user-error family: which errors are a person's to fix, and how they are printed."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate

from audiocil.data.audio_io import BadAudioFile, MissingAudioFiles
from audiocil.data.cache import CorruptCacheEntry
from audiocil.data.loaders._common import DatasetNotFound, MetadataError
from audiocil.engine.checkpoints import CheckpointError
from audiocil.errors import (
    AudioError,
    ConfigError,
    DataError,
    ResumeError,
    UserError,
    find_user_error,
    format_user_error,
    report,
)


def test_the_existing_errors_join_the_family_and_keep_their_old_bases(tmp_path):
    assert issubclass(BadAudioFile, AudioError) and issubclass(MissingAudioFiles, AudioError)
    assert issubclass(DatasetNotFound, DataError) and issubclass(DatasetNotFound, FileNotFoundError)
    assert issubclass(MetadataError, DataError) and issubclass(MetadataError, ValueError)
    assert issubclass(CorruptCacheEntry, DataError)
    assert issubclass(CheckpointError, ResumeError) and issubclass(CheckpointError, RuntimeError)
    assert issubclass(ConfigError, ValueError)
    err = DatasetNotFound("NSynth: directory /x not found.\nExpected layout:\n  <root>/a.wav")
    assert str(err).count("\n") == 2  # printed as lines, never as a repr
    assert CorruptCacheEntry(tmp_path, "data.npy is 3 bytes").notes == []


def _loader(root: str):
    raise DatasetNotFound(f"folder dataset: directory {root} not found.")


def test_a_user_error_is_found_behind_hydras_wrapper():
    with pytest.raises(Exception) as wrapped:
        instantiate({"_target_": "tests.test_errors._loader", "root": "/nowhere"})
    assert not isinstance(wrapped.value, UserError)  # Hydra's InstantiationException
    found = find_user_error(wrapped.value)
    assert isinstance(found, DatasetNotFound) and "/nowhere" in str(found)


def test_a_bug_while_handling_a_user_error_stays_a_bug():
    with pytest.raises(TypeError) as bug:
        try:
            raise ConfigError("seed=-1: must be a whole number in 0..4294967295")
        except ConfigError:
            raise TypeError("a bug in the handler") from None
    assert find_user_error(bug.value) is None
    assert report(bug.value) is None  # the caller lets Python print the traceback


def test_the_printed_block(capsys, monkeypatch):
    monkeypatch.delenv("AUDIOCIL_TRACEBACK", raising=False)
    err = ConfigError("seed=-1: must be a whole number in 0..4294967295", hint="Fix the seed.")
    err.notes.append("run directory /r: marked failed (FAILED); nothing to resume")
    assert format_user_error(err).splitlines() == [
        "audiocil: config error: seed=-1: must be a whole number in 0..4294967295",
        "Fix the seed.", "run directory /r: marked failed (FAILED); nothing to resume",
        "(AUDIOCIL_TRACEBACK=1 shows the traceback)"]
    assert report(err) == 2
    assert "Traceback" not in capsys.readouterr().err
    monkeypatch.setenv("AUDIOCIL_TRACEBACK", "1")
    try:
        raise err
    except ConfigError as raised:
        assert report(raised) == 2
    printed = capsys.readouterr().err
    assert printed.startswith("Traceback") and "shows the traceback" not in printed
