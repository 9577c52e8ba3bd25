"""Write environment.yml (conda) with exactly the pins of requirements.lock.

Usage: python3 tools/write_environment.py requirements.lock environment.yml
conda provides Python; every package comes from PyPI through the same lock, so a conda user and
a `make env` user run the same versions. A test checks that the two files agree.
"""

import sys
from pathlib import Path

HEADER = """# conda users: `conda env create -f environment.yml && conda activate sme-clusters`
# then `pip install --no-deps -e .` and use the Makefile with VENV=$CONDA_PREFIX.
# Generated from requirements.lock by tools/write_environment.py (`make lock`); do not edit by hand.
name: sme-clusters
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - pip:
"""


def main(lock: str, target: str) -> None:
    """Write ``target`` (environment.yml) pinning exactly what ``lock`` (requirements.lock) pins."""
    pins = [ln.strip() for ln in Path(lock).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    Path(target).write_text(HEADER + "".join(f"      - {p}\n" for p in pins))


if __name__ == "__main__":
    main(*sys.argv[1:3])
