"""``audiocil methods [--scenario S] [--markdown]``: every method, what it is, its paper and
the scenarios it supports.

The methods are the files of ``conf/method/`` (not ``_base/``), so a new method appears as
soon as its yaml is there. For each: the class its ``_target_`` names (through the yaml's
``_base`` defaults when the file itself has none); the one-line description is the class's
``summary`` attribute, else the first sentence of the yaml's header comment, else of the
module's docstring; the paper is the class's ``paper`` attribute, else the first citation
(a parenthesis with a year) in the module's docstring or the yaml header; the scenarios
are the class's own ``scenarios`` declaration.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from audiocil.config import CONFIG_DIR

CITATION = re.compile(r"\(([^()]*?\b(?:19|20)\d\d\b[^()]*)\)")


@dataclass(frozen=True)
class MethodInfo:
    name: str
    target: str
    summary: str
    paper: str
    scenarios: tuple[str, ...]


def _header(path: Path) -> str:
    """The prose of a config's leading comment, commands left out."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text.startswith(("python ", "audiocil ", "`python", "@package")):
            continue
        lines.append(text)
    return " ".join(lines).strip()


def _sentence(text: str, limit: int = 110) -> str:
    text = " ".join(text.split())
    m = re.search(r"(?<!\bet al)(?<!\be\.g)(?<!\bi\.e)\.(\s|$)", text)
    first = text[: m.start() + 1] if m else text
    return first if len(first) <= limit else first[: limit - 3].rstrip() + "..."


def _target(path: Path) -> str | None:
    node = OmegaConf.load(path)
    if "_target_" in node:
        return str(node._target_)
    for entry in node.get("defaults", []) or []:
        name = entry if isinstance(entry, str) else None
        if name and name != "_self_":
            base = path.parent / (name.split("@")[0] + ".yaml")
            if base.is_file() and (t := _target(base)):
                return t
    return None


def method_info(path: Path) -> MethodInfo:
    target = _target(path)
    if target is None:
        raise ValueError(f"{path}: no _target_ (nor in its _base defaults)")
    module_name, _, cls_name = target.rpartition(".")
    cls = getattr(importlib.import_module(module_name), cls_name)
    module_doc = (sys.modules[cls.__module__].__doc__ or "").strip()
    header = _header(path)
    summary = (cls.__dict__.get("summary") or _sentence(header) or _sentence(module_doc)
               or path.stem)
    paper = cls.__dict__.get("paper")
    if not paper:
        for text in (module_doc.split("\n\n")[0], header):
            text = " ".join(text.split()).replace("``", "")
            if m := CITATION.search(text):
                paper = m.group(1).split("; official code")[0]
                before = re.split(r"\b(?:of|by)\s|[(:]", text[: m.start()])[-1].strip()
                if paper.startswith('"') and 0 < len(before) < 40:  # a title: name its authors
                    paper = f"{before}, {paper}"
                break
    return MethodInfo(path.stem, target, summary, paper or "-",
                      tuple(cls.__dict__.get("scenarios", ())))


def methods(config_dir: Path = CONFIG_DIR) -> list[MethodInfo]:
    """Every method of ``conf/method/`` in name order."""
    return [method_info(p) for p in sorted((config_dir / "method").glob("*.yaml"))]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="audiocil methods",
                                description="List the methods: description, paper, scenarios.")
    p.add_argument("--scenario", choices=("standard", "fewshot", "multilabel"),
                   help="only the methods that support this scenario")
    p.add_argument("--markdown", action="store_true", help="a Markdown table")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows = [m for m in methods() if args.scenario is None or args.scenario in m.scenarios]
    if args.markdown:
        print("| method | scenarios | paper | what it is |\n|---|---|---|---|")
        for m in rows:
            print(f"| `{m.name}` | {', '.join(m.scenarios)} | {m.paper} | {m.summary} |")
        return 0
    width = max((len(m.name) for m in rows), default=6) + 2
    for m in rows:
        print(f"{m.name:<{width}}{m.summary}")
        print(f"{'':<{width}}paper: {m.paper}; scenarios: {', '.join(m.scenarios)}; "
              f"method={m.name}")
    print(f"\n{len(rows)} method(s); python -m audiocil method=<name> (conf/method/<name>.yaml)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
