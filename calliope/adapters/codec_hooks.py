"""The stored forms of the standard types cattrs does not keep exactly.

:func:`configure_hooks` registers them on one converter (the app's, never
cattrs' global one). Every stored form is plain msgpack data (a string);
nothing is imported or unpickled because data names it.

=====================  ===================================================
type                   stored form
=====================  ===================================================
``datetime`` naive     ISO 8601 without offset: ``"2024-03-31T02:30:00.5"``
``datetime`` fixed     ISO 8601 with offset (``timezone.utc`` and
offset                 ``timezone(timedelta(...))``): ``"...T02:30:00+02:00"``
``datetime`` zoned     ISO 8601 with offset, then the ``ZoneInfo`` key in
                       brackets (RFC 9557): ``"...T03:30:00+02:00[Europe/Paris]"``;
                       the offset must be the zone's then
``date``               ISO 8601: ``"2024-03-31"``
``time``               ISO 8601, naive or with a fixed offset: ``"02:30:00.5"``
(``fold=1``)           a datetime or time with ``fold=1`` (the second of two
                       equal wall times) ends with ``[fold=1]``
``UUID``               the canonical 36-character form
``Decimal``            ``str(value)`` (keeps the exponent: ``"1.10"``, ``"NaN"``)
=====================  ===================================================

cattrs' own forms are kept for the rest: ``Enum`` members as their value,
``set``/``frozenset``/``tuple``/``list`` as msgpack arrays, ``bytes`` as
msgpack bin, attrs classes as maps of their fields.

Data written before these hooks (cattrs' msgpack forms: a ``datetime`` or a
``date`` as a POSIX timestamp number) still reads, as before (aware UTC).
A zone key is looked up in the time zone database only (``zoneinfo``
rejects keys that are not zone names). Any other ``tzinfo`` (a named
``timezone``, pytz, dateutil) is stored by its offset only, so the codec's
round-trip check refuses it rather than change it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import cattrs

__all__ = ["configure_hooks", "exact_test"]


def configure_hooks(converter: cattrs.Converter) -> None:
    """Register the stored forms above on ``converter``."""
    for cls, (unstructure, structure, _) in _HOOKS.items():
        converter.register_unstructure_hook(cls, unstructure)
        converter.register_structure_hook(cls, structure)


def exact_test(converter: cattrs.Converter, cls: Any) -> Callable[[Any], bool] | None:
    """For a type stored by the hooks above (still registered on
    ``converter``), a test, O(1), that is True only if a value (of exactly
    that type: check it first) reads back equal; else None."""
    hooks = _HOOKS.get(cls)
    if hooks is None:
        return None
    unstructure, structure, test = hooks
    mine = (
        converter.get_unstructure_hook(cls) is unstructure
        and converter.get_structure_hook(cls) is structure
    )
    return test if mine else None


def unstructure_datetime(value: datetime | time) -> str:
    """ISO 8601, then ``[zone key]`` for a ``ZoneInfo`` and ``[fold=1]`` for
    the second of two equal wall times."""
    text = value.isoformat()
    zone = value.tzinfo
    if type(zone) is ZoneInfo and zone.key is not None:
        text = f"{text}[{zone.key}]"
    return f"{text}[fold=1]" if value.fold else text


def structure_datetime(data: Any, _: Any = datetime) -> datetime:
    """The inverse of :func:`unstructure_datetime` for datetimes."""
    text, key, fold = _suffixes(data, datetime)
    stamped = datetime.fromisoformat(text)
    if key is None:
        return stamped.replace(fold=fold)
    offset = stamped.utcoffset()
    local = stamped.replace(tzinfo=ZoneInfo(key), fold=fold)
    if offset is None or local.utcoffset() != offset:
        raise ValueError(f"stored datetime {data!r}: {key} is not at that offset then")
    return local


def structure_time(data: Any, _: Any = time) -> time:
    """The inverse of :func:`unstructure_datetime` for times."""
    text, key, fold = _suffixes(data, time)
    if key is not None:
        raise ValueError(f"stored time {data!r} names a zone; times have fixed offsets")
    return time.fromisoformat(text).replace(fold=fold)


def _suffixes(data: Any, cls: type) -> tuple[str, str | None, int]:
    """``data`` without its bracketed suffixes, the zone key and the fold."""
    if not isinstance(data, str):
        raise TypeError(f"a stored {cls.__name__} is a string, got {type(data).__name__}")
    text, key, fold = data, None, 0
    if text.endswith("[fold=1]"):
        text, fold = text[: -len("[fold=1]")], 1
    if text.endswith("]"):
        text, _, key = text[:-1].partition("[")
    return text, key, fold


def structure_uuid(data: Any, _: Any = UUID) -> UUID:
    if not isinstance(data, str):
        raise TypeError(f"a stored UUID is a string, got {type(data).__name__}")
    return UUID(data)


def structure_decimal(data: Any, _: Any = Decimal) -> Decimal:
    if not isinstance(data, str):
        raise TypeError(f"a stored Decimal is a string, got {type(data).__name__}")
    return Decimal(data)


def unstructure_date(value: date) -> str:
    return value.isoformat()


def structure_date(data: Any, _: Any = date) -> date:
    if isinstance(data, int | float) and not isinstance(data, bool):
        return datetime.fromtimestamp(data, UTC).date()  # (cattrs' msgpack form)
    if not isinstance(data, str):
        raise TypeError(f"a stored date is a string, got {type(data).__name__}")
    return date.fromisoformat(data)


def structure_any_datetime(data: Any, _: Any = datetime) -> datetime:
    """:func:`structure_datetime`, or for a number (cattrs' msgpack form,
    written before these hooks) the aware UTC datetime of that timestamp."""
    if isinstance(data, int | float) and not isinstance(data, bool):
        return datetime.fromtimestamp(data, UTC)
    return structure_datetime(data)


def _plain_zone(zone: Any) -> bool:
    """Whether a value with this ``tzinfo`` surely reads back with an equal one."""
    if zone is None:
        return True
    kind = type(zone)
    if kind is ZoneInfo:
        return zone.key is not None
    if kind is timezone:  # not a named one: its name would be lost
        return bool(zone.tzname(None) == timezone(zone.utcoffset(None)).tzname(None))
    return False


def _datetime_reads_back(value: datetime) -> bool:
    return _plain_zone(value.tzinfo)


def _time_reads_back(value: time) -> bool:
    return value.tzinfo is None or (type(value.tzinfo) is timezone and _plain_zone(value.tzinfo))


def _always(value: object) -> bool:
    return True


_HOOKS: dict[type, tuple[Callable[[Any], Any], Callable[[Any, Any], Any], Callable[[Any], bool]]]
_HOOKS = {
    datetime: (unstructure_datetime, structure_any_datetime, _datetime_reads_back),
    date: (unstructure_date, structure_date, _always),
    time: (unstructure_datetime, structure_time, _time_reads_back),
    UUID: (str, structure_uuid, _always),
    Decimal: (str, structure_decimal, _always),
}
"""Per type: its unstructure and structure hooks, and a test of a value of
exactly that type that is True only if the value reads back equal."""
