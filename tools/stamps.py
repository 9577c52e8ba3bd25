"""Parameter stamps for make: one JSON file per section of the resolved parameter set.

A build step, not part of the analysis package::

    python tools/stamps.py CONFIG FOLDER

writes ``FOLDER/<section>.json`` for every top-level section of ``config/CONFIG.yaml`` (deep-merged
over ``config/default.yaml``), and rewrites a file only when its content changes, so ``make``
re-runs exactly the steps that read a changed section (the panel reads ``seed``, ``data`` and
``world``; the productivity notebook reads ``tfp``...). The ``world`` section is resolved against
:data:`analysis.simulate.DEFAULTS`, so a misspelt world parameter fails here, first. Prints the
sections that changed; exits with status 2 and a message naming the key on a bad parameter set.
Where the many-draw loops run (``tfp.engine``, ``robustness.ri.engine``) is checked here but left
out of the stamps: the draws are the same on every engine, so moving them to a cluster re-runs nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from analysis.config import ParameterError, load_params
from analysis.engine import check_engine
from analysis.io import write_text
from analysis.simulate import world_params

#: (section, path inside it) of the engine keys: checked, not stamped (the results do not depend on them)
ENGINE_KEYS = (("tfp", ("engine",)), ("robustness", ("ri", "engine")))

__all__ = ["write_stamps", "main"]


def write_stamps(config: str, folder: str | Path, *, config_dir: Path | None = None) -> list[Path]:
    """Write one JSON file per top-level section of the resolved parameter set.

    Parameters
    ----------
    config : str
        Name of the parameter set (``config/<config>.yaml``).
    folder : str or pathlib.Path
        Folder of the stamps, e.g. ``build/<config>/params``.
    config_dir : pathlib.Path, optional
        Folder of the parameter files; defaults to :data:`analysis.config.CONFIG_DIR`.

    Returns
    -------
    list of pathlib.Path
        The stamps written (those whose section changed).
    """
    params = load_params(config, config_dir=config_dir)
    params["world"] = world_params(params)
    for section, path in ENGINE_KEYS:
        holder = params.get(section) or {}
        for k in path[:-1]:
            holder = holder.get(k) or {}
        if path[-1] in holder:
            check_engine(holder.pop(path[-1]), ".".join((section, *path)))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for key, value in params.items():
        if key == "config":
            continue
        path = folder / f"{key}.json"
        text = json.dumps(value, indent=1, sort_keys=True, default=str) + "\n"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            write_text(text, path)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python tools/stamps.py CONFIG FOLDER``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python tools/stamps.py CONFIG FOLDER", file=sys.stderr)
        return 2
    try:
        changed = write_stamps(args[0], args[1])
    except ParameterError as exc:
        print(f"error in parameter set '{args[0]}': {exc}", file=sys.stderr)
        return 2
    if changed:
        print("parameters changed: " + ", ".join(p.stem for p in changed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
