"""The productivity page (notebooks/03_productivity.ipynb) reads only the panel columns it uses.

At census size the built panel has 45 columns and 4.9 million rows; the page loads
:func:`analysis.productivity.panel_columns` of them and :func:`analysis.productivity.write_tfp_panel`
appends the TFP columns to the whole panel's file a batch of rows at a time. Checked here on the small
parameter set's panel, built by the pipeline into a temporary folder: every step of the page gives on
the column subset what it gives on the whole panel (the reference: the same functions on
``load_panel(config)``, the page as it was before it read a subset), and the file the effect reports
read is the same file.
"""

from __future__ import annotations

import pandas as pd
import pytest

from analysis import productivity
from analysis.config import load_params
from analysis.panel import load_panel, load_world_tables
from analysis.panel import main as build_panel


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The small parameter set's panel and world tables, built by `python -m analysis.panel` into a temporary folder."""
    tmp = tmp_path_factory.mktemp("processed")
    mp = pytest.MonkeyPatch()
    for where in ("analysis.config", "analysis.panel", "analysis.productivity"):
        mp.setattr(f"{where}.processed_dir", lambda config: tmp / config)
    assert build_panel(["--config", "small"]) == 0
    params = load_params("small")
    params["tfp"] = {**params["tfp"], "n_boot": 3}  # the draws' count does not change what is read
    yield params, tmp
    mp.undo()


def test_page_steps_on_its_columns_equal_those_on_the_whole_panel(built):
    """estimate_tfp (every method's TFP column and coefficients), estimate_by_group and truth_report give the
    same numbers on a panel of exactly panel_columns(params) as on the whole built panel, and that subset is
    far narrower than the panel (a step that reads another column fails here with a KeyError)."""
    params, _ = built
    whole, page = load_panel("small"), load_panel("small", columns=productivity.panel_columns(params))
    assert list(page.columns) == [c for c in productivity.panel_columns(params) if c in whole]
    assert page.shape[1] <= whole.shape[1] // 2, (page.shape, whole.shape)
    tfp, seed = params["tfp"], params["seed"]
    out_w, fits_w = productivity.estimate_tfp(whole, tfp, seed=seed, progress=False)
    out_p, fits_p = productivity.estimate_tfp(page, tfp, seed=seed, progress=False)
    assert productivity.tfp_columns(fits_p) == productivity.tfp_columns(fits_w) and len(fits_w) >= 5
    for col in [*productivity.tfp_columns(fits_w), "certified"]:
        pd.testing.assert_series_equal(out_p[col], out_w[col])
    pd.testing.assert_frame_equal(productivity.coefficient_table(fits_p), productivity.coefficient_table(fits_w))
    world = load_world_tables("small")
    pd.testing.assert_frame_equal(productivity.truth_report(fits_p, out_p, world, params),
                                  productivity.truth_report(fits_w, out_w, world, params))
    by = productivity.estimate_by_group(page, {**tfp, "n_boot": 0}, "industry_code", seed=seed)
    pd.testing.assert_frame_equal(by, productivity.estimate_by_group(whole, {**tfp, "n_boot": 0}, "industry_code", seed=seed))


def test_written_tfp_panel_is_the_whole_panel_with_tfp_columns(built):
    """write_tfp_panel of the page's narrow panel writes panel_tfp.parquet with every column of the built panel
    and the TFP columns: the file equals the one written from the whole panel (pandas' read-assign-write);
    load_tfp_panel's column selection reads from it."""
    params, tmp = built
    tfp, seed = {**params["tfp"], "robustness": ["ols"]}, params["seed"]
    out_w, _ = productivity.estimate_tfp(load_panel("small"), tfp, seed=seed, progress=False)
    out_p, _ = productivity.estimate_tfp(load_panel("small", columns=productivity.panel_columns(params)), tfp, seed=seed,
                                         progress=False)
    written = productivity.write_tfp_panel(out_p, "small")
    assert written == tmp / "small" / "panel_tfp.parquet"
    reference = tmp / "reference.parquet"
    out_w.to_parquet(reference)
    pd.testing.assert_frame_equal(pd.read_parquet(written), pd.read_parquet(reference))
    got = productivity.load_tfp_panel("small", params, columns=["tfp_acf", "so2", "absent"])
    assert list(got.columns) == ["tfp_acf", "so2"] and got["tfp_acf"].notna().mean() > 0.5
