"""`dense-descriptor demo`: the main job (run.py) and its scoring and pictures (report.py)."""

from .run import register

__all__ = ["register"]
