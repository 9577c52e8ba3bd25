"""Which families' pages run beside 03_productivity (tools/families.py, for make).

A family whose effects and robustness pages read no TFP column reads the built panel, so make lets
it start before TFP is estimated. Make's answer comes from a conservative scan of the parameter
files (tools/families.py); the page's answer from the exact columns it reads
(``analysis.effects.family_columns`` and ``analysis.robustness.panel_columns``, tested here
against each other). Were they to disagree the wrong way, a page would read a panel with TFP
that make had not yet built.
"""

from __future__ import annotations

import shutil

import pytest
import yaml

from analysis import robustness
from analysis.config import CONFIG_DIR, load_params, reads_tfp
from analysis.effects import family_columns, load_family

from tools_import import load_tool

families = load_tool("families")
FAMILIES = sorted(p.stem.removeprefix("effects_") for p in CONFIG_DIR.glob("effects_*.yaml"))
PARAMETER_SETS = ["default", "small", "asif", "example_raw"]


def test_productivity_waits_for_tfp_and_the_other_families_do_not():
    """On the default parameter set the productivity family's outcomes are TFP (tfp_acf, ...); the
    emissions and innovation pages read none, and so may run beside 03_productivity."""
    assert families.tfp_free_families("default") == ["emissions", "innovation"]


@pytest.mark.parametrize("config", PARAMETER_SETS)
def test_make_never_lets_a_page_run_before_a_file_it_reads(config):
    """For every committed parameter set and family: a family make lets run without TFP reads no TFP
    column, by the exact list of columns its effects and robustness pages load."""
    params = load_params(config)
    free = set(families.tfp_free_families(config))
    for family in FAMILIES:
        columns = family_columns(load_family(family), params["did"], robustness.panel_columns(params))
        if family in free:
            assert not reads_tfp(columns), (config, family)
    assert free, config


def test_a_tfp_split_makes_every_family_wait(tmp_path):
    """A heterogeneity split by TFP (did.heterogeneity: [tfp_acf]) makes every family's pages read
    the panel with TFP: make then lets none run before 03_productivity."""
    for f in CONFIG_DIR.glob("*.yaml"):
        shutil.copy2(f, tmp_path / f.name)
    (tmp_path / "split.yaml").write_text(yaml.safe_dump({"did": {"heterogeneity": ["sme", "tfp_acf"]}}))
    assert families.tfp_free_families("split", config_dir=tmp_path) == []
    params = load_params("split", config_dir=tmp_path)
    assert all(reads_tfp(family_columns(load_family(f), params["did"])) for f in FAMILIES)


def test_an_unreadable_parameter_set_lets_every_family_wait(capsys):
    """If the parameter set cannot be read, the tool prints no family (make then lets every family
    wait for TFP, the safe order) and says why on stderr; the notebooks report the error itself."""
    assert families.main(["no_such_set"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "" and "no_such_set" in err and "every family waits for TFP" in err
