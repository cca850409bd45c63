"""The one exception the SDK raises (from `init()` only, on bad configuration)."""

from __future__ import annotations


class SluiceConfigError(ValueError):
    """`sluice.init()` was given (or found in the environment) an unusable setting."""
