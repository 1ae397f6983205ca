"""Subcommands of `telemetry` for the processors package."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds this package's subcommands (none yet)."""
