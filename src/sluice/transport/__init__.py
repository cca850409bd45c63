"""The sender shared by SDK and agent: bounded buffer, batching, gzip, retry with backoff."""

from __future__ import annotations

from .sender import Transport

__all__ = ["Transport"]
