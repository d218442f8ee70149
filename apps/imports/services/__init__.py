"""Writes for imports and exports.

* ``imports``: accept an upload (checks before the 202), then on a worker the two streaming
  passes (validate and count; create contacts chunk by chunk, resumably), and the
  ``import.completed`` that replaces its bulk's ``bulk.completed``.
* ``exports``: accept an export, write its CSV through the default storage on a worker.
* ``maintenance``: the sweep that re-publishes lost or abandoned jobs; expired exports purged.
"""

from .exports import export_create, export_write
from .imports import import_bulk_completed, import_create, import_process
from .leases import LeaseLost
from .maintenance import exports_purge, jobs_sweep

__all__ = [
    "LeaseLost",
    "export_create",
    "export_write",
    "exports_purge",
    "import_bulk_completed",
    "import_create",
    "import_process",
    "jobs_sweep",
]
