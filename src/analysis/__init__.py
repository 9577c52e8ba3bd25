"""Effects of SME characteristic industrial cluster certification: the shared analysis modules.

Floors, bottom up (README "Modules"; a module imports only from its floor or below):
``domain`` (facts every layer shares), ``io``, ``results`` (the one tidy result shape);
``inference``, ``tfp`` (production functions), ``did`` (staggered difference-in-differences),
``schema`` (the data contract); ``config`` (paths, parameter sets), ``sources`` (the user's
files), ``simulate`` (the synthetic world); ``panel`` (the analysis panel); ``productivity``,
``effects``, ``truth``, ``describe``, ``plots``, ``tables``, ``report``.
"""

__version__ = "0.1.0"

import os as _os

if _os.environ.get("ANALYSIS_READ_LOG"):  # set by tools/run_notebook.py: log the inputs a report reads
    from analysis import config as _config
    from analysis import io as _io

    _io.record_reads(_os.environ["ANALYSIS_READ_LOG"], under=[_config.CONFIG_DIR, _config.DATA], exclude=[_config.INTERIM / "cache"])
