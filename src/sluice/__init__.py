"""Sluice: durable, live monitoring and control for Celery."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["SluiceConfigError", "init"]

if TYPE_CHECKING:
    from sluice.sdk import SluiceConfigError, init


def __getattr__(name: str) -> Any:
    # Lazy: `import sluice` stays cheap (no Celery, no urllib3) until init() is used.
    if name == "init":
        from sluice.sdk import init

        return init
    if name == "SluiceConfigError":
        from sluice.sdk.errors import SluiceConfigError

        return SluiceConfigError
    raise AttributeError(f"module 'sluice' has no attribute {name!r}")
