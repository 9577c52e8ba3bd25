"""Compare two folders of published tables (``reports/tables/*.csv``) cell by cell.

    python tools/compare_tables.py BEFORE AFTER [--digits 6]

For every CSV in either folder: the cells that differ as text, and among those the numeric ones
with their largest relative difference; a table is "equal at N digits" when every numeric cell
agrees when both are rounded to N significant digits (the reports print 3 or 4 decimals) and
every other cell is the same text. Used to check that a refactoring changed no published number.
Exits with status 1 if a table is missing on one side or differs beyond ``--digits``.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _round(x: float, digits: int) -> float:
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - int(math.floor(math.log10(abs(x)))))


def compare(before: Path, after: Path, digits: int) -> dict:
    """Cell-by-cell comparison of two CSV files; see the module docstring."""
    a = list(csv.reader(before.open(encoding="utf-8")))
    b = list(csv.reader(after.open(encoding="utf-8")))
    out = {"shape_equal": [len(r) for r in a] == [len(r) for r in b], "text_diffs": 0, "max_rel": 0.0, "equal_at_digits": True}
    if not out["shape_equal"]:
        out["equal_at_digits"] = False
        return out
    for ra, rb in zip(a, b):
        for x, y in zip(ra, rb):
            if x == y:
                continue
            out["text_diffs"] += 1
            fx, fy = _number(x), _number(y)
            if fx is None or fy is None:
                out["equal_at_digits"] = False
                continue
            if math.isnan(fx) and math.isnan(fy):
                continue
            rel = abs(fx - fy) / max(abs(fx), abs(fy), 1e-300)
            out["max_rel"] = max(out["max_rel"], rel)
            if _round(fx, digits) != _round(fy, digits):
                out["equal_at_digits"] = False
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--digits", type=int, default=6)
    args = parser.parse_args(argv)
    names = sorted({p.name for p in args.before.glob("*.csv")} | {p.name for p in args.after.glob("*.csv")})
    bad = 0
    identical = 0
    for name in names:
        pa, pb = args.before / name, args.after / name
        if not (pa.is_file() and pb.is_file()):
            print(f"{name}: only in {'before' if pa.is_file() else 'after'}")
            bad += 1
            continue
        r = compare(pa, pb, args.digits)
        if r["text_diffs"] == 0 and r["shape_equal"]:
            identical += 1
            continue
        status = "equal" if r["equal_at_digits"] else "DIFFERENT"
        print(f"{name}: {r['text_diffs']} cell(s) differ as text, max relative difference {r['max_rel']:.1e}; "
              f"{status} at {args.digits} significant digits")
        bad += not r["equal_at_digits"]
    print(f"{len(names)} tables: {identical} identical as text, {len(names) - identical - bad} equal at {args.digits} digits, {bad} different")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
