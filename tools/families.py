"""Which outcome families' pages can run without TFP, for make (a build step, not the analysis).

::

    python tools/families.py CONFIG

prints the families (``config/effects_<family>.yaml``) whose effects and robustness pages read no
column that only the panel with TFP has (``tfp_<method>``, ``certified``:
:func:`analysis.config.reads_tfp`). Their pages read the built panel and so can run beside
``03_productivity`` instead of after it. The check is conservative: a family counts as reading TFP
if any value of its file, or of the parameter set's ``did`` or ``robustness`` section (where the
pages' other columns come from: clustering, heterogeneity splits, matching covariates), names such
a column. At run time :func:`analysis.effects.family_inputs` decides from the exact columns, which
are among those values, so a family listed here never waits for a file it reads.

Prints nothing, and so lets every family wait for TFP, if the parameter set cannot be read (the
notebooks then report the error).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from analysis.config import CONFIG_DIR, load_params, reads_tfp


def _strings(value: Any) -> Iterator[str]:
    """Every string in a nested structure of mappings and lists."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def tfp_free_families(config: str, *, config_dir: Path | None = None) -> list[str]:
    """The families whose pages read no TFP column, on parameter set ``config``.

    >>> tfp_free_families("default")
    ['emissions', 'innovation']
    """
    params = load_params(config, config_dir=config_dir)
    shared = [*_strings(params.get("did", {})), *_strings(params.get("robustness", {}))]
    free = []
    for path in sorted((config_dir or CONFIG_DIR).glob("effects_*.yaml")):
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not reads_tfp([*shared, *_strings(spec)]):
            free.append(path.stem.removeprefix("effects_"))
    return free


def main(argv: list[str]) -> int:
    """Command line: print the families of ``argv[0]`` that need no TFP; status 2 on a bad call."""
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        print(" ".join(tfp_free_families(argv[0])))
    except Exception as err:  # noqa: BLE001 - make must go on; every family then waits for TFP
        print(f"tools/families.py: {err}; every family waits for TFP", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
