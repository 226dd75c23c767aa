"""``audiocil report PATH... [--out DIR] [--compare KEY]``: tables and figures of runs and
sweeps.

PATH is a run directory, a sweep directory (``outputs/cil/multiruns/<time>``) or any folder
above them; runs that differ only by seed or class order are grouped (mean ± std over
them), or by ``--compare KEY`` (any config key, e.g. ``method.lamda``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="audiocil report",
        description="Mean ± std tables (Markdown, CSV, LaTeX) and figures (PNG, PDF) of runs "
                    "and sweeps, from each run's results_long.csv and config.yaml.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="run or sweep directories (searched recursively)")
    p.add_argument("--out", metavar="DIR",
                   help="where to write (default: <first PATH>/report)")
    p.add_argument("--compare", metavar="KEY",
                   help="group by the method and this config key (e.g. method.lamda) "
                        "instead of by everything but seed and class order")
    p.add_argument("--no-matrices", action="store_true",
                   help="skip the per-run accuracy-matrix heatmaps (large sweeps)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from audiocil.report.build import write_report  # matplotlib only when it is needed

    out = Path(args.out) if args.out else Path(args.paths[0]) / "report"
    try:
        rep = write_report(args.paths, out, args.compare, matrices=not args.no_matrices)
    except (FileNotFoundError, KeyError) as err:
        print(f"audiocil report: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2
    print(f"{len(rep.runs)} run(s) in {len(rep.groups)} group(s)"
          + (f"; {len(rep.problems)} job(s) without complete results" if rep.problems else ""))
    for t in rep.tables[:1]:
        print(t.markdown())
    print(f"report: {rep.out / 'report.md'} ({len(rep.figures)} figure files)")
    return 0 if rep.runs else 1


if __name__ == "__main__":
    raise SystemExit(main())
