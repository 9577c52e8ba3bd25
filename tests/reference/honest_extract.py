"""Extract the R HonestDiD package's published results and their inputs into honest_r_reference.json.

Source: the R package's repository, https://github.com/asheshrambachan/HonestDiD

* ``data/VignetteResults.rda``, ``data/BCdata_EventStudy.rda``, ``data/LWdata_EventStudy.rda`` at
  commit fdadae33428a024df204c210da48cc5362966e89 (2024-05-11; the last commit holding
  VignetteResults.rda, deleted in 98ea3e6). VignetteResults is the list the vignette prints,
  written by ``vignettes/precompute.R`` of that commit: Benzarti-Carloni (BC) Delta^SDRM by C-LF
  with ``gridPoints = 100, grid.lb = -1, grid.ub = 1``, BC Delta^SDNB by C-F, Lovenheim-Willen (LW)
  Delta^SD by FLCI and Delta^SDD by C-F, and the BC original CI.
* ``README_cache/gfm/*.rdx|.rdb`` (knitr's cache of README.Rmd, last written in 99e05c7) and
  ``README.md`` at commit 6813f02ed38f0b63bdca6915604b2eac90491303 (2026-04-11): the Medicaid
  examples' results at full precision (relative magnitudes, smoothness, the average effect), the
  data set ``df_nonstaggered`` the README estimates them from, the Sun-Abraham example (inputs and
  results) and the Callaway-Sant'Anna example (influence function and results), and the README's
  printed tables (three significant digits), including the regression-with-controls example.
  ``unnamed-chunk-9`` is a stale cache of an older README (another chunk hash) and is not used.

Run from the repository root with a clone of HonestDiD (any recent one holds both commits):

    python tests/reference/honest_extract.py /path/to/HonestDiD

The output is committed; the tests read only the JSON.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rserial

VIGNETTE_COMMIT = "fdadae33428a024df204c210da48cc5362966e89"
README_COMMIT = "6813f02ed38f0b63bdca6915604b2eac90491303"
OUT = Path(__file__).resolve().parent / "honest_r_reference.json"
CHUNKS = {  # knitr cache files of README.Rmd at README_COMMIT
    "rm": "unnamed-chunk-4_d08e39374736e71fa1379f8379b56bb5",
    "sd": "unnamed-chunk-6_6a1a19c1b25737f3167f0bb30e5b250d",
    "avg": "unnamed-chunk-7_40d31aed1b8b0bc2d595204b6c288837",
    "controls": "unnamed-chunk-8_f68e98bbac13a1932bc9db93b38f3a59",
    "sunab": "unnamed-chunk-10_1f3c743ec6ce57aeac2e128cd86dc961",
    "cs": "unnamed-chunk-12_72f0b4e078ccf5be9960c1babb518ff3",
}


def _git_show(repo: Path, commit: str, path: str, dest: Path) -> Path:
    out = dest / Path(path).name
    out.write_bytes(subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{path}"], check=True, capture_output=True).stdout)
    return out


def _vec(x) -> list:
    a = np.asarray(x)
    if a.dtype == object:
        return [None if v is None else str(v) for v in a.ravel()]
    return [float(v) for v in a.ravel()]


def _matrix(x) -> list:
    dim = [int(v) for v in x.attrs["dim"]]
    return np.asarray(x, dtype=float).reshape(dim, order="F").tolist()


def _tibble(t) -> dict:
    out = {}
    for k, v in t.named().items():
        if k == "Delta" and np.asarray(v).dtype != object:
            continue  # NA column of constructOriginalCS
        out[k] = _vec(v)
    return out


def _frame(df) -> dict:
    return {k: _vec(v) for k, v in df.named().items()}


def _printed_tables(readme: str) -> list[dict]:
    """The tibbles printed in README.md (``## # A tibble`` blocks), as printed."""
    tables = []
    for block in re.findall(r"## # A tibble: .*?\n((?:    ## .*\n)+)", readme):
        lines = [ln[len("    ## "):] for ln in block.splitlines()]
        header = lines[0].split()
        rows = []
        for ln in lines[2:]:
            parts = ln.split()
            rows.append(dict(zip(header, parts[1:])))
        if "lb" in header:
            tables.append({"columns": header, "rows": rows})
    return tables


def main(repo: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ref: dict = {"source": {
            "repository": "https://github.com/asheshrambachan/HonestDiD",
            "vignette_commit": VIGNETTE_COMMIT, "vignette_files": ["data/VignetteResults.rda", "data/BCdata_EventStudy.rda", "data/LWdata_EventStudy.rda"],
            "readme_commit": README_COMMIT, "readme_files": ["README.md"] + [f"README_cache/gfm/{c}.rdx/.rdb" for c in CHUNKS.values()],
            "extracted_by": "tests/reference/honest_extract.py",
        }}
        vig = rserial.read_rda(_git_show(repo, VIGNETTE_COMMIT, "data/VignetteResults.rda", tmp))["VignetteResults"].named()
        ref["vignette"] = {k: _tibble(v) for k, v in vig.items()}
        for name in ("BCdata_EventStudy", "LWdata_EventStudy"):
            d = rserial.read_rda(_git_show(repo, VIGNETTE_COMMIT, f"data/{name}.rda", tmp))[name].named()
            ref[name] = {"betahat": _vec(d["betahat"]), "sigma": _matrix(d["sigma"]), "timeVec": _vec(d["timeVec"]),
                         "referencePeriod": float(np.asarray(d["referencePeriod"])[0]),
                         "numPrePeriods": len(d["prePeriodIndices"]), "numPostPeriods": len(d["postPeriodIndices"])}
        for c in CHUNKS.values():
            _git_show(repo, README_COMMIT, f"README_cache/gfm/{c}.rdx", tmp)
            _git_show(repo, README_COMMIT, f"README_cache/gfm/{c}.rdb", tmp)
        got = rserial.read_lazyload(tmp / f"{CHUNKS['rm']}.rdx", ["delta_rm_results"])
        readme = {"delta_rm_results": _tibble(got["delta_rm_results"])}
        readme["delta_sd_results"] = _tibble(rserial.read_lazyload(tmp / f"{CHUNKS['sd']}.rdx", ["delta_sd_results"])["delta_sd_results"])
        avg = rserial.read_lazyload(tmp / f"{CHUNKS['avg']}.rdx")
        readme["delta_rm_results_avg"] = _tibble(avg["delta_rm_results_avg"])
        readme["originalResults_avg"] = _tibble(avg["originalResults_avg"])
        ctl = rserial.read_lazyload(tmp / f"{CHUNKS['controls']}.rdx", ["betahat", "sigma", "df_nonstaggered"])
        readme["controls_betahat"] = _vec(ctl["betahat"])
        readme["controls_sigma"] = _matrix(ctl["sigma"])
        df = _frame(ctl["df_nonstaggered"])
        readme["df_nonstaggered"] = {k: df[k] for k in ("stfips", "year", "dins", "yexp2", "D")}
        sa = rserial.read_lazyload(tmp / f"{CHUNKS['sunab']}.rdx", ["beta_vcv", "sensitivity_results", "original_results"])
        bv = sa["beta_vcv"].named()
        readme["sunab"] = {"beta": _vec(bv["beta"]), "sigma": _matrix(bv["sigma"]), "cohorts": _vec(bv["cohorts"]),
                           "sensitivity_results": _tibble(sa["sensitivity_results"]),
                           "original_results": _tibble(sa["original_results"]), "gridPoints": 100}
        cs = rserial.read_lazyload(tmp / f"{CHUNKS['cs']}.rdx", ["es", "sensitivity_results"])
        es = cs["es"].named()
        inf = es["inf.function"].named()["dynamic.inf.func.e"]
        sens = cs["sensitivity_results"].named()
        readme["cs"] = {"egt": _vec(es["egt"]), "att_egt": _vec(es["att.egt"]), "inf_func": _matrix(inf),
                        "robust_ci": _tibble(sens["robust_ci"]), "orig_ci": _tibble(sens["orig_ci"]), "gridPoints": 100}
        text = _git_show(repo, README_COMMIT, "README.md", tmp).read_text()
        readme["printed"] = _printed_tables(text)
        ref["readme"] = readme
    OUT.write_text(json.dumps(ref, indent=1) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
