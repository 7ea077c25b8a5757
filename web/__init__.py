"""feedhub's web layer and composition root: the Flask app factory and the CLI.

``create_app`` is imported on first use: `feedhub collect` and the other commands that
serve nothing never load Flask (start-up time is part of every command a user runs).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
