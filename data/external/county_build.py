"""Build ``county_codes_gbt2260.csv``: every county-level code of GB/T 2260 since 1981 and its successors.

Run ``python data/external/county_build.py --source result.csv`` with ``result.csv`` of
github.com/yescallop/areacodes (CC0, commit eed219a), which compiles the Ministry of Civil
Affairs' yearly lists 中华人民共和国县级以上行政区划代码 and its 县级以上行政区划变更情况
(the sources its README names). The output keeps, for every county-level record:

- ``county_code``, ``name``, ``province``, ``prefecture``: the code and where it lies;
- ``first_year``, ``last_year``: the years the record was in use (``last_year`` is the year of the
  change or abolition, empty while in use);
- ``status``: ``in_use``, ``abolished`` (the code was retired) or ``renamed`` (the unit changed
  name or status, the code may live on);
- ``successors``: the codes the unit passed to at ``last_year`` (``;``-separated; several for a
  split), without the earlier partial transfers the upstream file marks with ``[year]``;
- ``partial_transfers``: those earlier partial transfers, as upstream writes them.

:func:`analysis.sources.recode.county_to_vintage` reads this table to bring every year's codes to
one vintage.
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "county_codes_gbt2260.csv"
UPSTREAM = "github.com/yescallop/areacodes result.csv, commit eed219a"
STATUS = {"在用": "in_use", "弃用": "abolished", "变更": "renamed"}


def build(source: Path) -> list[dict[str, str]]:
    """County-level records of the upstream table in this project's columns."""
    rows = []
    with open(source, encoding="utf-8-sig", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["级别"] != "县级":
                continue
            succ = [s for s in r["新代码"].split(";") if s]
            final = [s for s in succ if not re.search(r"\[\d{4}\]$", s)]
            partial = [s for s in succ if re.search(r"\[\d{4}\]$", s)]
            rows.append(
                {
                    "county_code": r["代码"],
                    "name": r["名称"],
                    "province": r["一级行政区"],
                    "prefecture": r["二级行政区"],
                    "first_year": r["启用时间"],
                    "last_year": r["变更/弃用时间"],
                    "status": STATUS[r["状态"]],
                    "successors": ";".join(final),
                    "partial_transfers": ";".join(partial),
                }
            )
    for r in rows:
        if not re.fullmatch(r"\d{6}", r["county_code"]) or any(not re.fullmatch(r"\d{6}", s) for s in r["successors"].split(";") if s):
            raise ValueError(f"not a 6-digit code: {r}")
    rows.sort(key=lambda r: (r["county_code"], int(r["first_year"])))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help=f"result.csv of {UPSTREAM}")
    args = parser.parse_args(argv)
    rows = build(args.source)
    with open(OUT, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
