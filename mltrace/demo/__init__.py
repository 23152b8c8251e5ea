"""``mltrace demo``: a model server with planted slowness and drift, traffic sent in-process, and the
investigation run on what was recorded. ``create_demo_app`` is the server on its own."""

from __future__ import annotations

from ._app import create_demo_app

__all__ = ["create_demo_app"]
