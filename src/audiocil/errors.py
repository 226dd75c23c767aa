"""Errors a user can act on, and how the command line reports them.

Every mistake a user can fix (a config value, missing data, a bad audio file, a bad resume
target, a corrupt cache entry) raises a :class:`UserError`: its message names the key or the
path and says what to do. ``python -m audiocil`` prints such an error as one short block and
exits with :data:`EXIT_USER_ERROR` (2), without a traceback; ``AUDIOCIL_TRACEBACK=1`` prints
the traceback too. Any other exception is a programming error and keeps its traceback.

The family (existing error classes join it rather than being rewritten)::

    UserError
    ├── ConfigError        a config value (also a ValueError)
    ├── DataError          a dataset, its metadata or the feature cache
    │   └── AudioError     one audio file (audio_io.BadAudioFile, MissingAudioFiles)
    └── ResumeError        a resume target or a checkpoint (checkpoints.CheckpointError)

This module imports nothing of audiocil, so every layer may raise these errors.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback

#: the exit code of a run stopped by a user error
EXIT_USER_ERROR = 2
#: set to 1 to print the traceback of user errors as well
TRACEBACK_ENV = "AUDIOCIL_TRACEBACK"


class UserError(Exception):
    """An error the user can fix; the message names the key or path and what to do.

    Args:
        message: what is wrong, naming the key (``method.memory.size=-5``) or the path.
        hint: what to do about it, when the message does not say it already.
    """

    #: the heading of the printed block
    kind = "error"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint
        self.notes: list[str] = []  # added on the way out (e.g. what became of the run directory)


class ConfigError(UserError, ValueError):
    """A config value that is missing, of the wrong type or out of range."""

    kind = "config error"


class DataError(UserError):
    """A dataset that is not where it should be, bad metadata, or a corrupt feature cache."""

    kind = "data error"


class AudioError(DataError):
    """An audio file that cannot be used."""

    kind = "data error"


class ResumeError(UserError):
    """A resume target that is not a resumable run, or a checkpoint that cannot be loaded."""

    kind = "cannot resume"


def find_user_error(err: BaseException | None) -> UserError | None:
    """The :class:`UserError` behind ``err``: itself, or the first one in its chain of causes
    (Hydra's ``instantiate`` and OmegaConf's resolvers wrap what they call). An error raised
    while another was being handled is not its wrapper: only Hydra's and OmegaConf's own
    errors are followed to their context, so a bug in an ``except`` block keeps its traceback."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, UserError):
            return err
        seen.add(id(err))
        wrapper = type(err).__module__.split(".")[0] in ("hydra", "omegaconf")
        err = err.__cause__ or (err.__context__ if wrapper else None)
    return None


def is_hydra_usage_error(err: BaseException) -> bool:
    """A mistake on the command line that Hydra or OmegaConf refuses while composing the
    config (an unknown key or option, an override that does not parse)."""
    try:
        from hydra.errors import (
            ConfigCompositionException,
            MissingConfigException,
            OverrideParseException,
        )
    except ImportError:  # pragma: no cover
        return False
    return isinstance(err, (ConfigCompositionException, MissingConfigException,
                            OverrideParseException))


def format_user_error(err: UserError, notes: list[str] | None = None) -> str:
    """The block printed for a user error: the kind and message, the hint, any notes (e.g.
    what became of the run directory), and how to see the traceback."""
    lines = [f"audiocil: {err.kind}: {str(err).strip()}"]
    if err.hint:
        lines.append(err.hint)
    lines += list(notes or getattr(err, "notes", None) or [])
    if os.environ.get(TRACEBACK_ENV) != "1":
        lines.append(f"({TRACEBACK_ENV}=1 shows the traceback)")
    return "\n".join(lines)


def report(err: BaseException) -> int | None:
    """Print ``err`` for a person if it is a user error and return the exit code; None for
    a programming error (whose traceback the caller lets Python print)."""
    user = find_user_error(err)
    if user is None and is_hydra_usage_error(err):
        user = ConfigError(_hydra_message(err), hint="Check the override's spelling; "
                           "`python -m audiocil --help` lists every group and its options.")
    if user is None:
        return None
    if os.environ.get(TRACEBACK_ENV) == "1":
        traceback.print_exception(err, file=sys.stderr)
    sys.stderr.flush()
    print(format_user_error(user), file=sys.stderr, flush=True)
    return EXIT_USER_ERROR


def _hydra_message(err: BaseException) -> str:
    parts = []
    while err is not None and len(parts) < 4:
        text = str(err).strip()
        if text and text not in parts:
            parts.append(text)
        err = err.__cause__
    return "\n".join(parts)


def run_reported(entry):
    """Call a Hydra entry point so that user errors are reported by :func:`report` (exit 2)
    rather than by Hydra (a traceback and its ``HYDRA_FULL_ERROR`` hint, exit 1).

    Hydra is asked to let every exception through (``HYDRA_FULL_ERROR=1``, for this process
    and the DDP workers it starts); a programming error then ends with Python's traceback.
    """
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        return entry()
    except Exception as err:  # noqa: BLE001 - a user error is reported, any other re-raised
        code = report(err)
        if code is None:
            raise
        raise SystemExit(code) from None


@contextlib.contextmanager
def reported(single: bool = True):
    """Inside a Hydra job: report a user error and exit with 2 before Hydra sees it (Hydra
    would log its overrides first). In a multirun (``single=False``) the error goes on to
    Hydra, which runs the other jobs and raises it at the end (:func:`run_reported`)."""
    try:
        yield
    except Exception as err:  # noqa: BLE001 - a user error is reported, any other re-raised
        code = report(err) if single else None
        if code is None:
            raise
        raise SystemExit(code) from None
