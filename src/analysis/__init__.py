"""Effects of SME characteristic industrial cluster certification: the shared analysis modules.

Submodules: ``config`` (paths, parameter sets), ``io`` (atomic writes), ``simulate`` (the synthetic
world), ``schema`` (the panel's data contract), ``panel`` (treatment timing, sample rules),
``tfp`` (production functions), ``did`` (staggered difference-in-differences), ``inference``,
``results`` (the one tidy result shape), ``plots``, ``report`` (provenance, HTML site).
"""

__version__ = "0.1.0"
