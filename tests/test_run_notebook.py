"""The notebook runner's messages (tools/run_notebook.py): a heartbeat line while a long loop runs,
and, when the kernel dies, which cell, how much memory and which parameters to lower.

Each test executes a three-cell notebook through the runner as the Makefile does (a real kernel);
the kernel kills itself with SIGKILL, as the system's out-of-memory killer would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _notebook(path: Path, body: str, hints: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('config = "default"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["analysis"] = {"memory_parameters": hints}
    nbformat.write(nb, path)
    return path


def _run(tmp_path: Path, nb: Path, **env: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "tools" / "run_notebook.py"), str(nb), str(tmp_path / "out.ipynb"), "-k", "python3",
           "-p", "config", "small", "--cwd", str(tmp_path), "--stats", str(tmp_path / "out.stats.json")]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TQDM_DISABLE": "1", **env}
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=300)


def test_kernel_death_names_the_cell_the_memory_and_the_parameters(tmp_path):
    """A kernel killed in cell 3: exit status 1, a message naming the notebook, ``cell 3 of 3`` and its
    code, the memory reached, the notebook's parameters to lower in the parameter set of the run
    (config/small.yaml); the stats file records the status."""
    nb = _notebook(tmp_path / "dies.ipynb", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", ["tfp.n_boot (bootstrap draws)"])
    proc = _run(tmp_path, nb)
    assert proc.returncode == 1, proc.stderr[-2000:]
    msg = proc.stderr
    assert "error: dies.ipynb stopped: the kernel died" in msg
    assert "in cell 3 of 3 (`import os, signal`)" in msg
    assert "Its memory had reached" in msg
    assert "lower in config/small.yaml: tfp.n_boot (bootstrap draws)" in msg
    stats = json.loads((tmp_path / "out.stats.json").read_text())
    assert stats["status"] == "kernel died" and stats["peak_gb"] > 0


def test_heartbeat_reports_the_cell_memory_and_loop_position(tmp_path):
    """With a heartbeat every second, a 6-second loop over ``analysis.io.progress`` prints lines with
    the running cell, the kernel's memory and the loop's position out of its total; the stats file
    has the run's time and peak memory; and the executed notebook carries no progress bar (under
    ``TQDM_DISABLE=1``, as the Makefile runs it, ``tqdm.auto``'s notebook widget, which ignores the
    variable by itself, must not be embedded in the published page)."""
    body = "import time\nfrom analysis.io import progress\nfor _ in progress(range(30), desc='draws', progress=True):\n    time.sleep(0.2)"
    nb = _notebook(tmp_path / "loops.ipynb", body, [])
    proc = _run(tmp_path, nb, ANALYSIS_HEARTBEAT="1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    beats = [ln for ln in proc.stdout.splitlines() if ln.startswith("[loops] running")]
    assert beats, proc.stdout[-2000:]
    assert any("cell 3 of 3" in ln and "kernel memory" in ln and "draws " in ln and "/30" in ln for ln in beats), beats
    stats = json.loads((tmp_path / "out.stats.json").read_text())
    assert stats["status"] == "ok" and stats["seconds"] >= 6 and stats["peak_gb"] > 0
    outputs = [o for c in nbformat.read(tmp_path / "out.ipynb", as_version=4).cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})], outputs
    assert "/30" not in json.dumps(outputs), outputs


def test_kernel_talks_over_unix_sockets_in_a_folder_of_its_own(tmp_path):
    """On a system with Unix sockets the kernel runs on ZeroMQ's ``ipc`` transport, its sockets in
    a temporary folder of the runner, so two kernels starting at once cannot take each other's TCP
    port ("ZMQError: Address already in use", papermill issue #511); the folder is gone afterwards."""
    if os.name != "posix":
        pytest.skip("Unix sockets only on POSIX systems; elsewhere the kernel uses TCP")
    body = "from ipykernel.kernelapp import IPKernelApp\napp = IPKernelApp.instance()\nprint(app.transport, app.ip)"
    nb = _notebook(tmp_path / "transport.ipynb", body, [])
    proc = _run(tmp_path, nb)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[-1].outputs[0]["text"].split()
    assert out[0] == "ipc" and Path(out[1]).name == "kernel", out
    assert not Path(out[1]).parent.exists()
