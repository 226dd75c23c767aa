"""Every command the docs show is a command that works.

Collects every ``python -m audiocil ...`` / ``audiocil ...`` / ``python -m audiocil.<module> ...``
/ ``python <script>.py ...`` / ``make ...`` command of ``README.md``, ``docs/*.md`` (code
blocks, backslash continuations joined, and inline `code` spans) and of the comment header of
every file in ``conf/``, plus the inline spans made only of overrides (`dataset.root=...`), and
checks each one without running it: Hydra composition as ``--cfg job`` would (every job of a
``-m`` sweep), resolution, every ``_target_`` imported and its arguments bound; argparse for the
modules and scripts; targets for ``make``. A failure reads
``README.md:57: python -m audiocil dataset.on_bad_fil=skip -> Could not override ...``.

A command is read as a POSIX shell reads it, so that it can be pasted: an unquoted ``<``,
``>``, ``(``, ``|``, ``;`` or ``&`` fails (quote ranges: ``'seed=range(1,4)'``), and its
overrides are parsed by Hydra as written. Placeholders that both accept:
``outputs/cil/runs/YYYY-MM-DD_HH-MM-SS`` stands for a run directory (a temporary one with a
``config.yaml``); ``...``, ``/data/...`` and ``/path/...`` for a folder; in the arguments of
scripts and modules, a quoted ``'<...>'`` for a run directory too. Commands that need the
user's data are composed all the same.

Illustrative commands, the only ones skipped, say so in the remark right after them, which
starts with the word "illustrative":

* in a code block or a config header: ``python -m audiocil method=mine   # illustrative: ...``
  (in a config header, ``(illustrative ...)`` after two spaces works too);
* after an inline span: `` `python -m audiocil method=mine` (illustrative) ``.

In a config header a command ends at the first run of two or more spaces; what follows is a
remark, as in ``# python -m audiocil trainer=gpu   (one GPU)``. The collecting and checking
live in :mod:`tests.doc_commands`.
"""

from __future__ import annotations

import pytest

from tests.doc_commands import Checker, Shown, collect, from_config, from_markdown

SHOWN = collect()
DOCUMENTS = list(dict.fromkeys(s.path for s in SHOWN))


@pytest.fixture(scope="module")
def checker(tmp_path_factory) -> Checker:
    return Checker(tmp_path_factory.mktemp("docs_commands"))


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_commands_shown_work(document, checker):
    failures = checker.failures(s for s in SHOWN if s.path == document)
    assert not failures, "commands shown that do not work:\n" + "\n".join(failures)


def test_every_kind_of_command_is_collected():
    texts = {s.text for s in SHOWN}
    for expected in (
        "make run",
        "python -m audiocil --help",
        "python -m audiocil -m method=finetune,replay,icarl seed=1,2,3 experiment=quickstart",
        "python -m audiocil resume=outputs/cil/runs/YYYY-MM-DD_HH-MM-SS",
        "python -m audiocil.evaluate outputs/cil/runs/YYYY-MM-DD_HH-MM-SS --task 4 --devices 2",
        "PYTHONPATH=src python benchmarks/fewshot_table.py --trials 3 --epochs 8 --width 8 "
        "--n-mels 64 --set dataset.loader.format_version=1 --out outputs/fewshot_table",  # two lines
        "dataset.on_bad_file=skip",
        "dataset.soundfont=/path/any.sf2",
    ):
        assert expected in texts, expected
    # the command in the header of every config file that has one
    for s in SHOWN:
        assert s.kind in ("command", "overrides") and s.line >= 1
    headers = {s.path for s in SHOWN if s.path.startswith("conf/")}
    assert "conf/config.yaml" in headers and "conf/method/icarl.yaml" in headers
    assert len(headers) >= 50


FAKE = """\
# A page

```bash
python -m audiocil method=icarl          # fine
python -m audiocil dataset.on_bad_fil=skip
python -m audiocil trainer=gpuu \\
    seed=3
```

Then `make rnu`, `python -m audiocil.evaluate '<run_dir>' --tsk 4` and
`dataset.rooot=/data/x`; `python -m audiocil method=mine` (illustrative), and
`python -m audiocil -m method=finetune,replay,nope`.
"""


def test_a_misspelt_command_fails_with_its_file_line_and_message(checker):
    failures = checker.failures(from_markdown(FAKE, "fake.md"))
    assert len(failures) == 6, "\n".join(failures)
    starts = [
        "fake.md:5: python -m audiocil dataset.on_bad_fil=skip -> "
        "Could not override 'dataset.on_bad_fil'",
        "fake.md:6: python -m audiocil trainer=gpuu seed=3 -> "
        "In 'config': Could not find 'trainer/gpuu'",
        "fake.md:10: make rnu -> no target 'rnu' in the Makefile",
        "fake.md:10: python -m audiocil.evaluate '<run_dir>' --tsk 4 -> ",
        "fake.md:11: dataset.rooot=/data/x -> Could not override 'dataset.rooot'",
        "fake.md:12: python -m audiocil -m method=finetune,replay,nope -> job method=nope: ",
    ]
    for failure, start in zip(failures, starts, strict=True):
        assert failure.startswith(start), failure
    assert "unrecognized arguments: --tsk" in failures[3]
    assert "Key 'on_bad_fil' is not in struct" in failures[0]


def test_illustrative_commands_are_the_only_ones_skipped(checker):
    shown = from_markdown("```\npython -m audiocil method=mine   # illustrative: yours\n"
                          "python -m audiocil method=mine\n```\n", "fake.md")
    assert [s.illustrative for s in shown] == [True, False]
    assert [f.split(" -> ")[0] for f in checker.failures(shown)] == \
        ["fake.md:3: python -m audiocil method=mine"]


def test_config_headers_give_their_command_and_a_remark(checker):
    header = ("# @package _global_\n"
              "# python -m audiocil backbone=smallcnn backbone.widht=8   (a remark: not run)\n"
              "# python -m audiocil method=mine   (illustrative: your method)\n"
              "# Prose, then `python -m audiocil debug=smok`.\n"
              "name: x\n# python -m audiocil not=the_header\n")
    shown = from_config(header, "conf/x.yaml")
    assert shown == [
        Shown("conf/x.yaml", 2, "python -m audiocil backbone=smallcnn backbone.widht=8", "command"),
        Shown("conf/x.yaml", 3, "python -m audiocil method=mine", "command", illustrative=True),
        Shown("conf/x.yaml", 4, "python -m audiocil debug=smok", "command"),
    ]
    failures = checker.failures(shown)
    assert [f.split(" -> ")[0] for f in failures] == [
        "conf/x.yaml:2: python -m audiocil backbone=smallcnn backbone.widht=8",
        "conf/x.yaml:4: python -m audiocil debug=smok"]


def test_sweeps_placeholders_make_and_scripts(checker):
    ok = ["python -m audiocil -m seed='range(1,3)' method=finetune,replay",
          "python -m audiocil resume=outputs/cil/runs/YYYY-MM-DD_HH-MM-SS",
          "make run ARGS='method=der'",
          "make test",
          "PYTHONPATH=src python benchmarks/bench_data.py --steps 3",
          "python -m audiocil.data.loaders.ls100 build --librispeech '<dir>' --out /data/ls100",
          "audiocil report outputs/cil/multiruns/YYYY-MM-DD_HH-MM-SS --compare method.lamda",
          "python -m audiocil methods --scenario fewshot"]
    for text in ok:
        assert checker.check(Shown("x.md", 1, text, "command")) is None, text
    broken = {"python -m audiocil seed=1,2": "Ambiguous value",  # a sweep needs -m
              "python -m audiocil sceanrio=standard": "sceanrio",
              "python -m audiocil 'resume=<run_dir>'": "LexerNoViableAltException",
              "python -m audiocil -m seed=1,2 --cfg job": "only one of -m and --cfg",
              # what a shell would make of an unquoted placeholder or range()
              "python -m audiocil resume=outputs/cil/runs/<time>": "the shell reads '<'",
              "python -m audiocil -m seed=range(1,3)": "the shell reads '('",
              "python -m audiocil resume=outputs/cil/runs/2024-01-01": "no config.yaml there",
              "make run ARGS='method=dre'": "Could not find 'method/dre'",
              "python benchmarks/nope.py": "no such file",
              "PYTHONPATH=src python benchmarks/bench_data.py --stesp 3": "unrecognized arguments",
              "python -m audiocil --cgf job": "--cgf",
              "python -m audiocil scenario=multilabel method=icarl": "does not support",
              "audiocil report": "the following arguments are required: PATH",
              "python -m audiocil methods --scenario nope": "invalid choice"}
    for text, expected in broken.items():
        err = checker.check(Shown("x.md", 1, text, "command"))
        assert err is not None and expected in err, (text, err)
