"""Project paths and parameter sets.

Paths are :class:`pathlib.Path` constants resolved once at import. The project root is, in
order: the environment variable ``ANALYSIS_ROOT`` (the Makefile exports it), the first folder
above the current working directory that holds both ``Makefile`` and ``src/analysis`` (so a
notebook opened in JupyterLab finds it), or the folder two levels above this file.

Parameter sets are YAML files in ``config/``. ``default.yaml`` holds every key; any other set
(``small.yaml``, a user's ``real.yaml``) lists only what it changes and is deep-merged over the
default by :func:`load_params`.

Examples
--------
>>> from analysis.config import load_params, ROOT
>>> params = load_params("small")
>>> params["config"]
'small'
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ROOT",
    "CONFIG_DIR",
    "DATA",
    "RAW",
    "EXTERNAL",
    "INTERIM",
    "PROCESSED",
    "BUILD",
    "REPORTS",
    "TABLES",
    "FIGURES",
    "ParameterError",
    "find_root",
    "load_params",
    "deep_merge",
    "processed_dir",
    "reads_tfp",
]


class ParameterError(ValueError):
    """A parameter file is missing, unreadable, or names a key that does not exist."""


def find_root(start: Path | None = None) -> Path:
    """Return the project root (see the module docstring for the search order)."""
    env = os.environ.get("ANALYSIS_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "Makefile").is_file() and (folder / "src" / "analysis").is_dir():
            return folder
    return Path(__file__).resolve().parents[2]


ROOT: Path = find_root()
CONFIG_DIR: Path = ROOT / "config"
DATA: Path = ROOT / "data"
RAW: Path = DATA / "raw"
EXTERNAL: Path = DATA / "external"
INTERIM: Path = DATA / "interim"
PROCESSED: Path = DATA / "processed"
BUILD: Path = ROOT / "build"
REPORTS: Path = ROOT / "reports"
TABLES: Path = REPORTS / "tables"
FIGURES: Path = REPORTS / "figures"


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any], *, path: str = "") -> dict:
    """Merge ``override`` into a copy of ``base``, recursing into nested mappings.

    A key of ``override`` that ``base`` lacks raises :class:`ParameterError`, so a misspelt
    parameter stops the run instead of being ignored. Keys under a mapping whose default is
    empty (``{}``) are free-form and accepted as given.

    Examples
    --------
    >>> deep_merge({"a": 1, "b": {"c": 2}}, {"b": {"c": 3}})
    {'a': 1, 'b': {'c': 3}}
    """
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in out:
            if base == {} or path.endswith("rename"):
                out[key] = copy.deepcopy(value)
                continue
            known = ", ".join(sorted(map(str, out))) or "(none)"
            raise ParameterError(f"unknown parameter '{where}'; known keys here: {known}")
        if isinstance(out[key], Mapping) and isinstance(value, Mapping):
            out[key] = deep_merge(out[key], value, path=where)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        available = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml"))) or "(none)"
        raise ParameterError(f"parameter file {path} not found; available: {available}")
    try:
        with path.open(encoding="utf-8") as fh:
            loaded = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        raise ParameterError(f"parameter file {path} is not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ParameterError(f"parameter file {path} must hold a mapping at the top level")
    return loaded


def load_params(name: str | Path = "default", *, config_dir: Path | None = None) -> dict:
    """Load a parameter set, deep-merged over ``config/default.yaml``.

    Parameters
    ----------
    name : str or pathlib.Path, default 'default'
        A set's name (``"small"`` reads ``config/small.yaml``) or a path to a YAML file.
    config_dir : pathlib.Path, optional
        Folder of the parameter files; defaults to :data:`CONFIG_DIR`.

    Returns
    -------
    dict
        The full parameter set; ``params["config"]`` is the set's name.

    Raises
    ------
    ParameterError
        If the file is missing, is not a YAML mapping, or names an unknown key.

    Examples
    --------
    >>> p = load_params("small")
    >>> p["world"]["n_firms"], p["did"]["cluster"]
    (2500, 'cell_id')
    """
    folder = Path(config_dir) if config_dir is not None else CONFIG_DIR
    path = Path(name) if str(name).endswith((".yaml", ".yml")) else folder / f"{name}.yaml"
    default = _read_yaml(folder / "default.yaml")
    if path.resolve() == (folder / "default.yaml").resolve():
        params = default
    else:
        params = deep_merge(default, _read_yaml(path))
    params["config"] = path.stem
    return params


def processed_dir(config: str) -> Path:
    """Folder of the built data of one parameter set: ``data/processed/<config>``."""
    return PROCESSED / config


def reads_tfp(columns: Iterable[str]) -> bool:
    """Whether any of ``columns`` exists only in the panel with TFP, the columns
    ``03_productivity`` adds to the built panel: ``tfp_<method>`` and ``certified``.

    A page that reads none of them reads the built panel and need not wait for TFP
    (:func:`analysis.effects.family_inputs`; ``tools/families.py`` for make).

    >>> reads_tfp(["firm_id", "log_so2"]), reads_tfp(["firm_id", "tfp_acf"])
    (False, True)
    """
    return any(c == "certified" or c.startswith("tfp_") for c in columns)
