"""feedhub's web layer and composition root: the Flask app factory and the CLI."""
from .app import create_app

__all__ = ["create_app"]
