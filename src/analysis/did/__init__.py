"""Staggered difference-in-differences estimators.

``att_gt`` (Callaway and Sant'Anna 2021) with aggregations; the other estimators
(``event_study``, ``bacon_decomp``, ``honest_did``) are added by their own modules.
"""

from analysis.did.att_gt import att_gt

__all__ = ["att_gt"]
