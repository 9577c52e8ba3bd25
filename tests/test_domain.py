"""One rule for treatment timing, applied alike by the panel builder, the data contract and the DiD container.

The rules live in :mod:`analysis.domain`: cohort 0 or missing is never treated; a unit first
treated after the last period (plus anticipation) is not treated within the sample; one row per
unit and period. Each test builds the smallest panel that tells the rule apart from the
alternatives (treating a late cohort as treated, or a missing cohort as an error).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.did import DiDPanel, att_gt
from analysis.did._common import prepare_panel
from analysis.domain import cohort_from_date, duplicated_unit_periods, late_cohorts, never_treated, within_sample_cohorts
from analysis.panel import assign_clusters
from analysis.schema import PanelError, validate_panel


def _panel(cohorts: list[float | None]) -> pd.DataFrame:
    """Firms 1..n observed 2020-2022, one cohort each."""
    n = len(cohorts)
    return pd.DataFrame({
        "firm_id": np.repeat(np.arange(1, n + 1), 3),
        "year": np.tile([2020, 2021, 2022], n),
        "county_code": 320581,
        "industry_code": 26,
        "cohort": np.repeat(np.array(cohorts, dtype=float), 3),
        "y": np.arange(3 * n, dtype=float),
    })


def test_never_treated_is_zero_missing_or_infinite():
    """Cohort 0, missing and infinite all read as never treated."""
    assert never_treated([0, None, np.inf, 2021]).tolist() == [True, True, True, False]


def test_late_cohort_rule_with_and_without_anticipation():
    """After the last period: late; with one period of anticipation a cohort one period after the end is not."""
    assert late_cohorts([2022, 2023, 0, None], last_period=2022).tolist() == [False, True, False, False]
    assert late_cohorts([2023, 2024], last_period=2022, anticipation=1).tolist() == [False, True]
    assert within_sample_cohorts([2021, 2024, None], last_period=2022).tolist() == [2021.0, 0.0, 0.0]


def test_panel_builder_codes_late_batches_as_never_treated():
    """A batch announced 2023-10 is first treated in 2024 (late_month 7): after data ending 2022 its firms get
    cohort 0 and keep their batch; the 2022-01 batch's firms are treated from 2022."""
    assert cohort_from_date("2023-10-18", late_month=7) == 2024
    firms = pd.DataFrame({"firm_id": [1, 2], "year": [2022, 2022], "county_code": [1, 2], "industry_code": [26, 26]})
    clusters = pd.DataFrame({"cluster_id": ["A", "B"], "county_code": [1, 2], "industry_code": [26, 26],
                             "batch": [2021, 2023], "announced": ["2022-01-11", "2023-10-18"]})
    out = assign_clusters(firms, clusters, late_month=7, last_year=2022)
    assert out["cohort"].tolist() == [2022, 0] and out["batch"].tolist() == [2021, 2023]


def test_contract_rejects_what_the_builder_would_recode():
    """The stored panel must already apply the rule: a cohort after the last data year is an error naming it."""
    with pytest.raises(PanelError, match="column 'cohort' outside the data years 2020-2022 in 3 row"):
        validate_panel(_panel([2021, 2023, 0]))


def test_missing_cohort_is_never_treated_in_the_contract_and_in_the_estimators():
    """A missing cohort passes the contract unchanged and is coded never treated (0) by the DiD container, exactly
    like cohort 0: att_gt gives the same estimates either way."""
    missing = _panel([2021, None, None])
    assert validate_panel(missing) is missing
    p = DiDPanel.from_data(missing, unit="firm_id", time="year", cohort="cohort")
    assert p.cohort_unit.tolist() == [2021.0, 0.0, 0.0] and p.has_never_treated
    rng = np.random.default_rng(0)
    big_missing = _panel([2021] * 5 + [None] * 5).assign(y=lambda d: rng.normal(size=len(d)))
    big_zero = big_missing.assign(cohort=big_missing["cohort"].fillna(0))
    a = att_gt(big_missing, "y", "firm_id", "year", "cohort").tidy()
    b = att_gt(big_zero, "y", "firm_id", "year", "cohort").tidy()
    pd.testing.assert_frame_equal(a, b)


def test_every_did_layout_recodes_late_cohorts_the_same_way():
    """The long layout (TWFE, Sun-Abraham, imputation, stacked) and Callaway-Sant'Anna's wide layout both read
    the late cohort 2023 as never treated, with the container's note."""
    df = _panel([2021, 2023, 0])
    long = prepare_panel(df, outcome="y", unit="firm_id", time="year", cohort="cohort")
    assert long.frame.groupby("_i")["_g"].first().tolist() == [2021.0, 0.0, 0.0]
    assert any("first treated after the last period" in n for n in long.notes)
    from analysis.did._cs_data import prepare_panel as wide

    w = wide(df, outcome="y", unit="firm_id", time="year", cohort="cohort", covariates=None, cluster=None,
             weights=None, anticipation=0, control="never")
    assert sorted(w.cohort.tolist()) == [0.0, 0.0, 2021.0]
    assert any("first treated after the last period" in n for n in w.notes)


def test_one_row_per_unit_and_period_everywhere():
    """The same duplicate is caught by the contract, the DiD container and the production functions."""
    assert duplicated_unit_periods([1, 1, 2], [2020, 2020, 2020]).tolist() == [True, True, False]
    df = _panel([0, 0])
    dup = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    with pytest.raises(PanelError, match="duplicate firm-year: 2 rows"):
        validate_panel(dup)
    with pytest.raises(ValueError, match=r"duplicate \('firm_id', 'year'\) rows: 1 unit-period pair"):
        DiDPanel.from_data(dup, unit="firm_id", time="year", cohort="cohort")
    from analysis.tfp import estimate_production

    with pytest.raises(ValueError, match=r"\(firm_id, year\) pairs are not unique"):
        estimate_production(dup.assign(l=1.0, k=1.0), "y", "l", "k", method="ols")


def test_a_container_is_checked_once_and_reused():
    """An estimator given a DiDPanel built with the same roles reuses it (no second validation) and gives the
    same result as from the data frame."""
    rng = np.random.default_rng(1)
    df = _panel([2021] * 6 + [0] * 6).assign(y=lambda d: rng.normal(size=len(d)))
    p = DiDPanel.from_data(df, unit="firm_id", time="year", cohort="cohort")
    from analysis.did.data import as_panel

    assert as_panel(p, unit="firm_id", time="year", cohort="cohort") is p
    assert as_panel(p, unit="firm_id", time="year", cohort="cohort", cluster="county_code") is not p
    pd.testing.assert_frame_equal(att_gt(p, "y", "firm_id", "year", "cohort").tidy(), att_gt(df, "y", "firm_id", "year", "cohort").tidy())
