"""What every production-function fitter takes and returns, and the one check of the options.

- The option types are :class:`typing.Literal` aliases (:data:`Method`, :data:`StandardErrors`,
  :data:`RootRule`, :data:`OPLPObjective`), so a type checker and the docs list the choices, and
  :func:`check_literal` tests a value against them (the pattern of pyfixest's ``literals.py``).
- :func:`resolve_options` is the single validator of :func:`analysis.tfp.estimate_production`'s
  options (everything but the data): it raises one clear ``ValueError`` per misuse and returns
  the :class:`Options` the fitters read and the standard-error kind.
- A fitter ``fit_<family>(panel, opt, start=None, boot=False)`` returns a :class:`CoreFit`,
  including its own published metadata (``meta``), so the assembly of the result knows nothing
  about any one method.

Examples
--------
>>> opt, se = resolve_options(method="acf", free=["l"], state=["k"], proxy="m")
>>> opt.terms, se
(['l', 'k'], 'bootstrap')
>>> resolve_options(method="acf", free=["l"], state=["k"], proxy="m", root_rule="closest")
Traceback (most recent call last):
...
ValueError: root_rule must be one of ['persistence', 'criterion'], got 'closest'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

__all__ = [
    "Method",
    "StandardErrors",
    "RootRule",
    "OPLPObjective",
    "METHODS",
    "MethodTraits",
    "TRAITS",
    "MultipleRootsWarning",
    "Options",
    "CoreFit",
    "check_literal",
    "resolve_options",
]

#: production-function methods (see :data:`METHODS` for their names)
Method = Literal["ols", "fe", "op", "lp", "acf", "wrdg", "gnr"]
#: standard errors: firm-clustered analytic, firm bootstrap, or none
StandardErrors = Literal["analytic", "bootstrap", "none"]
#: how one root of the second-stage moments is chosen (:func:`analysis.tfp.roots.select_root`)
RootRule = Literal["persistence", "criterion"]
#: the second stage of Olley-Pakes / Levinsohn-Petrin: nonlinear least squares or a moment
OPLPObjective = Literal["nls", "gmm"]

METHODS: dict[str, str] = {
    "ols": "OLS",
    "fe": "Firm fixed effects",
    "op": "Olley-Pakes (1996)",
    "lp": "Levinsohn-Petrin (2003)",
    "acf": "Ackerberg-Caves-Frazer (2015)",
    "wrdg": "Wooldridge (2009) GMM",
    "gnr": "Gandhi-Navarro-Rivers (2020)",
}


@dataclass(frozen=True)
class MethodTraits:
    """What a method needs and offers.

    Attributes
    ----------
    analytic_se : bool
        Firm-clustered analytic standard errors exist (else bootstrap or none).
    proxy : bool
        The method needs a proxy variable (investment or materials).
    first_stage : bool
        The method has a first stage whose noise ``exclude_noise`` can remove.
    selection : bool
        The Olley-Pakes exit correction is available.
    """

    analytic_se: bool
    proxy: bool
    first_stage: bool
    selection: bool = False


TRAITS: dict[str, MethodTraits] = {
    "ols": MethodTraits(analytic_se=True, proxy=False, first_stage=False),
    "fe": MethodTraits(analytic_se=True, proxy=False, first_stage=False),
    "op": MethodTraits(analytic_se=False, proxy=True, first_stage=True, selection=True),
    "lp": MethodTraits(analytic_se=False, proxy=True, first_stage=True, selection=True),
    "acf": MethodTraits(analytic_se=False, proxy=True, first_stage=True),
    "wrdg": MethodTraits(analytic_se=True, proxy=True, first_stage=False),
    "gnr": MethodTraits(analytic_se=False, proxy=True, first_stage=True),
}


class MultipleRootsWarning(UserWarning):
    """The second-stage moments have several admissible roots that disagree."""


def check_literal(value: Any, literal: Any, name: str) -> None:
    """Raise a ``ValueError`` naming the choices unless ``value`` is one of ``literal``'s values.

    Parameters
    ----------
    value : object
        The argument given.
    literal : typing.Literal
        The allowed values, e.g. :data:`Method`.
    name : str
        The argument's name, quoted in the message.

    Examples
    --------
    >>> check_literal("acf", Method, "method")
    >>> check_literal("xyz", Method, "method")
    Traceback (most recent call last):
    ...
    ValueError: method must be one of ['ols', 'fe', 'op', 'lp', 'acf', 'wrdg', 'gnr'], got 'xyz'
    """
    allowed = list(get_args(literal))
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


@dataclass
class Options:
    """Settings shared by the fitters (built by :func:`resolve_options`)."""

    method: str
    free_names: list[str]
    state_names: list[str]
    proxy_name: str | None = None
    poly_degree: int = 3
    markov_degree: int = 3
    time_effects: bool = False
    group_effects: bool = False
    selection: bool = False
    root_rule: str = "persistence"
    admissible: tuple[float, float] = (0.0, 1.5)
    starts: Any = None
    search_rows: int = 200_000
    root_tol: float = 1e-6
    seed: int = 0
    wrdg_steps: int = 2
    oplp_objective: str = "nls"

    @property
    def terms(self) -> list[str]:
        """Coefficient names: free inputs, then state inputs."""
        return [*self.free_names, *self.state_names]

    @property
    def traits(self) -> MethodTraits:
        """What the method needs and offers (:data:`TRAITS`)."""
        return TRAITS[self.method]


def resolve_options(
    *,
    method: str,
    free: list[str],
    state: list[str],
    proxy: str | None = None,
    share: str | None = None,
    exit: str | bool | None = None,
    se: str | None = None,
    n_boot: int = 100,
    exclude_noise: bool = False,
    time_effects: bool = False,
    group_effects: str | None = None,
    poly_degree: int = 3,
    markov_degree: int = 3,
    root_rule: str = "persistence",
    admissible: tuple[float, float] = (0.0, 1.5),
    starts: Any = None,
    search_rows: int = 200_000,
    seed: int = 0,
    oplp_objective: str = "nls",
) -> tuple[Options, str]:
    """Check the options of :func:`analysis.tfp.estimate_production` once; build :class:`Options`.

    Parameters
    ----------
    method : Method
        The estimator.
    free, state : list of str
        Free and state input columns.
    proxy, share : str, optional
        Proxy column (needed by the proxy methods) and GNR's log intermediate share.
    exit : str or bool, optional
        Olley-Pakes selection correction (op, lp only).
    se : StandardErrors, optional
        Standard errors; ``None`` is analytic where available, else bootstrap.
    n_boot : int
        Bootstrap draws (at least 2 with ``se="bootstrap"``).
    exclude_noise : bool
        Return TFP without the first-stage noise (needs a first stage).
    time_effects : bool
        Year effects in the first stage and the law of motion.
    group_effects : str, optional
        Column of group (industry) effects.
    poly_degree, markov_degree : int
        Degrees of the first-stage polynomial and of the law of motion.
    root_rule : RootRule
        Rule that picks one root of the second stage.
    admissible : tuple of float
        Admissible box of every coefficient.
    starts : array-like or int, optional
        Starting values of the root search.
    search_rows : int
        Second-stage size above which the search runs on a firm subsample.
    seed : int
        Seed of the subsample and of random starts.
    oplp_objective : OPLPObjective
        Second stage of OP / LP.

    Returns
    -------
    (Options, str)
        The fitters' settings and the standard-error kind.

    Raises
    ------
    ValueError
        Naming the option at fault and what it allows.
    """
    check_literal(method, Method, "method")
    traits = TRAITS[method]
    if not free and method != "gnr":
        raise ValueError("give at least one free input (free=)")
    if not state:
        raise ValueError("give at least one state input (state=)")
    if traits.proxy and proxy is None:
        raise ValueError(f"method={method!r} needs a proxy variable (proxy=)")
    if method == "gnr" and share is None:
        raise ValueError("method='gnr' needs share= (log nominal share of the flexible input in output)")
    if exit not in (None, False) and not traits.selection:
        raise ValueError("exit= (selection correction) is available for method='op' or 'lp'")
    check_literal(root_rule, RootRule, "root_rule")
    check_literal(oplp_objective, OPLPObjective, "oplp_objective")
    if se is None:
        se = "analytic" if traits.analytic_se else "bootstrap"
    check_literal(se, StandardErrors, "se")
    if se == "analytic" and not traits.analytic_se:
        raise ValueError(f"no analytic standard errors for method={method!r}; use se='bootstrap'")
    if se == "bootstrap" and n_boot < 2:
        raise ValueError("se='bootstrap' needs n_boot >= 2")
    if exclude_noise and not traits.first_stage:
        raise ValueError(f"exclude_noise needs a first stage; method={method!r} has none")
    opt = Options(
        method=method, free_names=list(free), state_names=list(state), proxy_name=proxy, poly_degree=int(poly_degree),
        markov_degree=int(markov_degree), time_effects=bool(time_effects), group_effects=group_effects is not None,
        selection=exit not in (None, False), root_rule=root_rule, admissible=tuple(admissible), starts=starts,
        search_rows=int(search_rows), seed=int(seed), oplp_objective=oplp_objective,
    )
    return opt, se


@dataclass
class CoreFit:
    """What one estimation returns (before inference and tidying).

    Attributes
    ----------
    coef : numpy.ndarray
        Coefficients (GNR: mean elasticities), ordered as ``terms``.
    terms : list of str
        Coefficient names.
    tfp : numpy.ndarray
        Log TFP of every row of the panel.
    n_obs : int
        Observations used.
    tfp_clean : numpy.ndarray, optional
        Log TFP without the first-stage noise (``omega``).
    elasticities : numpy.ndarray, optional
        Output elasticities per row (GNR).
    vcov : numpy.ndarray, optional
        Analytic covariance of ``coef``.
    info : dict
        Internal diagnostics: ``roots`` (table), ``notes`` (warnings to raise), ``boot_start``.
    meta : dict
        Published metadata of the fit (e.g. ``n_second_stage``, Hansen's J); copied into the
        result's ``meta`` when the model is estimated on one sample (no ``by=``).
    """

    coef: np.ndarray
    terms: list[str]
    tfp: np.ndarray
    n_obs: int
    tfp_clean: np.ndarray | None = None
    elasticities: np.ndarray | None = None
    vcov: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
