"""Provenance and the HTML site: one page per executed notebook, and the index.

``python -m analysis.report page build/default/01_data.ipynb reports/01_data.html`` renders an
executed notebook with the project's nbconvert template (code folded, table of contents, no
network resources) and a provenance footer: git commit and dirty flag, parameter set and its
hash, hash of the data file, main package versions, run date and runtime.
``python -m analysis.report index --pages 01_data 02_descriptives`` writes ``reports/index.html``
with a card per report (title, summary, status, runtime).

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
from analysis.io import file_hash, write_text

__all__ = ["provenance", "git_state", "notebook_info", "render_page", "render_index", "main"]

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


def provenance(config: str, *, data_file: Path | None = None) -> dict[str, Any]:
    """What a reader needs to reproduce a page: code, parameters, data, packages."""
    from analysis.panel import panel_path

    params_files = [CONFIG_DIR / "default.yaml", CONFIG_DIR / f"{config}.yaml"]
    digest = hashlib.sha256()
    for f in dict.fromkeys(params_files):
        if f.is_file():
            digest.update(f.read_bytes())
    data_file = data_file or panel_path(config)
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
        "data_file": str(data_file.relative_to(ROOT)) if data_file.is_relative_to(ROOT) else str(data_file),
        "data_hash": file_hash(data_file) if data_file.is_file() else "missing",
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


def _footer(info: dict[str, Any], nbinfo: dict[str, Any]) -> str:
    dirty = {True: " (uncommitted changes)", False: "", None: ""}[info["dirty"]]
    runtime = f"{nbinfo['duration']:.0f} s" if nbinfo.get("duration") else "n/a"
    ran = (nbinfo.get("end_time") or "")[:19].replace("T", " ") or dt.datetime.now().isoformat(timespec="seconds")
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    rows = [
        ("code", f"git commit {html.escape(info['commit'])}{dirty}"),
        ("parameters", f"config/{html.escape(info['config'])}.yaml over config/default.yaml (sha256 {info['config_hash']})"),
        ("data", f"{html.escape(info['data_file'])} (sha256 {info['data_hash']})"),
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
    exporter = HTMLExporter(template_name="report", extra_template_basedirs=[str(TEMPLATES)])
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    resources = {"report": {"css": CSS, "footer": _footer(info, nbinfo)}, "metadata": {"name": nbinfo["title"]}}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    body = body.replace("<!--REPORT-TOC-->", _toc(body), 1)
    return write_text(body, target)


def render_index(pages: list[str], *, config: str, build: Path | None = None, reports: Path = REPORTS) -> Path:
    """Write ``reports/index.html``: a card per page with title, summary, status and runtime."""
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
        page = reports / f"{name}.html"
        link = f'<a href="{name}.html">{html.escape(nbinfo["title"])}</a>' if page.is_file() and status == "ok" else html.escape(nbinfo["title"])
        cards.append(
            f'<div class="card {status.replace(" ", "-")}"><h2>{link}</h2><p>{html.escape(nbinfo["summary"])}</p>'
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
data {html.escape(info['data_file'])} (sha256 {info['data_hash']}); parameters sha256 {info['config_hash']}.</footer>
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
    write_text(f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>{folder.name}</title></head><body><p><a href="../index.html">&larr; all reports</a></p><h1>{folder.name}</h1><ul>{items}</ul></body></html>\n', folder / "index.html")


def main(argv: list[str] | None = None) -> int:
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
