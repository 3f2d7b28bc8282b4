"""calendar-svc: itineraries in, subscribable ICS feeds and timezone-correct reminders out."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("calendar-svc")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
