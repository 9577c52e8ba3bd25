"""Provenance and the HTML site: one page per executed notebook, and the index.

``python -m analysis.report page build/default/01_data.ipynb reports/01_data.html`` renders an
executed notebook with the project's nbconvert template (code folded, table of contents, no
network resources) and a provenance footer: git commit and dirty flag, parameter set, every
parameter and data file the notebook read with its SHA-256 (recorded while it ran, see
``tools/run_notebook.py``), main package versions, run date and runtime.
``python -m analysis.report index --pages 01_data 02_descriptives`` writes ``reports/index.html``
with a card per report (title, summary, status, runtime); an effects report's card names its
outcome family and gives its headline: the main estimate with its 95 % CI and, on the synthetic
world, the truth.

Examples
--------
>>> info = provenance("default")
>>> sorted(info)[:3]
['commit', 'config', 'config_hash']
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import html
import importlib.metadata as md
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from analysis.config import BUILD, CONFIG_DIR, REPORTS, ROOT
from analysis.io import write_text

__all__ = ["provenance", "git_state", "notebook_info", "notebook_inputs", "family_headline", "render_page", "render_index", "main"]

TEMPLATES = Path(__file__).parent / "templates"
PACKAGES = ("numpy", "pandas", "scipy", "statsmodels", "linearmodels", "pyfixest", "moderndid", "matplotlib", "seaborn", "papermill", "nbconvert")

CSS = """
body { max-width: 1100px; margin: 0 auto; }
.report-nav { margin: 12px 0 0 0; font-size: 0.9em; }
nav.toc { border: 1px solid #ddd; border-radius: 6px; padding: 8px 16px; margin: 12px 0; background: #fafafa; font-size: 0.92em; }
nav.toc ul { margin: 4px 0; padding-left: 18px; }
nav.toc li.h3 { margin-left: 16px; font-size: 0.95em; }
details.code-fold > summary { cursor: pointer; color: #777; font-size: 0.8em; margin: 2px 0 2px 8px; }
footer.provenance { border-top: 1px solid #ccc; margin: 32px 0 16px 0; padding-top: 8px; font-size: 0.8em; color: #555; }
footer.provenance table { border-collapse: collapse; }
footer.provenance td { padding: 1px 12px 1px 0; vertical-align: top; }
.jp-RenderedHTMLCommon table { font-size: 0.85em; }
"""


def git_state(root: Path = ROOT) -> dict[str, Any]:
    """Commit hash and whether the working tree differs from it (``dirty``)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, check=True).stdout
        return {"commit": commit, "dirty": bool(status.strip())}
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {"commit": "unknown (not a git checkout)", "dirty": None}


def provenance(config: str) -> dict[str, Any]:
    """What a reader needs to reproduce the site: code, parameter set, packages.

    ``config_hash`` hashes ``config/default.yaml`` and the set's file; the files each page read
    are in its notebook's metadata (:func:`notebook_inputs`).
    """
    params_files = [CONFIG_DIR / "default.yaml", CONFIG_DIR / f"{config}.yaml"]
    digest = hashlib.sha256()
    for f in dict.fromkeys(params_files):
        if f.is_file():
            digest.update(f.read_bytes())
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return {
        **git_state(),
        "config": config,
        "config_hash": digest.hexdigest()[:12],
        "python": sys.version.split()[0],
        "packages": versions,
    }


def notebook_info(nb: dict) -> dict[str, Any]:
    """Title, one-line summary, runtime and run date of an executed notebook."""
    title, summary = None, ""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        for i, ln in enumerate(lines):
            if ln.startswith("# ") and title is None:
                title = ln[2:].strip()
                rest = [x for x in lines[i + 1 :] if not x.startswith("#")]
                summary = rest[0] if rest else ""
                break
        if title:
            break
    pm = nb.get("metadata", {}).get("papermill", {})
    failed = any(c.get("metadata", {}).get("papermill", {}).get("exception") for c in nb.get("cells", []))
    return {
        "title": title or "untitled",
        "summary": summary,
        "duration": pm.get("duration"),
        "end_time": pm.get("end_time"),
        "parameters": pm.get("parameters", {}),
        "failed": failed or bool(pm.get("exception")),
    }


def notebook_inputs(nb: dict) -> list[dict[str, str]] | None:
    """The files an executed notebook read, as ``[{"path", "sha256"}]``; ``None`` if not recorded.

    ``tools/run_notebook.py`` (the Makefile's runner) stores them in ``metadata.analysis.inputs``;
    a notebook executed some other way has no record.

    Examples
    --------
    >>> notebook_inputs({"metadata": {"analysis": {"inputs": [{"path": "config/small.yaml", "sha256": "ab"}]}}})
    [{'path': 'config/small.yaml', 'sha256': 'ab'}]
    >>> notebook_inputs({"metadata": {}}) is None
    True
    """
    inputs = nb.get("metadata", {}).get("analysis", {}).get("inputs")
    return None if inputs is None else [{"path": str(r["path"]), "sha256": str(r["sha256"])} for r in inputs]


def _input_list(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "none"
    return "<br>".join(f"<code>{html.escape(r['path'])}</code> (sha256 <code>{html.escape(r['sha256'][:12])}</code>)" for r in rows)


def _footer(info: dict[str, Any], nbinfo: dict[str, Any], inputs: list[dict[str, str]] | None) -> str:
    dirty = {True: " (uncommitted changes)", False: "", None: ""}[info["dirty"]]
    runtime = f"{nbinfo['duration']:.0f} s" if nbinfo.get("duration") else "n/a"
    ran = (nbinfo.get("end_time") or "")[:19].replace("T", " ") or dt.datetime.now().isoformat(timespec="seconds")
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    rows = [("code", f"git commit {html.escape(info['commit'])}{dirty}"),
            ("parameter set", f"<code>{html.escape(info['config'])}</code>")]
    if inputs is None:
        rows.append(("inputs", "not recorded: the notebook was not executed by <code>make</code> (tools/run_notebook.py)"))
    else:
        rows.append(("parameters read", _input_list([r for r in inputs if r["path"].startswith("config/")])))
        rows.append(("data read", _input_list([r for r in inputs if not r["path"].startswith("config/")])))
    rows += [
        ("run", f"{ran} UTC, {runtime}"),
        ("software", f"Python {info['python']}; {html.escape(packages)}"),
    ]
    body = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows)
    return f"<strong>Provenance</strong><table>{body}</table>"


_HEADING = re.compile(r'<h([23]) id="([^"]+)">(.*?)(?:<a class="anchor-link"[^>]*>.*?</a>)?</h\1>', re.S)


def _toc(body: str) -> str:
    items = [(lvl, anchor, re.sub(r"<[^>]+>", "", text).strip()) for lvl, anchor, text in _HEADING.findall(body)]
    if not items:
        return ""
    lis = "".join(f'<li class="h{lvl}"><a href="#{html.escape(a, quote=True)}">{html.escape(t)}</a></li>' for lvl, a, t in items)
    return f'<nav class="toc"><strong>Contents</strong><ul>{lis}</ul></nav>'


def render_page(notebook: Path, target: Path, *, config: str) -> Path:
    """Render an executed notebook to a report page (atomically)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    info = provenance(config)
    nbinfo = notebook_info(nb)
    inputs = notebook_inputs(nb)
    exporter = HTMLExporter(template_name="report", extra_template_basedirs=[str(TEMPLATES)])
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    resources = {"report": {"css": CSS, "footer": _footer(info, nbinfo, inputs)}, "metadata": {"name": nbinfo["title"]}}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    body = body.replace("<!--REPORT-TOC-->", _toc(body), 1)
    return write_text(body, target)


def family_headline(config: str, family: str, *, estimator: str | None = None) -> dict[str, Any] | None:
    """The headline of an outcome family's report, from its saved results: main outcome, estimate, 95 % CI, truth.

    Reads ``config/effects_<family>.yaml`` (title, question, main outcome) and the overall ATTs the
    effects notebook saved (``analysis.effects.save_family``), the same numbers as the report's
    headline table; ``estimator`` defaults to the parameter set's main estimator (``did.main``).
    ``truth`` is NaN on real data. Returns ``None`` if the family has no saved
    results yet.

    Examples
    --------
    >>> family_headline("small", "no_such_family") is None
    True
    """
    from analysis.config import ParameterError, load_params
    from analysis.effects import ESTIMATOR_LABELS, load_family, load_saved

    try:
        estimator = estimator or load_params(config)["did"]["main"]
        spec = load_family(family)
        simple = load_saved(config, family).get("simple")
    except (FileNotFoundError, ParameterError):
        return None
    if simple is None:
        return None
    row = simple[(simple["outcome"] == spec["main"]) & (simple["estimator"] == estimator)]
    if row.empty:
        return None
    r = row.iloc[0]
    labels = {o["column"]: o["label"] for o in spec["outcomes"]}
    return {
        "title": f"Effects on {str(spec.get('title') or family).lower()}",
        "question": spec.get("question", ""),
        "outcome": labels.get(spec["main"], spec["main"]),
        "estimator": ESTIMATOR_LABELS.get(estimator, estimator),
        "estimate": float(r["estimate"]),
        "conf_low": float(r["conf_low"]),
        "conf_high": float(r["conf_high"]),
        "truth": float(r["truth"]) if "truth" in r and r["truth"] is not None else float("nan"),
    }


def _headline_html(h: dict[str, Any]) -> str:
    text = (f"<strong>{html.escape(h['outcome'])}</strong>: {h['estimate']:.3f} "
            f"(95 % CI {h['conf_low']:.3f} to {h['conf_high']:.3f}), {html.escape(h['estimator'])}")
    if h["truth"] == h["truth"]:  # not NaN: the synthetic world's truth is known
        text += f"; true effect {h['truth']:.3f}"
    return f'<p class="headline">{text}.</p>'


def render_index(pages: list[str], *, config: str, build: Path | None = None, reports: Path = REPORTS) -> Path:
    """Write ``reports/index.html``: a card per page with title, summary, status and runtime.

    The card of an effects report (``effects_<family>``) is titled by its family ("Effects on
    innovation"), asks the family's question and gives its headline (:func:`family_headline`).
    """
    build = build or BUILD / config
    info = provenance(config)
    cards = []
    for name in pages:
        ok_path, failed_path = build / f"{name}.ipynb", build / f"{name}.failed.ipynb"
        path = failed_path if failed_path.is_file() and (not ok_path.is_file() or failed_path.stat().st_mtime > ok_path.stat().st_mtime) else ok_path
        if path.is_file():
            nbinfo = notebook_info(json.loads(path.read_text(encoding="utf-8")))
            status = "failed" if (path == failed_path or nbinfo["failed"]) else "ok"
        else:
            nbinfo, status = {"title": name, "summary": "", "duration": None}, "not run"
        runtime = f"{nbinfo['duration']:.0f} s" if nbinfo.get("duration") else ""
        title, summary, headline = nbinfo["title"], html.escape(nbinfo["summary"]), ""
        if name.startswith("effects_"):
            family = name.removeprefix("effects_")
            h = family_headline(config, family) if status == "ok" else None
            title = h["title"] if h else f"Effects on {family}"
            if h:
                summary, headline = html.escape(h["question"]), _headline_html(h)
        elif name.startswith("robustness_"):
            title = f"Robustness of the effects on {name.removeprefix('robustness_')}"
        page = reports / f"{name}.html"
        link = f'<a href="{name}.html">{html.escape(title)}</a>' if page.is_file() and status == "ok" else html.escape(title)
        cards.append(
            f'<div class="card {status.replace(" ", "-")}"><h2>{link}</h2><p>{summary}</p>{headline}'
            f'<p class="meta"><span class="status">{status}</span> {runtime} &middot; <code>{name}</code></p></div>'
        )
    dirty = " (uncommitted changes)" if info["dirty"] else ""
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<title>Reports: SME cluster certification</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 980px; margin: 24px auto; padding: 0 16px; color: #222; }}
.cards {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 14px; }}
.card {{ border: 1px solid #ddd; border-radius: 8px; padding: 10px 14px; }}
.card h2 {{ font-size: 1.05em; margin: 4px 0; }}
.card .headline {{ background: #f4f8fb; border-radius: 4px; padding: 4px 8px; }}
.card.failed {{ border-color: #c0392b; }}
.meta {{ font-size: 0.85em; color: #666; }}
.status {{ font-weight: bold; }}
.card.ok .status {{ color: #1e8449; }} .card.failed .status {{ color: #c0392b; }}
footer {{ margin-top: 28px; font-size: 0.8em; color: #555; border-top: 1px solid #ccc; padding-top: 8px; }}
</style></head>
<body>
<h1>Certification of SME characteristic industrial clusters: effects on firms</h1>
<p>Parameter set <code>{html.escape(config)}</code>. Each report is an executed notebook; tables are also in
<a href="tables/">tables/</a> (CSV, LaTeX) and figures in <a href="figures/">figures/</a> (PNG).</p>
<div class="cards">{''.join(cards)}</div>
<footer>Built {dt.datetime.now(dt.UTC).isoformat(timespec="seconds")} from git commit {html.escape(info['commit'])}{dirty};
parameter set <code>{html.escape(config)}</code> (config/default.yaml and config/{html.escape(config)}.yaml, sha256 {info['config_hash']}).
Each report's footer lists the parameter and data files it read, with their hashes.</footer>
</body></html>
"""
    for sub in ("tables", "figures"):
        _listing(reports / sub)
    return write_text(doc, reports / "index.html")


def _listing(folder: Path) -> None:
    """A plain index.html listing a folder's files, so its link from the index page works."""
    folder.mkdir(parents=True, exist_ok=True)
    files = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != "index.html" and not p.name.startswith("."))
    items = "".join(f'<li><a href="{html.escape(f)}">{html.escape(f)}</a></li>' for f in files)
    head = f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>{folder.name}</title></head>'
    body = f'<body><p><a href="../index.html">&larr; all reports</a></p><h1>{folder.name}</h1><ul>{items}</ul></body></html>\n'
    write_text(head + body, folder / "index.html")


def main(argv: list[str] | None = None) -> int:
    """Command line: ``page NOTEBOOK TARGET --config C`` renders one page, ``index --config C --pages ...`` the index."""
    parser = argparse.ArgumentParser(prog="python -m analysis.report")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("page", help="render one executed notebook")
    p.add_argument("notebook", type=Path)
    p.add_argument("target", type=Path)
    p.add_argument("--config", default="default")
    i = sub.add_parser("index", help="write reports/index.html")
    i.add_argument("--config", default="default")
    i.add_argument("--pages", nargs="+", required=True)
    args = parser.parse_args(argv)
    if args.cmd == "page":
        print(f"wrote {render_page(args.notebook, args.target, config=args.config)}")
    else:
        print(f"wrote {render_index(args.pages, config=args.config)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
