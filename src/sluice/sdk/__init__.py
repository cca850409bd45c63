"""The Celery SDK: `sluice.init()` captures every task and worker event in process."""

from __future__ import annotations

from .errors import SluiceConfigError
from .runtime import flush, init, stats

__all__ = ["SluiceConfigError", "flush", "init", "stats"]
