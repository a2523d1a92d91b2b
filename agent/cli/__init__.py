"""The ``medagent`` command: one entry point, a subcommand per part of the system."""

from __future__ import annotations

from .main import app

__all__ = ["app"]
