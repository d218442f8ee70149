"""Timestamps in and out of the API: one writer (``iso``) and one reader (``parse_timestamp``).

Out: ISO-8601 UTC with a ``Z`` and milliseconds, as every API response uses. In: every
timestamp the API reads (``?updated_after=``, ``?since=``, a replay's ``since``, the moment
inside a cursor) goes through ``parse_timestamp``, so that they all accept and refuse the same
things and none can reach the database in a form it rejects (a 500).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from .errors import InvalidRequest

# RFC 3339's profile of ISO 8601 (``2026-01-01T09:30:00Z``, ``…00.123456+02:00``), and nothing
# else: ``datetime.fromisoformat`` also takes week dates, basic forms without separators,
# offsets up to ±23:59:59.999999 and a date alone, which either mean something no client
# intended or overflow PostgreSQL (it refuses offsets beyond ±15:59: a 500 before this).
# Up to 9 fraction digits because Go's RFC3339Nano writes nanoseconds; beyond microseconds
# they are dropped.
_RFC3339 = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"
    r"[Tt](?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?"
    r"(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<offset_hours>\d{2}):(?P<offset_minutes>\d{2}))",
    re.ASCII,  # \d alone takes any Unicode digit: fullwidth digits would make a year
)
# Nothing in Sluice predates the Unix epoch, and a year this side of 3000 keeps any offset's
# conversion to UTC inside both Python's and PostgreSQL's range (years 1 and 9999 overflow).
MIN_YEAR = 1970
MAX_YEAR = 2999
# Longest well-formed value is 35 characters; anything much longer is not worth a regex.
MAX_LENGTH = 64
FORMAT_HINT = "Must be an RFC 3339 timestamp such as 2026-01-01T00:00:00Z."


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_timestamp(value: object, *, field: str) -> datetime:
    """``value`` as an aware UTC datetime, or a 422 naming ``field`` for anything else."""

    def refuse(message: str) -> InvalidRequest:
        return InvalidRequest(details={field: message})

    if not isinstance(value, str) or len(value) > MAX_LENGTH:
        raise refuse(FORMAT_HINT)
    match = _RFC3339.fullmatch(value)
    if match is None:
        if re.fullmatch(r"[^+]*\d \d{2}:\d{2}", value, re.ASCII):
            # "…00:00+02:00" pasted into a URL unencoded: the '+' arrives as a space.
            raise refuse(f"{FORMAT_HINT} In a query string, send '+' as %2B.")
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}([Tt ][\d:.]+)?", value, re.ASCII):
            raise refuse("Must include a time and a time zone, e.g. 2026-01-01T00:00:00Z.")
        raise refuse(FORMAT_HINT)
    parts = match.groupdict()
    year = int(parts["year"])
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise refuse(f"The year must be between {MIN_YEAR} and {MAX_YEAR}.")
    offset = timedelta(0)
    if parts["sign"]:
        hours, minutes = int(parts["offset_hours"]), int(parts["offset_minutes"])
        if hours > 15 or minutes > 59:
            raise refuse("The UTC offset must be between -15:59 and +15:59.")
        offset = timedelta(hours=hours, minutes=minutes) * (-1 if parts["sign"] == "-" else 1)
    microsecond = int((parts["fraction"] or "0").ljust(6, "0")[:6])
    try:
        moment = datetime(
            year,
            int(parts["month"]),
            int(parts["day"]),
            int(parts["hour"]),
            int(parts["minute"]),
            int(parts["second"]),
            microsecond,
            tzinfo=timezone(offset),
        )
    except ValueError:  # 2026-02-30, 25:00, a leap second :60
        raise refuse("Not a valid date and time.")
    return moment.astimezone(UTC)
