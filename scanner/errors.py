"""The error record every stage emits instead of stopping the scan."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorRecord:
    """Something in the target could not be read or understood. ``stage`` names the
    pipeline stage (``target``, ``inventory``, ``linkage``...), ``path`` is a guest path
    (or the target itself), ``message`` one line a person can act on."""

    path: str
    stage: str
    message: str
