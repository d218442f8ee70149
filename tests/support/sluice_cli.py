"""The `sluice` command of this checkout's environment (clients/python, installed by
scripts/bootstrap)."""

from __future__ import annotations

import sys
from pathlib import Path

SLUICE = Path(sys.executable).parent / "sluice"
