"""Effects of SME characteristic industrial cluster certification: the shared analysis modules.

Submodules: ``domain`` (facts every layer shares: key columns, pollutants, cohort rules), ``config``
(paths, parameter sets), ``io`` (atomic writes), ``simulate`` (the synthetic world), ``schema`` (the panel's data contract), ``panel`` (treatment timing, sample rules),
``tfp`` (production functions), ``did`` (staggered difference-in-differences), ``inference``,
``results`` (the one tidy result shape), ``plots``, ``report`` (provenance, HTML site).
"""

__version__ = "0.1.0"

import os as _os

if _os.environ.get("ANALYSIS_READ_LOG"):  # set by tools/run_notebook.py: log the inputs a report reads
    from analysis import config as _config
    from analysis import io as _io

    _io.record_reads(_os.environ["ANALYSIS_READ_LOG"], under=[_config.CONFIG_DIR, _config.DATA], exclude=[_config.INTERIM / "cache"])
