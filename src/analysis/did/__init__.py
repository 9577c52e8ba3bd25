"""Staggered difference-in-differences estimators, all returning the one tidy result shape.

- :func:`att_gt` (Callaway and Sant'Anna 2021), with ``.aggregate("simple" | "event" | "group" | "calendar")``;
- :func:`twfe` (two-way fixed effects, static or dynamic), :func:`sunab` (Sun and Abraham 2021),
  :func:`imputation` (Borusyak, Jaravel and Spiess 2024), :func:`stacked` (Wing, Freedman and
  Hollingsworth 2024);
- :func:`event_study` (any of them as an event study, same columns), :func:`bacon_decomp`
  (Goodman-Bacon 2021), :func:`honest_did` (Rambachan and Roth 2023).
"""

from analysis.did.att_gt import att_gt
from analysis.did.bacon import bacon_decomp
from analysis.did.event_study import event_study
from analysis.did.honest import honest_did
from analysis.did.imputation import imputation
from analysis.did.stacked import stacked
from analysis.did.sunab import sunab
from analysis.did.twfe import twfe

__all__ = ["att_gt", "bacon_decomp", "event_study", "honest_did", "imputation", "stacked", "sunab", "twfe"]
