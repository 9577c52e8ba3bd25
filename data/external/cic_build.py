"""Build the CIC (GB/T 4754) concordance to the contract's 2-digit GB/T 4754-2017 industry.

Two steps, both run with ``python data/external/cic_build.py``:

1. ``--source DIR`` (only when refreshing from upstream): extract the official old-new class pairs
   into ``cic_pairs.csv``. ``DIR`` is a checkout of github.com/robin621/gbcrosswalk (MIT licence,
   commit 58869bf), which transcribes the correspondence appendices of the standards:
   GB/T 4754-2011 (2011 classes against GB/T 4754-2002; file ``inst/extdata/gb_2002_2011.csv``,
   its 4-digit "S" rows) and GB/T 4754-2017 (2017 classes against GB/T 4754-2011; file
   ``inst/raw-crosswalks/GB_2011_2017_raw.csv``, with the page of the standard's PDF).
2. Always: derive ``cic_concordance.csv`` from ``cic_pairs.csv`` (a test checks that the committed
   concordance equals this output, so it is never edited by hand).

``cic_concordance.csv`` has one row per code of each vintage (2002, 2011, 2017) and level (2, 3 or
4 digits) with the 2-digit GB/T 4754-2017 industry it belongs to (``cic2``), the other 2-digit
industries some of its parts moved to (``alternatives``), the ``rule`` that chose ``cic2``, and for
4-digit classes the GB/T 4754-2017 class its firms are assigned to (``cic4``: the successor that
keeps the code, else the first listed, followed through 2011 for a 2002 class):

- ``identity``: a 2017 code (its first two digits);
- ``unique``: every successor class lies in one 2-digit industry;
- ``split: code kept``: the class was split across 2-digit industries and a successor keeps its
  code (the remaining part; e.g. 2011 3599 -> 2017 3599, with parts to 3491, 3492, 3964);
- ``split: first listed``: split, no successor keeps the code: the first successor of the
  official table;
- ``majority of classes``: a 2- or 3-digit code: the 2-digit industry of most of its 4-digit
  classes (ties: the smaller code).
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAIRS = HERE / "cic_pairs.csv"
CONCORDANCE = HERE / "cic_concordance.csv"
UPSTREAM = "github.com/robin621/gbcrosswalk commit 58869bf"


def extract_pairs(source: Path) -> list[dict[str, str]]:
    """Official class pairs (old vintage, old code, new vintage, new code, where) from the upstream files."""
    rows: list[dict[str, str]] = []
    with open(source / "inst/extdata/gb_2002_2011.csv", encoding="utf-8-sig", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["level"] == "S":
                rows.append({"from_vintage": "2002", "from_code": r["from_code"], "to_vintage": "2011", "to_code": r["to_code"],
                             "where": "GB/T 4754-2011 correspondence appendix (gb_2002_2011.csv)"})
    with open(source / "inst/raw-crosswalks/GB_2011_2017_raw.csv", encoding="utf-8-sig", newline="") as fh:
        for r in csv.DictReader(fh):
            rows.append({"from_vintage": "2011", "from_code": r["S_2011"], "to_vintage": "2017", "to_code": r["S_2017"],
                         "where": f"GB/T 4754-2017 correspondence appendix, PDF page {r['pdf_page']}"})
    for r in rows:
        for key in ("from_code", "to_code"):
            if not (len(r[key]) == 4 and r[key].isdigit()):
                raise ValueError(f"not a 4-digit class: {r}")
    return rows


def read_pairs(path: Path = PAIRS) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _successors(pairs: list[dict[str, str]], old: str, new: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for r in pairs:
        if r["from_vintage"] == old and r["to_vintage"] == new and r["to_code"] not in out[r["from_code"]]:
            out[r["from_code"]].append(r["to_code"])
    return out


def _main_successor(code: str, targets: list[str]) -> tuple[str, str]:
    """The successor a class's firms are assigned to: the one that keeps the code, else the first listed."""
    if code in targets:
        return code, "split: code kept"
    return targets[0], "split: first listed"


def build(pairs: list[dict[str, str]]) -> list[dict[str, str]]:
    """One row per (vintage, level, code): its 2-digit GB/T 4754-2017 industry, alternatives and rule."""
    s02 = _successors(pairs, "2002", "2011")
    s11 = _successors(pairs, "2011", "2017")
    codes17 = sorted({c for ts in s11.values() for c in ts})
    four: dict[str, dict[str, tuple[str, set[str], str]]] = {"2017": {}, "2011": {}, "2002": {}}
    cic4: dict[tuple[str, str], str] = {}  # the 2017 class a code's firms are assigned to
    for c in codes17:
        four["2017"][c] = (c[:2], set(), "identity")
        cic4[("2017", c)] = c
    for c, ts in sorted(s11.items()):
        two = {t[:2] for t in ts}
        main, rule = _main_successor(c, ts) if len(ts) > 1 else (ts[0], "unique")
        cic4[("2011", c)] = main
        if len(two) == 1:
            four["2011"][c] = (ts[0][:2], set(), "unique")
        else:
            four["2011"][c] = (main[:2], two - {main[:2]}, rule)
    for c, ts in sorted(s02.items()):
        reach = [t17 for t in ts for t17 in s11.get(t, [])]
        two = {t[:2] for t in reach}
        if not reach:
            raise ValueError(f"2002 class {c} reaches no 2017 class")
        m11_any = _main_successor(c, ts)[0] if len(ts) > 1 else ts[0]
        cic4[("2002", c)] = cic4[("2011", m11_any)]
        if len(two) == 1:
            four["2002"][c] = (reach[0][:2], set(), "unique")
        else:
            m11, rule = _main_successor(c, ts)
            if len({t[:2] for t in s11[m11]}) > 1:
                m17, rule17 = _main_successor(m11, s11[m11])
                rule = rule if rule17 == "split: code kept" else rule17
            else:
                m17 = s11[m11][0]
            four["2002"][c] = (m17[:2], two - {m17[:2]}, rule)
    rows = []
    for vintage in ("2002", "2011", "2017"):
        for c, (cic2, alt, rule) in sorted(four[vintage].items()):
            rows.append({"vintage": vintage, "level": "4", "code": c, "cic2": cic2, "alternatives": ";".join(sorted(alt)), "rule": rule, "cic4": cic4[(vintage, c)]})
        for level in (3, 2):
            groups: dict[str, Counter] = defaultdict(Counter)
            for c, (cic2, _alt, _rule) in four[vintage].items():
                groups[c[:level]][cic2] += 1
            for g, counts in sorted(groups.items()):
                ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                cic2 = ranked[0][0]
                rule = "identity" if (vintage == "2017" and level == 2) else ("unique" if len(counts) == 1 else "majority of classes")
                rows.append({"vintage": vintage, "level": str(level), "code": g, "cic2": cic2,
                             "alternatives": ";".join(sorted(set(counts) - {cic2})), "rule": rule, "cic4": ""})
    return rows


def write_csv(rows: list[dict[str, str]], path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help=f"checkout of {UPSTREAM}: re-extract cic_pairs.csv first")
    args = parser.parse_args(argv)
    if args.source is not None:
        write_csv(extract_pairs(args.source), PAIRS)
    write_csv(build(read_pairs()), CONCORDANCE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
