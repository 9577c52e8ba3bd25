"""Staggered difference-in-differences estimators, all returning the one tidy result shape.

- :class:`DiDPanel` (:mod:`analysis.did.data`): the one validated panel container; every
  estimator builds it from a data frame, or reuses one built by the caller (check once, estimate
  many times);
- :func:`att_gt` (Callaway and Sant'Anna 2021), with ``.aggregate("simple" | "event" | "group" | "calendar")``;
- :func:`twfe` (two-way fixed effects, static or dynamic), :func:`sunab` (Sun and Abraham 2021),
  :func:`imputation` (Borusyak, Jaravel and Spiess 2024), :func:`stacked` (Wing, Freedman and
  Hollingsworth 2024);
- :func:`ppml` and :func:`etwfe_poisson` for counts (Poisson PML; Wooldridge 2023);
- :func:`event_study` (any of them as an event study, same columns), :func:`bacon_decomp`
  (Goodman-Bacon 2021), :func:`honest_did` (Rambachan and Roth 2023).

A never-treated unit has cohort 0 or missing; a unit first treated after the last period (plus
anticipation) is never treated in the sample (:mod:`analysis.domain`).
"""

from analysis.did.att_gt import att_gt
from analysis.did.bacon import bacon_decomp
from analysis.did.data import DiDPanel, as_panel
from analysis.did.event_study import event_study
from analysis.did.honest import honest_did
from analysis.did.imputation import imputation
from analysis.did.poisson import etwfe_poisson, ppml
from analysis.did.stacked import stacked
from analysis.did.sunab import sunab
from analysis.did.twfe import twfe

__all__ = [
    "DiDPanel",
    "as_panel",
    "att_gt",
    "bacon_decomp",
    "etwfe_poisson",
    "event_study",
    "honest_did",
    "imputation",
    "ppml",
    "stacked",
    "sunab",
    "twfe",
]
