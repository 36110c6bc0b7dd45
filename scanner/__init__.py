"""flightcheck: an offline compliance and audit scanner for Linux systems.

The pipeline, one sub-package per stage, data flowing one way:
``target -> inventory -> linkage -> licensing -> checks -> result -> reports``.
"""

__version__ = "0.1.0"
