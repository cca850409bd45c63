"""The Sluice agent: collects Celery events and queue depths from the broker, read-only."""

from .run import run_agent

__all__ = ["run_agent"]
