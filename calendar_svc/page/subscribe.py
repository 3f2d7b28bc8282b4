"""The links that subscribe a calendar app to a feed, or add one entry to Google Calendar.

Each app has its own address format, and these are the ones their web apps
accept (as of 2025):

* Apple Calendar, iOS, Thunderbird and most others: the ``webcal://`` form of
  the feed URL;
* Google Calendar: ``https://calendar.google.com/calendar/render?cid=webcal://…``
  (Google fetches only ``https`` feeds this way: ``google_needs_https`` says
  when the public URL is ``http``);
* Outlook.com and Microsoft 365: ``…/calendar/0/addfromweb?url=<feed URL>&name=<name>``
  on ``outlook.live.com`` and ``outlook.office.com``;
* one entry to Google: ``…/calendar/render?action=TEMPLATE&text=…&dates=…``.

Pure: strings in, strings out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote, urlencode, urlsplit

from calendar_svc.filters import EntryFilter
from calendar_svc.links import feed_urls
from calendar_svc.models import Entry

GOOGLE_RENDER = "https://calendar.google.com/calendar/render"
OUTLOOK_COM = "https://outlook.live.com/calendar/0/addfromweb"
MICROSOFT_365 = "https://outlook.office.com/calendar/0/addfromweb"
# Google's "add event" form takes the text from the URL; long texts make URLs some
# browsers and proxies refuse.
_DETAILS_MAX = 1000


@dataclass(frozen=True)
class SubscribeLinks:
    """Every way to subscribe to one feed URL (a calendar's, possibly filtered)."""

    feed: str  # the http(s) URL, for copying and for apps that take it as is
    webcal: str
    google: str
    outlook_com: str
    microsoft_365: str
    google_needs_https: bool


def subscribe_links(
    public_url: str, token: str, slug: str, name: str, flt: EntryFilter | None = None
) -> SubscribeLinks:
    """The subscribe links of ``slug``'s feed through ``token``, with ``flt`` as the query."""
    feed, webcal = feed_urls(public_url, token, slug, flt)
    # The webcal URL goes into cid as is, but for the characters of its own query.
    google = f"{GOOGLE_RENDER}?cid={quote(webcal, safe=':/')}"
    outlook_query = urlencode({"url": feed, "name": name}, quote_via=quote)
    return SubscribeLinks(
        feed=feed,
        webcal=webcal,
        google=google,
        outlook_com=f"{OUTLOOK_COM}?{outlook_query}",
        microsoft_365=f"{MICROSOFT_365}?{outlook_query}",
        google_needs_https=urlsplit(feed).scheme != "https",
    )


def google_event_link(entry: Entry) -> str:
    """A link that opens Google Calendar's form for adding ``entry`` as a one-off event."""
    if entry.all_day:
        # Dates, the end exclusive, as Google reads them.
        after = entry.last_day + timedelta(days=1)
        dates = f"{entry.start_day:%Y%m%d}/{after:%Y%m%d}"
    else:
        dates = f"{entry.start_utc:%Y%m%dT%H%M%SZ}/{entry.end_utc:%Y%m%dT%H%M%SZ}"
    params = {"action": "TEMPLATE", "text": entry.title, "dates": dates}
    details = entry.description.strip()
    if details:
        params["details"] = details[:_DETAILS_MAX]
    if entry.location.strip():
        params["location"] = entry.location.strip()
    if not entry.all_day:
        params["ctz"] = entry.start_tz
    if entry.rrule:
        params["recur"] = f"RRULE:{entry.rrule}"
    return f"{GOOGLE_RENDER}?{urlencode(params, quote_via=quote)}"
