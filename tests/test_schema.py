"""The data contract: each way a panel can break it gives a PanelError naming the column and rows.

One test per bad-input case of the contract (``analysis.schema.COLUMNS``, documented in
``data/README.md``): missing required column, wrong type,
duplicate firm-year, zero or negative inputs where logs are taken, years out of range, cohort
not constant within a firm, cohort outside the data years. A valid panel passes unchanged.
"""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.schema import COLUMNS, REQUIRED, PanelError, validate_panel


@pytest.fixture
def panel() -> pd.DataFrame:
    """A five-row panel that meets the contract."""
    return pd.DataFrame(
        {
            "firm_id": [1, 1, 2, 2, 3],
            "year": [2015, 2016, 2015, 2016, 2016],
            "county_code": [320581] * 5,
            "industry_code": [26, 26, 30, 30, 26],
            "cohort": [2016, 2016, 0, 0, 0],
            "output": [100.0, 110.0, 50.0, 55.0, 10.0],
            "labor": [20.0, 21.0, 10.0, 10.0, 5.0],
            "patents_invention": [0, 1, 0, 0, 2],
        }
    )


def test_valid_panel_passes_unchanged(panel):
    """A panel that meets the contract is returned as is."""
    assert validate_panel(panel) is panel


def test_small_world_meets_the_contract(small_world):
    """The synthetic world's panel passes the same checks as real data."""
    validate_panel(small_world.panel)


@pytest.mark.parametrize("column", REQUIRED)
def test_missing_required_column(panel, column):
    """Each required column, when absent, is named in the error."""
    with pytest.raises(PanelError, match=rf"missing required column\(s\) \['{column}'\]"):
        validate_panel(panel.drop(columns=column))


def test_wrong_type_names_column_and_rows(panel):
    """Text in a numeric column: the message names the column and shows the offending row."""
    bad = panel.astype({"output": object})
    bad.loc[2, "output"] = "n/a"
    with pytest.raises(PanelError, match="column 'output' must be numeric") as err:
        validate_panel(bad)
    assert "n/a" in str(err.value)


def test_fractional_count(panel):
    """A fractional patent count is an error naming the column."""
    with pytest.raises(PanelError, match="column 'patents_invention' must hold whole numbers"):
        validate_panel(panel.assign(patents_invention=[0, 0.5, 0, 0, 1]))


def test_duplicate_firm_year(panel):
    """A repeated firm-year is an error showing the rows."""
    bad = pd.concat([panel, panel.iloc[[0]]], ignore_index=True)
    with pytest.raises(PanelError, match="duplicate firm-year: 2 rows") as err:
        validate_panel(bad)
    assert "2015" in str(err.value)


@pytest.mark.parametrize("value", [0.0, -3.0])
def test_nonpositive_input_where_logs_are_taken(panel, value):
    """Zero or negative labor (whose log is taken) is an error showing the value."""
    bad = panel.copy()
    bad.loc[3, "labor"] = value
    with pytest.raises(PanelError, match="column 'labor' must be positive where present") as err:
        validate_panel(bad)
    assert str(value) in str(err.value)


def test_missing_inputs_are_allowed(panel):
    """Missing values are not errors (value added is missing in several ASIF years)."""
    ok = panel.copy()
    ok.loc[1, "output"] = float("nan")
    validate_panel(ok)


def test_year_out_of_range(panel):
    """A year outside 1990-2035 is an error counting the rows."""
    with pytest.raises(PanelError, match="column 'year' out of range 1990-2035 in 1 row"):
        validate_panel(panel.assign(year=[2015, 2016, 2015, 2016, 2061]))


def test_cohort_not_constant_within_firm(panel):
    """A firm whose cohort changes is an error counting the firms."""
    with pytest.raises(PanelError, match="column 'cohort' is not constant within firm for 1 firm"):
        validate_panel(panel.assign(cohort=[2016, 0, 0, 0, 0]))


def test_cohort_outside_data_years(panel):
    """A cohort after the last data year must be coded 0 (not yet treated), with the batch kept."""
    with pytest.raises(PanelError, match="column 'cohort' outside the data years 2015-2016"):
        validate_panel(panel.assign(cohort=[2026, 2026, 0, 0, 0]))


def test_missing_cohort_counts_as_never_treated(panel):
    """Missing and 0 are one code (analysis.domain.never_treated): a firm with 0 in one year and missing in
    another has a single cohort and passes unchanged, while a firm with 2016 and missing has two and fails."""
    mixed = panel.assign(cohort=[2016, 2016, 0, None, None])
    assert validate_panel(mixed) is mixed
    with pytest.raises(PanelError, match="column 'cohort' is not constant within firm for 1 firm"):
        validate_panel(panel.assign(cohort=[2016, None, 0, 0, 0]))


def test_source_is_named(panel):
    """Errors on a user's file start with the file's name."""
    with pytest.raises(PanelError, match=r"^data/raw/firms.csv: missing"):
        validate_panel(panel.drop(columns="year"), source="data/raw/firms.csv")


def test_data_readme_documents_every_column():
    """data/README.md documents every column of the contract (name in backticks in its table)."""
    from analysis.config import ROOT

    text = (ROOT / "data" / "README.md").read_text(encoding="utf-8")
    undocumented = [c.name for c in COLUMNS if f"`{c.name}`" not in text]
    assert not undocumented
