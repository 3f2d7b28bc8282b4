"""The addresses calendar-svc gives out: a calendar's feed URL, its ``webcal://`` form, and
the subscribers' page (``/c/<token>/<slug>``).

Built from ``[feed] public_url`` in one place, so that what ``calendar-svc
feed-url`` prints and what a reminder carries (``$feed_url``, the ``feed_url``
of webhook and MQTT payloads, ntfy's Click) are the same address. The URL
holds the calendar's own feed token: whoever has it can read the feed, which
is why ``rotate-token`` exists. Pure: no database.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import urlencode, urlsplit, urlunsplit

from calendar_svc.errors import InputError
from calendar_svc.filters import EntryFilter


class FeedOwner(Protocol):
    """What a feed URL needs of a calendar (``models.Calendar`` has it)."""

    @property
    def slug(self) -> str: ...

    @property
    def feed_token(self) -> str: ...


def check_public_url(public_url: str) -> None:
    """Refuse a base URL no subscriber can reach: port 0 means "any free port" when binding.

    An explicit ``[feed] public_url`` is checked when the config loads; this catches
    the one derived from ``[feed] port = 0``.
    """
    if urlsplit(public_url).port == 0:
        raise InputError(
            f"the feed's public URL would be {public_url!r}: [feed] port is 0 (any free "
            "port) and [feed] public_url is not set; set public_url to the address "
            'subscribers reach, e.g. public_url = "https://calendar.example.org"'
        )


def feed_urls(
    public_url: str, token: str, slug: str, flt: EntryFilter | None = None
) -> tuple[str, str]:
    """The feed's http(s) URL and its ``webcal://`` form (which calendar apps open to subscribe).

    ``flt`` becomes the query (``?city=Quito``), the same filters the feed reads.
    Raises InputError when ``public_url`` has port 0.
    """
    check_public_url(public_url)
    query = filter_query(flt)
    base = urlsplit(public_url.rstrip("/"))
    path = f"{base.path}/feeds/{token}/{slug}.ics"
    http = urlunsplit((base.scheme, base.netloc, path, query, ""))
    webcal = urlunsplit(("webcal", base.netloc, path, query, ""))
    return http, webcal


def page_url(public_url: str, token: str, slug: str, flt: EntryFilter | None = None) -> str:
    """The subscribers' page of a calendar (``…/c/<token>/<slug>``), ``flt`` as its query.

    Raises InputError when ``public_url`` has port 0.
    """
    check_public_url(public_url)
    base = urlsplit(public_url.rstrip("/"))
    path = f"{base.path}/c/{token}/{slug}"
    return urlunsplit((base.scheme, base.netloc, path, filter_query(flt), ""))


def filter_query(flt: EntryFilter | None) -> str:
    """``city=Quito&from=2025-09-03``: the query a feed or page URL gives a filter ("" for
    none); a share link's own restriction is not part of it."""
    if flt is None:
        return ""
    pairs = [
        ("city", flt.city),
        ("category", flt.category),
        ("from", flt.start.isoformat() if flt.start else None),
        ("to", flt.end.isoformat() if flt.end else None),
    ]
    return urlencode([(k, v) for k, v in pairs if v])


def reminder_feed_url(public_url: str, calendar: FeedOwner) -> str | None:
    """The feed URL a reminder of ``calendar`` carries, or None when no subscriber could
    use it (``public_url`` derived from ``[feed] port = 0``)."""
    try:
        http, _ = feed_urls(public_url, calendar.feed_token, calendar.slug)
    except InputError:
        return None
    return http
