"""Partial data: a report whose inputs are absent says so in one paragraph, is published, and is listed.

A notebook that calls analysis.availability.require_inputs on a panel without its columns is run
through the project's notebook runner (tools/run_notebook.py, as the Makefile runs it): the run
succeeds, the executed notebook ends with the paragraph (no traceback, the later cells dropped),
and the skip is recorded for the summary. With the inputs present nothing happens and a stale
record is removed.
"""

from __future__ import annotations

import importlib.util
import os

import nbformat
import pandas as pd
import pytest

from analysis.availability import InputsAbsent, missing_inputs, require_inputs, skip_dir, skipped_reports, usable_columns
from analysis.config import ROOT


def test_missing_inputs_all_or_any():
    """A column is missing when absent or all-NaN; with any_of, one present column is enough."""
    panel = pd.DataFrame({"output": [1.0, None], "capital": [None, None]})
    assert missing_inputs(panel, ["output", "capital", "labor"]) == ["capital (no value)", "labor"]
    assert missing_inputs(panel, ["output", "labor"], any_of=True) == []


def test_require_inputs_records_and_clears(tmp_path, monkeypatch):
    """A report lacking its inputs stops with InputsAbsent, records the skip for the summary, and the record is cleared once the inputs exist."""
    monkeypatch.setattr("analysis.availability.processed_dir", lambda config: tmp_path / config)
    with pytest.raises(InputsAbsent, match="so2, cod"):
        require_inputs(pd.DataFrame({"x": [1]}), ["so2", "cod"], config="c", page="effects_emissions", what="estimates effects on emissions", any_of=True)
    rec = skipped_reports("c")
    assert rec["page"].tolist() == ["effects_emissions"] and rec["missing"].iloc[0] == ["so2", "cod"]
    assert "Skipped" in rec["text"].iloc[0] and "`so2`" in rec["text"].iloc[0]
    require_inputs(pd.DataFrame({"so2": [1.0]}), ["so2", "cod"], config="c", page="effects_emissions", what="x", any_of=True)
    assert skipped_reports("c").empty and not any(skip_dir("c").glob("*.json"))


def test_the_runner_publishes_a_skipped_report(tmp_path):
    """Executed with papermill by tools/run_notebook.py: exit 0, the paragraph kept, nothing after it."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('config = "tmp"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Emissions"),
        params,
        nbformat.v4.new_code_cell("import pandas as pd\nfrom analysis.availability import require_inputs\n"
                                  "require_inputs(pd.DataFrame({'x': [1]}), ['so2'], config=config, page='emissions', what='estimates effects on SO2')"),
        nbformat.v4.new_code_cell("raise RuntimeError('a cell after the skip must not run')"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src, out = tmp_path / "nb.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    spec = importlib.util.spec_from_file_location("run_notebook", ROOT / "tools" / "run_notebook.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    env = {"ANALYSIS_ROOT": str(tmp_path), "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        assert runner.main([str(src), str(out), "-p", "config", "tmp", "-k", "python3", "--cwd", str(tmp_path)]) == 0
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    done = nbformat.read(out, as_version=4)
    assert done.metadata["analysis"]["skipped"].startswith("emissions: inputs absent")
    texts = [o.get("data", {}).get("text/markdown", "") for c in done.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("Skipped: the panel does not have what this report needs" in t for t in texts)
    assert not any(o.get("output_type") == "error" for c in done.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "must not run" not in "".join(c.source for c in done.cells)
    assert (tmp_path / "data" / "processed" / "tmp" / "skipped" / "emissions.json").is_file()


def test_usable_columns_drop_absent_outcomes_but_keep_misspelt_names():
    """Partial data drops an outcome the panel lacks; a typo is kept so that it fails where it is used."""
    panel = pd.DataFrame({"log_value_added": [1.0]})
    assert usable_columns(panel, ["log_value_added", "log_so2_intensity", "log_valueadded"]) == ["log_value_added", "log_valueadded"]
