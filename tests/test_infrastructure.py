"""Infrastructure: parameter sets, atomic writes, the tidy result shape, dependency scanning.

Reference values for confidence intervals and p-values come from scipy.stats (normal and t
quantiles), computed independently of analysis.results.
"""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.config import CONFIG_DIR, ROOT, ParameterError, deep_merge, load_params
from analysis.io import (
    append_parquet_columns,
    atomic_write,
    file_hash,
    read_log,
    read_parquet_columns,
    read_table,
    record_reads,
    write_parquet,
    write_text,
)
from analysis.results import EstimationResult, check_tidy, combine, tidy_frame
from analysis.tables import export_table, wide_table

from tools_import import load_tool

write_stamps = load_tool("stamps").write_stamps
_deps = load_tool("deps")
module_closure, notebook_imports = _deps.module_closure, _deps.notebook_imports


# --- parameter sets ------------------------------------------------------------------------------
PARAMETER_SETS = sorted(p for p in CONFIG_DIR.glob("*.yaml") if not p.stem.startswith("effects_") and p.stem != "validation")


@pytest.mark.parametrize("path", PARAMETER_SETS, ids=lambda p: p.stem)
def test_every_parameter_set_loads(path):
    """Each parameter set in config/ merges over default.yaml without unknown keys: the result has every
    key of default.yaml, the set's own values where it gives them and the default's elsewhere
    (effects_*.yaml are outcome-family specifications, checked in test_effects; validation.yaml is
    the Monte Carlo specification, checked in test_montecarlo)."""
    import yaml

    default = yaml.safe_load((CONFIG_DIR / "default.yaml").read_text(encoding="utf-8"))
    own = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    params = load_params(path.stem)

    def check(merged, base, override, where):
        for key, value in base.items():
            assert key in merged, f"{where}{key} missing"
            if isinstance(value, dict) and value and isinstance(override.get(key), dict):
                check(merged[key], value, override[key], f"{where}{key}.")
            else:
                assert merged[key] == override.get(key, value), f"{where}{key}"

    check(params, default, own, "")


def test_unknown_key_is_named():
    """A misspelt parameter stops the merge with its dotted name."""
    with pytest.raises(ParameterError, match=r"unknown parameter 'did.clustr'"):
        deep_merge({"did": {"cluster": "x"}}, {"did": {"clustr": "y"}})


def test_missing_parameter_file_lists_the_available_ones():
    """A missing parameter set is an error listing the sets that exist."""
    with pytest.raises(ParameterError, match="not found; available: .*small"):
        load_params("no_such_set")


def test_stamps_change_only_with_their_section(tmp_path, monkeypatch):
    """Parameter stamps are rewritten only for the sections whose values changed."""
    cfg = tmp_path / "config"
    cfg.mkdir()
    (cfg / "default.yaml").write_text((CONFIG_DIR / "default.yaml").read_text())
    (cfg / "x.yaml").write_text("did: {alpha: 0.1}\n")
    first = {p.stem for p in write_stamps("x", tmp_path / "stamps", config_dir=cfg)}
    assert {"did", "world", "data", "seed", "tfp"} <= first
    assert write_stamps("x", tmp_path / "stamps", config_dir=cfg) == []
    (cfg / "x.yaml").write_text("did: {alpha: 0.2}\n")
    assert [p.stem for p in write_stamps("x", tmp_path / "stamps", config_dir=cfg)] == ["did"]
    assert json.loads((tmp_path / "stamps" / "did.json").read_text())["alpha"] == 0.2


# --- atomic writes ---------------------------------------------------------------------------------
def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    """A write that fails midway leaves neither the target nor a temporary file."""
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    """A failed overwrite leaves the previous file as it was."""
    target = write_text("old", tmp_path / "a.txt")
    with pytest.raises(ValueError):
        with atomic_write(target) as tmp:
            tmp.write_text("new")
            raise ValueError
    assert target.read_text() == "old"


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_write_ends_with_the_mode_of_open(tmp_path, umask):
    """A file written atomically (text, parquet, and an overwrite of an existing file) has the mode a file
    created by a plain open(..., "w") gets under the same umask (0644 under 022), not mkstemp's 0600."""
    old = os.umask(umask)
    try:
        with open(tmp_path / "by_open.txt", "w") as fh:
            fh.write("x")
        expected = stat.S_IMODE(os.stat(tmp_path / "by_open.txt").st_mode)
        written = [write_text("a", tmp_path / "a.html"), write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "b.parquet"),
                   write_text("again", tmp_path / "a.html")]
    finally:
        os.umask(old)
    assert expected == 0o666 & ~umask
    for path in written:
        assert stat.S_IMODE(os.stat(path).st_mode) == expected, (path.name, oct(os.stat(path).st_mode))


# --- reading some columns, appending columns without reading the whole file ---------------------------
def _mixed_frame(n: int = 1_000) -> pd.DataFrame:
    """Rows of the kinds a panel holds: integer keys, floats with NaN, nullable integers, strings, a category."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    x[::7] = np.nan
    return pd.DataFrame({"firm_id": np.repeat(np.arange(n // 10), 10), "year": np.tile(np.arange(2010, 2020), n // 10),
                         "x": x, "cohort": pd.array(np.where(rng.random(n) < 0.3, 2023, pd.NA), dtype="Int64"),
                         "name": [f"firm {i}" for i in range(n)],
                         "industry": pd.Categorical(rng.choice(["13", "26", "39"], n))})


@pytest.mark.parametrize("batch_rows", [64, 1_000, 1 << 20])
def test_append_parquet_columns_equals_reading_the_whole_file_and_assigning(tmp_path, batch_rows):
    """append_parquet_columns(source, added, path) reads back exactly as pd.read_parquet(source) with added's
    columns assigned (values, NaN, dtypes including nullable Int64, float32 and category, column order; a column
    source already has is replaced in place of being duplicated), whether the file is written in one batch or
    in 16 (64 rows, the last one short). The reference is pandas' own read-assign-write."""
    source = write_parquet(_mixed_frame(), tmp_path / "panel.parquet")
    rng = np.random.default_rng(1)
    tfp = rng.normal(size=1_000).astype("float32")
    tfp[5:9] = np.nan
    added = pd.DataFrame({"x": np.arange(1_000.0), "tfp_acf": tfp, "certified": rng.random(1_000) < 0.2},
                         index=np.arange(1_000)[::-1])  # the index is ignored: row i goes with row i
    out = append_parquet_columns(source, added, tmp_path / "panel_tfp.parquet", keys=_mixed_frame()[["firm_id", "year"]],
                                 batch_rows=batch_rows)
    expected = pd.read_parquet(source).drop(columns="x")
    for c in added:
        expected[c] = added[c].to_numpy()
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected)
    assert pd.read_parquet(out)["industry"].dtype == "category"
    assert pd.read_parquet(source).shape == (1_000, 6), "the source is only read"


def test_append_parquet_columns_refuses_rows_that_are_not_the_files(tmp_path):
    """Rows dropped, rows reordered (caught by the keys, naming the first row that differs and the file) and a
    write onto the source itself are errors; the target is then not written (atomic write)."""
    frame = _mixed_frame()
    source = write_parquet(frame, tmp_path / "panel.parquet")
    target = tmp_path / "out.parquet"
    with pytest.raises(ValueError, match=r"has 1,000 rows, the new columns \(y\) 999"):
        append_parquet_columns(source, pd.DataFrame({"y": np.zeros(999)}), target)
    shuffled = frame.sort_values(["year", "firm_id"], kind="stable")
    with pytest.raises(ValueError, match=r"row 1 of .*panel.parquet has firm_id = 0, the frame being written 1:"):
        append_parquet_columns(source, pd.DataFrame({"y": np.zeros(1_000)}), target, keys=shuffled[["firm_id", "year"]],
                               batch_rows=300)
    late = frame[["firm_id", "year"]].copy()
    late.loc[777, "firm_id"] = -1
    with pytest.raises(ValueError, match=r"row 777 of .* has firm_id = 77, the frame being written -1"):
        append_parquet_columns(source, pd.DataFrame({"y": np.zeros(1_000)}), target, keys=late, batch_rows=300)
    with pytest.raises(ValueError, match="key column"):
        append_parquet_columns(source, pd.DataFrame({"year": np.zeros(1_000)}), target, keys=frame[["year"]])
    with pytest.raises(ValueError, match="onto its own source"):
        append_parquet_columns(source, pd.DataFrame({"y": np.zeros(1_000)}), source)
    assert not target.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["panel.parquet"]


def test_read_parquet_columns_reads_those_the_file_has_in_the_order_asked(tmp_path):
    """Only the asked columns are read, in the asked order, each once; an absent one is left out (the page's own
    require_inputs names it); None reads all."""
    path = write_parquet(_mixed_frame(), tmp_path / "p.parquet")
    got = read_parquet_columns(path, ["x", "firm_id", "missing", "x"])
    assert list(got.columns) == ["x", "firm_id"]
    pd.testing.assert_frame_equal(got, pd.read_parquet(path)[["x", "firm_id"]])
    assert list(read_parquet_columns(path).columns) == list(_mixed_frame().columns)


def test_record_reads_logs_each_input_read_with_its_hash(tmp_path):
    """record_reads logs the files read under the watched folder, whoever reads them (pandas' parquet
    reader, which opens files in C++, csv, plain open), with the SHA-256 of what was read (compared with
    file_hash); a file read twice unchanged is logged once, a changed file again; files written, files
    outside the folder and files in an excluded folder are not logged."""
    watched, cache, outside = tmp_path / "data", tmp_path / "data" / "cache", tmp_path / "elsewhere"
    for d in (watched, cache, outside):
        d.mkdir(parents=True, exist_ok=True)
    write_parquet(pd.DataFrame({"a": [1, 2]}), watched / "panel.parquet")
    (watched / "params.yaml").write_text("seed: 1\n")
    pd.DataFrame({"b": [3]}).to_csv(watched / "t.csv", index=False)
    (cache / "c.json").write_text("{}")
    (outside / "o.txt").write_text("o")
    log = tmp_path / "reads.jsonl"
    record_reads(log, under=[watched], exclude=[cache])
    try:
        pd.read_parquet(watched / "panel.parquet")
        pd.read_parquet(str(watched / "panel.parquet"))
        pd.read_csv(watched / "t.csv")
        first = (watched / "params.yaml").read_text()
        (cache / "c.json").read_text()
        (outside / "o.txt").read_text()
        write_text("new.csv", watched / "new.csv")
        (watched / "params.yaml").write_text("seed: 2\n")
        second = (watched / "params.yaml").read_text()
    finally:
        record_reads(None, under=[])
    got = [(os.path.relpath(r["path"], watched), r["sha256"]) for r in read_log(log)]
    yaml_hashes = [h for p, h in got if p == "params.yaml"]
    assert first != second and len(yaml_hashes) == 2
    assert sorted({p for p, _ in got}) == ["panel.parquet", "params.yaml", "t.csv"]
    assert [p for p, _ in got].count("panel.parquet") == 1
    assert {p: h for p, h in got if p != "params.yaml"} == {
        "panel.parquet": file_hash(watched / "panel.parquet", length=64), "t.csv": file_hash(watched / "t.csv", length=64)}
    assert yaml_hashes[1] == file_hash(watched / "params.yaml", length=64)


def test_record_reads_leaves_out_what_the_process_wrote_itself(tmp_path):
    """A file the process wrote atomically (a run manifest) and then reads back is its output, not an
    input: it is not logged, so a page's footer never lists a hash the file no longer has; a file written
    by another process before is logged."""
    watched = tmp_path / "data"
    watched.mkdir()
    write_text("before", watched / "input.txt")
    log = tmp_path / "reads.jsonl"
    record_reads(log, under=[watched])
    try:
        (watched / "input.txt").read_text()
        write_text('{"status": "running"}', watched / "run.json")
        (watched / "run.json").read_text()
        write_text('{"status": "complete"}', watched / "run.json")
    finally:
        record_reads(None, under=[])
    assert [os.path.basename(r["path"]) for r in read_log(log)] == ["input.txt"]


def test_read_table_errors_name_the_file(tmp_path):
    """A missing file and an unsupported suffix are errors naming the file."""
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "x.sav").write_text("")
    with pytest.raises(ValueError, match=r"x.sav: unsupported suffix"):
        read_table(tmp_path / "x.sav")


# --- the tidy result shape -------------------------------------------------------------------------
def test_tidy_frame_normal_and_t_inference():
    """Bounds = estimate -/+ quantile * se and two-sided p-values, against scipy.stats."""
    t = tidy_frame([1.0, -0.5], [0.4, 0.25], term=["a", "b"], outcome="y", estimator="ols", n_obs=50)
    z = stats.norm.ppf(0.975)
    assert t["conf_low"].tolist() == pytest.approx([1 - z * 0.4, -0.5 - z * 0.25])
    assert t["p_value"].tolist() == pytest.approx([2 * stats.norm.sf(2.5), 2 * stats.norm.sf(2.0)])
    t2 = tidy_frame([1.0], [0.4], term="a", outcome="y", estimator="ols", n_obs=50, df=10, alpha=0.1)
    assert t2["conf_high"].item() == pytest.approx(1 + stats.t(10).ppf(0.95) * 0.4)
    assert t2["p_value"].item() == pytest.approx(2 * stats.t(10).sf(2.5))


def test_uniform_band_critical_value():
    """A given critical value (a uniform band's) replaces the normal quantile in the bounds."""
    t = tidy_frame([0.0, 1.0], [1.0, 1.0], term=["a", "b"], outcome="y", estimator="cs", n_obs=1, crit=2.7)
    assert t["conf_high"].tolist() == [2.7, 3.7]


def test_result_slices_one_table():
    """coef(), se() and vcov are slices of the one tidy table; repr and HTML show it."""
    res = EstimationResult.from_estimates(estimate=[0.2, 0.3], std_error=[0.1, 0.1], term=["x", "z"], outcome="y",
                                          estimator="ols", n_obs=10, vcov=np.eye(2) * 0.01, event_time=[0, 1])
    assert res.coef().to_dict() == {"x": 0.2, "z": 0.3}
    assert res.se()["z"] == 0.1
    assert list(res.tidy().columns[:9]) == ["outcome", "estimator", "term", "estimate", "std_error", "conf_low", "conf_high", "p_value", "n_obs"]
    assert "event_time" in res.tidy()
    assert res.vcov.loc["x", "x"] == 0.01
    assert "ols: y" in repr(res) and "<table" in res._repr_html_()


def test_check_tidy_names_missing_columns():
    """A frame without the tidy columns is an error naming the missing ones."""
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['p_value', 'n_obs'\]"):
        check_tidy(pd.DataFrame(columns=["outcome", "estimator", "term", "estimate", "std_error", "conf_low", "conf_high"]))


def test_wide_table_and_export(tmp_path):
    """A paper table: estimates with stars over standard errors; CSV and booktabs LaTeX written."""
    a = tidy_frame([0.1, 0.02], [0.02, 0.05], term="ATT", outcome=["tfp", "patents"], estimator="cs", n_obs=[500, 400])
    b = a.assign(estimator="twfe", estimate=[0.05, 0.01])
    wide = wide_table(combine([a, b]))
    assert wide.loc["cs", "tfp"] == "0.100***" and wide.loc["cs (s.e.)", "tfp"] == "(0.020)"
    assert wide.loc["Observations", "patents"] == "400"
    paths = export_table(wide, "headline", directory=tmp_path, caption="Headline")
    tex = paths["tex"].read_text()
    assert r"\toprule" in tex and r"\caption{Headline}" in tex and "0.100***" in tex
    assert pd.read_csv(paths["csv"], index_col=0).loc["cs", "tfp"] == "0.100***"


# --- dependency scanning for make ------------------------------------------------------------------
def test_dependency_closure_is_transitive():
    """A notebook importing analysis.panel depends on schema, simulate, io and config through it."""
    src = ROOT / "src"
    files = {p.name for p in module_closure(src, {"analysis.panel"})}
    assert {"panel.py", "schema.py", "simulate.py", "io.py", "config.py", "__init__.py"} <= files
    assert "plots.py" not in files


def test_notebook_imports_are_found():
    """The notebook's imports of analysis modules are read from its code cells."""
    mods = notebook_imports(ROOT / "notebooks" / "02_descriptives.ipynb")
    assert {"analysis.describe", "analysis.plots", "analysis.panel"} <= mods
