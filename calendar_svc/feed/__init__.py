"""The ICS feed over HTTP: the Starlette app, its render cache and the uvicorn runner.

``build_app(store, config, observers)`` gives the ASGI app; ``FeedServer`` runs
it in a background thread (``start``/``stop``) or in the foreground
(``serve_forever``). Both take the process's ``Observers`` (event bus, health,
metrics), or build their own.
"""

from calendar_svc.feed.app import build_app
from calendar_svc.feed.cache import FeedCache, RenderedFeed, render_feed
from calendar_svc.feed.server import FeedServer
from calendar_svc.filters import parse_filter

__all__ = ["FeedCache", "FeedServer", "RenderedFeed", "build_app", "parse_filter", "render_feed"]
