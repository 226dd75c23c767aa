"""Find the commands that the docs show, and check that each one works without running it.

Where commands are found (see :func:`collect`):

* ``README.md`` and ``docs/*.md``: every line of a fenced code block, backslash continuations
  joined, and every inline `code` span of the prose (a span may wrap across lines);
* ``conf/**/*.yaml``: the comment lines at the top of the file: a line that starts with a
  command (the command ends at the first run of two or more spaces; what follows is a remark)
  and the inline `code` spans of those lines.

A command is ``python -m audiocil ...``, ``audiocil ...``, ``python -m audiocil.<module> ...``,
``python <script>.py ...`` or ``make ...`` (after ``NAME=value`` environment assignments such as
``PYTHONPATH=src``). An inline span made only of ``key=value`` Hydra overrides (such as
`dataset.root=/data/nsynth`) is checked too: it must compose on the default config or on one
option of its key's group (`dataset.root=...` composes with ``dataset=nsynth100``).

How each one is checked (:class:`Checker`). A command is split into words as a POSIX shell
would split it, and an unquoted shell operator (``< > | & ; ( )``) is an error: pasted into a
shell, ``resume=outputs/cil/runs/<time>`` is a redirection. Hydra overrides are parsed as
written (Hydra's grammar refuses ``<`` too), then placeholders are filled in: a value holding
``YYYY-MM-DD_HH-MM-SS`` (``outputs/cil/runs/YYYY-MM-DD_HH-MM-SS``) or, in the arguments of a
script, ``<...>``, becomes a run directory with a ``config.yaml``; ``...`` and ``/data/...``,
``/path/...`` paths become a temporary folder.

* ``audiocil <tool> ...`` / ``python -m audiocil <tool> ...`` for a tool of
  ``audiocil.__main__.SUBCOMMANDS`` (``report``, ``methods``, ``cache``): that tool's
  ``build_parser()`` must accept the arguments.
* ``python -m audiocil`` / ``audiocil``: composed as ``--cfg job`` would (every job of a ``-m``
  sweep, expanded by Hydra's own sweeper), then resolved, every ``_target_`` imported and its
  arguments bound to its signature, the trainer's keys bound to ``lightning.Trainer``, and the
  method's scenarios checked as the run does at start-up. No dataset is built.
* ``python -m audiocil.<module>`` and ``python <script>.py``: the module's ``build_parser()``
  must accept the arguments.
* ``make <target>``: the target must be in the Makefile; a recipe that runs one of the commands
  above (``make run``, ``make bench-data``) is checked as that command, with ``ARGS=...``.

Illustrative commands (the only ones skipped) say so in the remark right after them, starting
with the word "illustrative": ``python -m audiocil method=mine   # illustrative: your method``
in a code block or a config header, `` `python -m audiocil method=mine` (illustrative) ``
after an inline span.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import io
import re
import shlex
import sys
from collections.abc import Iterable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from audiocil.config import CONFIG_DIR, compose, validate

REPO = Path(__file__).resolve().parents[1]
MARKER = "illustrative"
FENCE = re.compile(r"^\s*(```|~~~)")
SPAN = re.compile(r"(?<!`)`([^`]+)`(?!`)")
ENV = re.compile(r"^[A-Z_][A-Z0-9_]*=")
OVERRIDE = re.compile(r"^(\+\+|\+|~)?[a-z_][\w.@/-]*=\S*$")
PLACEHOLDER = re.compile(r"<[^<>]+>")  # argparse arguments only: Hydra's grammar refuses < >
RUN_STAMP = "YYYY-MM-DD_HH-MM-SS"  # outputs/cil/runs/YYYY-MM-DD_HH-MM-SS: a run directory
SHELL_OPERATORS = set("<>|&;()")
HYDRA_FLAGS = {"--help", "-h", "--hydra-help", "--resolve"}
HYDRA_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p"}


@dataclass(frozen=True)
class Shown:
    """A command, or an inline span of overrides, as a document shows it."""

    path: str         # relative to the repository
    line: int         # where it starts, 1-based
    text: str         # continuations joined, remark and shell comment left out
    kind: str         # "command" | "overrides"
    illustrative: bool = False

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _argv(text: str) -> list[str] | None:
    """The words a POSIX shell makes of ``text`` (its operators ``< > | & ; ( )`` apart)."""
    lex = shlex.shlex(text, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    try:
        return list(lex)
    except ValueError:
        return None


def is_command(text: str) -> bool:
    """Whether ``text`` starts with one of the commands this module checks."""
    argv = _argv(text)
    while argv and ENV.match(argv[0]):
        argv = argv[1:]
    if not argv:
        return False
    prog, rest = argv[0], argv[1:]
    if prog in ("make", "audiocil"):
        return True
    if prog in ("python", "python3") or prog.endswith("/python"):
        if rest[:1] == ["-m"]:
            return len(rest) > 1 and (rest[1] == "audiocil" or rest[1].startswith("audiocil."))
        return bool(rest) and rest[0].endswith(".py")
    return False


def is_overrides(text: str) -> bool:
    tokens = text.split()
    return bool(tokens) and all(OVERRIDE.match(t) for t in tokens)


def _shell_remark(line: str) -> tuple[str, str]:
    """``line`` without its shell comment, and the comment."""
    m = re.search(r"(^|\s)#", line)
    return (line[:m.start()].rstrip(), line[m.end():].strip()) if m else (line.rstrip(), "")


def _spans(text: str, path: str, first_line: int = 1) -> list[Shown]:
    found = []
    for m in SPAN.finditer(text):
        inner = " ".join(m.group(1).replace("\\|", "|").split())
        kind = "command" if is_command(inner) else "overrides" if is_overrides(inner) else None
        if kind is None:
            continue
        after = text[m.end():m.end() + 40].lstrip().lstrip("(").lower()
        found.append(Shown(path, first_line + text.count("\n", 0, m.start()), inner, kind,
                           after.startswith(MARKER)))
    return found


def from_markdown(text: str, path: str) -> list[Shown]:
    """The commands in the code blocks and the inline spans of a markdown document."""
    lines = text.splitlines()
    found: list[Shown] = []
    prose: list[str] = []  # the text outside code blocks, line for line
    fenced, i = False, 0
    while i < len(lines):
        line, start = lines[i], i
        if FENCE.match(line):
            fenced = not fenced
        elif fenced:
            while line.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line.rstrip()[:-1].rstrip() + " " + lines[i].strip()
            command, remark = _shell_remark(line.strip())
            if is_command(command):
                found.append(Shown(path, start + 1, command, "command",
                                   remark.lower().startswith(MARKER)))
        else:
            prose.append(line)
            i += 1
            continue
        prose.extend([""] * (i - start + 1))
        i += 1
    found += _spans("\n".join(prose), path)
    return sorted(found, key=lambda s: s.line)


def from_config(text: str, path: str) -> list[Shown]:
    """The commands in the comment lines at the top of a config file."""
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("#").strip())
    found: list[Shown] = []
    i = 0
    while i < len(header):
        line, start = header[i], i
        while line.endswith("\\") and i + 1 < len(header):
            i += 1
            line = line[:-1].rstrip() + " " + header[i]
        command, _, remark = re.split(r"(\s{2,})", line, maxsplit=1) \
            if re.search(r"\s{2,}", line) else (line, "", "")
        command, comment = _shell_remark(command)
        remark = (comment or remark).lstrip("#( ").lower()
        if is_command(command):
            found.append(Shown(path, start + 1, command, "command", remark.startswith(MARKER)))
        i += 1
    found += _spans("\n".join(header), path)
    return sorted(found, key=lambda s: s.line)


def collect(repo: Path = REPO) -> list[Shown]:
    """Every command shown in ``README.md``, ``docs/*.md`` and the headers of ``conf/``."""
    found: list[Shown] = []
    for doc in [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]:
        found += from_markdown(doc.read_text(), str(doc.relative_to(repo)))
    for conf in sorted((repo / "conf").rglob("*.yaml")):
        found += from_config(conf.read_text(), str(conf.relative_to(repo)))
    return found


def makefile_targets(path: Path) -> tuple[dict[str, list[str]], str | None]:
    """The Makefile's targets with their recipe lines, and its default goal."""
    targets: dict[str, list[str]] = {}
    default, current = None, None
    for line in path.read_text().splitlines():
        if line.startswith("\t") and current is not None:
            targets[current].append(line.strip().lstrip("@-"))
        elif m := re.match(r"^\.DEFAULT_GOAL\s*:?=\s*(\S+)", line):
            default = m.group(1)
        elif m := re.match(r"^([\w.-]+):(?!=)", line):
            current = m.group(1)
            targets.setdefault(current, [])
        elif line.strip():
            current = None
    return targets, default


def message(err: BaseException) -> str:
    """One line: the exception's message (Hydra's own), with its cause if it adds something."""
    text = str(err).split("\nConfig search path")[0]
    cause = err.__cause__
    if cause is not None and str(cause) and str(cause).splitlines()[0] not in text:
        text += f" ({str(cause).splitlines()[0]})"
    return " ".join(text.split()) or type(err).__name__


def _load_script(path: Path):
    if str(path.parent) not in sys.path:  # its siblings import as `python <script>.py` has them
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(f"_docs_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import has it (dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module


def _bind(target: str, node: dict, depth: int) -> None:
    """Import ``target`` and bind the node's keys to its signature (no call)."""
    from hydra.utils import get_object

    obj = get_object(target)
    kwargs = {k: v for k, v in node.items() if not (k.startswith("_") and k.endswith("_"))}
    if depth == 1:
        kwargs.pop("name", None)  # a group's label (audiocil.run.build_named drops it)
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return
    try:
        signature.bind_partial(**kwargs)
    except TypeError as err:
        raise TypeError(f"{target}: {err}") from None


def _walk_targets(node, depth: int = 0) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("_target_"), str):
            _bind(node["_target_"], node, depth)
        for value in node.values():
            _walk_targets(value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _walk_targets(value, depth + 1)


def _missing(tree, prefix: str = ""):
    """The dotted keys whose value is ``???`` (mandatory, not given)."""
    for key, value in tree.items():
        if value == "???":
            yield prefix + key
        elif isinstance(value, dict):
            yield from _missing(value, f"{prefix}{key}.")


class Checker:
    """Checks shown commands; :meth:`check` returns what is wrong, or None."""

    def __init__(self, tmp: Path, repo: Path = REPO):
        self.tmp, self.repo = Path(tmp), repo
        self.groups = {d.name: sorted(p.stem for p in d.glob("*.yaml"))
                       for d in CONFIG_DIR.iterdir() if d.is_dir()}
        self.targets, self.default_goal = makefile_targets(repo / "Makefile")
        self.run_dir = self.tmp / "run"  # stands for <run_dir>: a run with its config.yaml
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.tmp / "data"  # stands for /data/..., /path/... and ...
        self.data_dir.mkdir(exist_ok=True)
        (self.run_dir / "config.yaml").write_text(OmegaConf.to_yaml(compose([])))
        self._composed: dict[tuple[tuple[str, ...], bool], str | None] = {}

    # placeholders -------------------------------------------------------------------------
    def fill(self, value: str) -> str:
        """``.../YYYY-MM-DD_HH-MM-SS`` or ``<...>`` -> a run directory; ``...``, ``/data/...``,
        ``/path/...`` -> a folder."""
        if RUN_STAMP in value or PLACEHOLDER.search(value):
            return str(self.run_dir)
        if value == "..." or value.startswith(("/data/", "/path/")):
            return str(self.data_dir)  # one folder for all: the same composition is cached
        return value

    def fill_override(self, override: str) -> str:
        key, eq, value = override.partition("=")
        return f"{key}={self.fill(value)}" if eq else override

    # the checks ---------------------------------------------------------------------------
    def check(self, shown: Shown) -> str | None:
        try:
            if shown.kind == "overrides":
                return self._overrides(shown.text.split())
            return self._command(shown.text)
        except Exception as err:  # a checker bug must show up as a failure, with its line
            return f"{type(err).__name__}: {message(err)}"

    def failures(self, shown: Iterable[Shown]) -> list[str]:
        """``path:line: command -> what is wrong`` for each shown command that fails."""
        out = []
        for s in shown:
            if not s.illustrative and (err := self.check(s)) is not None:
                out.append(f"{s.where}: {s.text} -> {err.replace(str(self.tmp), '<tmp>')}")
        return out

    def _command(self, text: str) -> str | None:
        argv = _argv(text)
        if argv is None:
            return "the shell cannot parse it (unbalanced quotes)"
        if operators := [a for a in argv if set(a) <= SHELL_OPERATORS]:
            return (f"the shell reads {operators[0]!r} as an operator, not as part of an "
                    "argument: quote the argument")
        while argv and ENV.match(argv[0]):
            argv = argv[1:]
        prog, args = argv[0], argv[1:]
        if prog == "make":
            return self._make(args)
        if prog == "audiocil":
            return self._audiocil(args)
        if args[:1] == ["-m"]:
            module = args[1]
            if module == "audiocil":
                return self._audiocil(args[2:])
            return self._argparse(importlib.import_module(module), module, args[2:])
        script = self.repo / args[0]
        if not script.is_file():
            return f"no such file: {args[0]}"
        return self._argparse(_load_script(script), args[0], args[1:])

    def _audiocil(self, args: list[str]) -> str | None:
        """A tool of the console script (``audiocil report ...``) or a Hydra run."""
        from audiocil.__main__ import SUBCOMMANDS

        if args[:1] == ["check"]:  # `audiocil check ...` composes what a run would
            return self._hydra(args[1:])
        if args and args[0] in SUBCOMMANDS:
            module = SUBCOMMANDS[args[0]].partition(":")[0]
            return self._argparse(importlib.import_module(module), f"audiocil {args[0]}", args[1:])
        return self._hydra(args)

    def _argparse(self, module, name: str, args: list[str]) -> str | None:
        build = getattr(module, "build_parser", None)
        if build is None:
            return f"{name} has no build_parser() to check its arguments with"
        err = io.StringIO()
        try:
            with redirect_stderr(err), redirect_stdout(io.StringIO()):
                build().parse_args([self.fill(a) for a in args])
        except SystemExit:
            lines = err.getvalue().strip().splitlines()
            return lines[-1] if lines else "argparse exited"
        return None

    def _make(self, args: list[str]) -> str | None:
        variables = dict(a.split("=", 1) for a in args if "=" in a)
        goals = [a for a in args if "=" not in a and not a.startswith("-")]
        for goal in goals or [self.default_goal or ""]:
            if goal not in self.targets:
                return f"no target '{goal}' in the Makefile"
            for line in self.targets[goal]:
                line = line.replace("$(PY)", "python").replace("$(ARGS)", variables.get("ARGS", ""))
                if is_command(line) and (err := self._command(line)) is not None:
                    return f"its recipe `{' '.join(line.split())}` -> {err}"
        return None

    def _hydra(self, args: list[str], context: bool = False) -> str | None:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        multirun, cfg_flag, overrides = False, False, []
        it = iter(args)
        for arg in it:
            if arg in ("-m", "--multirun"):
                multirun = True
            elif arg in HYDRA_VALUE_FLAGS:
                cfg_flag |= arg in ("--cfg", "-c")
                next(it, None)
            elif arg in HYDRA_FLAGS:
                pass
            elif arg.startswith("-"):
                return f"{arg}: not a flag this check knows (Hydra's: -m, --cfg, --help, ...)"
            else:
                overrides.append(arg)
        if multirun and cfg_flag:
            return "Hydra takes only one of -m and --cfg"
        parser = OverridesParser.create()
        try:
            parser.parse_overrides(overrides)  # as written: what the command line gets
            overrides = [self.fill_override(o) for o in overrides]
            parsed = parser.parse_overrides(overrides)
        except Exception as err:
            return message(err)
        jobs = BasicSweeper.split_arguments(parsed, None)[0] if multirun else [overrides]
        for job in jobs:
            if (err := self.compose(tuple(job), context)) is not None:
                return f"job {' '.join(job)}: {err}" if multirun else err
        return None

    def _overrides(self, tokens: list[str]) -> str | None:
        """Overrides shown on their own: on the default config, or on one option of the group
        of their key, the values it requires (``dataset.root``) filled in."""
        err = self._hydra(tokens, context=True)
        if err is None:
            return None
        key = tokens[0].split("=", 1)[0].lstrip("+~")
        group = key.split(".")[0]
        if "." in key and group in self.groups:
            for option in self.groups[group]:
                if self._hydra([f"{group}={option}", *tokens], context=True) is None:
                    return None
            err += f" (and with every {group}=... option)"
        return err

    def compose(self, overrides: tuple[str, ...], context: bool = False) -> str | None:
        """What goes wrong composing (and cheaply building) ``overrides``, or None; with
        ``context``, mandatory values left missing (``???``) are filled in first."""
        if (overrides, context) not in self._composed:
            self._composed[overrides, context] = self._compose(list(overrides), context)
        return self._composed[overrides, context]

    def _compose(self, overrides: list[str], context: bool) -> str | None:
        import lightning as L
        from hydra.utils import get_class

        try:
            cfg = compose(overrides)
            for key in _missing(OmegaConf.to_container(cfg)) if context else ():
                OmegaConf.update(cfg, key, str(self.data_dir))
            tree = OmegaConf.to_container(cfg, resolve=True)
            assert isinstance(tree, dict)
            _walk_targets(tree)
            inspect.signature(L.Trainer).bind_partial(**tree["trainer"])
            validate(cfg)  # every value in range, as a run checks it at start-up
            supported = getattr(get_class(cfg.method._target_), "scenarios", ("standard",))
            if cfg.scenario.name not in supported:  # as audiocil.run.check_support at start-up
                return (f"method={cfg.method.name} does not support scenario={cfg.scenario.name} "
                        f"(it supports: {', '.join(supported)})")
            if cfg.resume and not (Path(cfg.resume) / "config.yaml").is_file():
                return f"resume={cfg.resume}: no config.yaml there"
        except Exception as err:
            return message(err)
        return None
