"""FHIR dates as half-open ranges of integer microseconds since the epoch (UTC).

A FHIR date is a range at its own precision: ``2020`` is all of 2020, ``2020-03`` all of
March, ``2020-03-05T10:00:00Z`` one second. Search compares ranges (the specification's
prefix semantics), so both stored values and search values become ``[lo, hi)`` pairs. A
value without a timezone is read as UTC, the same for stored and searched values.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

# Open ends of a Period (no start / no end) and sentinels for "no bound".
MIN_US = -(2**62)
MAX_US = 2**62

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_DATE_RE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


class DateFormatError(ValueError):
    pass


def _to_us(dt: datetime) -> int:
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _add_months(year: int, month: int, n: int) -> tuple[int, int]:
    total = year * 12 + (month - 1) + n
    return total // 12, total % 12 + 1


def date_range(value: str) -> tuple[int, int]:
    """``[lo, hi)`` in microseconds for a FHIR date, dateTime or instant string.

    >>> date_range("2020")[1] - date_range("2020")[0] == 366 * 86_400 * 10**6
    True
    """
    m = _DATE_RE.match(value.strip()) if isinstance(value, str) else None
    if not m:
        raise DateFormatError(f"'{value}' is not a FHIR date (expected YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[Z|+hh:mm])")
    g = m.groupdict()
    tz = timezone.utc
    if g["tz"] and g["tz"] != "Z":
        sign = 1 if g["tz"][0] == "+" else -1
        hours, minutes = int(g["tz"][1:3]), int(g["tz"][4:6])
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        year = int(g["y"])
        if g["m"] is None:
            lo = datetime(year, 1, 1, tzinfo=tz)
            hi = datetime(year + 1, 1, 1, tzinfo=tz) if year < 9999 else None
        elif g["d"] is None:
            month = int(g["m"])
            lo = datetime(year, month, 1, tzinfo=tz)
            ny, nm = _add_months(year, month, 1)
            hi = datetime(ny, nm, 1, tzinfo=tz) if ny <= 9999 else None
        elif g["H"] is None:
            lo = datetime(year, int(g["m"]), int(g["d"]), tzinfo=tz)
            hi = lo + timedelta(days=1)
        else:
            second = int(g["S"]) if g["S"] is not None else 0
            micro = 0
            if g["f"]:
                micro = int(g["f"][:6].ljust(6, "0"))
            lo = datetime(year, int(g["m"]), int(g["d"]), int(g["H"]), int(g["M"]), second, micro, tzinfo=tz)
            if g["S"] is None:
                step = timedelta(minutes=1)
            elif g["f"]:
                step = timedelta(microseconds=10 ** max(0, 6 - len(g["f"])))
            else:
                step = timedelta(seconds=1)
            hi = lo + step
    except (ValueError, OverflowError) as exc:
        raise DateFormatError(f"'{value}' is not a valid date: {exc}") from exc
    return _to_us(lo), (_to_us(hi) if hi is not None else MAX_US)


def period_range(start: str | None, end: str | None) -> tuple[int, int]:
    """A Period: from the start of ``start`` to the end of ``end``; a missing side is open."""
    lo = date_range(start)[0] if start else MIN_US
    hi = date_range(end)[1] if end else MAX_US
    return lo, hi


def us_to_iso(us: int) -> str | None:
    if us <= MIN_US or us >= MAX_US:
        return None
    return (_EPOCH + timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")
