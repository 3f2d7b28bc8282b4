"""The subscribers' page: ``/c/<token>/<slug>``, server-rendered, with subscribe links.

``view`` turns a calendar and its entries into what the page shows (pure),
``subscribe`` builds each calendar app's subscribe link, ``html`` renders the
Jinja2 template (autoescaped) and the QR code, ``assets`` serves the static
files under content-hashed names, and ``endpoint`` answers HTTP (the same
token rules as the feed, through ``feed.access``). Templates and static files
ship inside the package.
"""
