"""Sluice: durable, live monitoring and control for Celery."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["SluiceConfigError", "flush", "init", "stats"]

if TYPE_CHECKING:
    from sluice.sdk import SluiceConfigError, flush, init, stats


def __getattr__(name: str) -> Any:
    # Lazy: `import sluice` stays cheap (no Celery, no urllib3) until init() is used.
    if name in ("init", "flush", "stats"):
        from sluice import sdk

        return getattr(sdk, name)
    if name == "SluiceConfigError":
        from sluice.sdk.errors import SluiceConfigError

        return SluiceConfigError
    raise AttributeError(f"module 'sluice' has no attribute {name!r}")
