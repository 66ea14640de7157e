"""Sandbox commands: `sandbox run`, `sandbox images` (issue 3)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add these commands to the root app."""
