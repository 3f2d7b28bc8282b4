"""Click options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def filter_options(*, calendar: bool) -> Callable[[F], F]:
    """--city/--category/--from/--to (and --calendar): the feed URL's filters, as options."""
    options = [
        click.option("--city", metavar="NAME", help="Only entries in this city (any case)."),
        click.option("--category", metavar="NAME", help="Only entries with this category."),
        click.option(
            "--from",
            "from_",
            metavar="DATE",
            help="Only entries that end on or after this day (YYYY-MM-DD, in each entry's zone).",
        ),
        click.option(
            "--to",
            metavar="DATE",
            help="Only entries that start on or before this day (YYYY-MM-DD).",
        ),
    ]
    if calendar:
        options.insert(0, click.option("--calendar", metavar="SLUG", help="Only this calendar."))

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate
