"""The round-trip check: nothing is stored that would not read back equal.

Before an event or a snapshot state is written, :func:`verify_round_trip`
takes its plain data through what storage does to it (a msgpack pack and
unpack, with the adapters' options), structures it back with the stream's
hooks and compares the result with the value given, field by field:
same types (an ``int`` in a ``float`` field, read back as the equal
``float``, is the one exception), equal values, NaN read back as NaN,
datetimes and times with the same ``tzinfo``, UTC offset and ``fold``, decimals
with the same digits and exponent. Attrs classes and dataclasses are
compared field by field, lists and tuples item by item, dicts item by item
in order, sets element by element. Anything else is compared with ``==``.
A refusal is an :class:`~calliope.errors.EventEncodingError` naming the
field (``ItemAdded.qty``) and saying what it would read back as.

For the common event (an attrs class whose fields are ``str``, ``int``,
``float``, ``bool``, ``bytes``, ``datetime``, ``date``, ``time``, ``UUID``,
``Decimal``, enums of plain values, lists, tuples, sets or frozensets of
the first five or of such classes, dicts of the first five, those or
``None``, or such classes, all with the converter's own hooks)
:func:`quick_check` builds, once per class, a walk over the field values'
exact types that proves the same without the round trip; the full check
runs only when it cannot.

Data that is large (:func:`calliope.adapters.packing.is_large`) is
structured back without the msgpack round trip, which would copy it on the
event loop; what msgpack alone changes (a tuple where no type is declared
reads back as a list) is then not caught. Cost: O(size of the value) for
either, the quick one about one type comparison per value in it.
"""

from __future__ import annotations

import dataclasses
import reprlib
import typing
from collections.abc import Callable
from datetime import datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import cattrs
import msgpack

from calliope.adapters.codec_quick_check import optional_type, quick_check, resolve_types
from calliope.adapters.packing import is_large
from calliope.errors import EventEncodingError

__all__ = ["first_difference", "quick_check", "unencodable", "verify_round_trip"]

_SCALARS = (str, int, float, bool, bytes)
_EXACT = frozenset({str, int, bool, bytes, type(None)})

Difference = tuple[str, Any, Any, Any]
"""Where a value and what it reads back as differ: ``(path, given, read
back, declared type or None)``."""


def verify_round_trip(
    converter: cattrs.Converter,
    cls: type,
    structure: Callable[[Any, Any], Any],
    value: object,
    data: Any,
) -> None:
    """Raise :class:`EventEncodingError` naming the field unless ``data``
    (``value`` unstructured), once stored and read back with ``structure``,
    is a value equal to ``value`` (see the module's docstring).
    O(size of the value)."""
    root = cls.__qualname__
    if is_large(data):
        stored = data
    else:
        try:
            stored = _stored_form(data)
        except Exception as error:
            path, leaf = _unstorable(data, root)
            raise EventEncodingError(
                f"{path}: {_short(leaf)} is {_article(type(leaf), None)}, which msgpack "
                f"cannot store so that it reads back ({error}); give the field a value of its "
                f"declared type, or register hooks for its type on app.codec.converter"
            ) from error
    try:
        back = structure(stored, cls)
    except Exception as error:
        path, leaf, declared, cause = _locate(converter, value, stored, cls, root, error)
        raise EventEncodingError(
            f"{path}: {_short(leaf)} is {_article(type(leaf), None)}, stored as "
            f"{_article(declared, leaf)} field it would not read back ({cause!r}); "
            f"{_advice()}"
        ) from error
    difference = first_difference(value, back, root, cls)
    if difference is not None:
        path, given, read, declared = difference
        raise EventEncodingError(
            f"{path}: {_short(given)} is {_article(type(given), None)}, stored as "
            f"{_article(declared, read)} field it would not read back equal (it would read "
            f"back as {_short(read)}{_zone_note(given, read)}); {_advice()}"
        )


def unencodable(converter: cattrs.Converter, value: object, error: Exception) -> EventEncodingError:
    """The error for a ``value`` cattrs failed to unstructure with ``error``,
    naming the innermost attrs field that fails alone."""
    path, leaf, declared, cause = _locate_unstructure(
        converter, value, type(value), type(value).__qualname__, error
    )
    return EventEncodingError(
        f"{path}: {_short(leaf)} is {_article(type(leaf), None)}, stored as "
        f"{_article(declared, leaf)} field it cannot be encoded ({cause!r}); {_advice()}"
    )


def first_difference(a: Any, b: Any, path: str, declared: Any = None) -> Difference | None:
    """The first place where ``b`` (what ``a`` reads back as) is not an
    equal value of the same type, or None. O(size of ``a``); the path and
    the declared type there are worked out only for a difference."""
    found = _difference(a, b)
    if found is None:
        return None
    steps, given, read = found
    for kind, key in reversed(steps):
        if kind == "field":
            path, declared = f"{path}.{key}", _field_type(declared, key)
        elif kind == "index":
            path, declared = f"{path}[{key}]", _item_type(declared, key)
        elif kind == "key":
            path, declared = f"{path}[{_short(key)}] (the key)", _key_value_types(declared)[0]
        elif kind == "value":
            path, declared = f"{path}[{_short(key)}]", _key_value_types(declared)[1]
        else:
            path, declared = f"{path}{{{_short(key)}}}", _item_type(declared, 0)
    return path, given, read, declared


_Found = tuple[list[tuple[str, Any]], Any, Any]
"""A difference: the steps from the leaf up to the value compared (each
``(kind, key)``), and the leaf's given and read back values."""


def _difference(a: Any, b: Any) -> _Found | None:
    ta, tb = type(a), type(b)
    if ta is not tb:
        if ta is int and tb is float and a == b:
            return None
        return [], a, b
    if ta in _EXACT:
        return None if a == b else ([], a, b)
    if ta is float:
        return None if a == b or (a != a and b != b) else ([], a, b)
    if ta is list or ta is tuple:
        if len(a) != len(b):
            return [], a, b
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            if x is y and type(x) in _EXACT:
                continue
            found = _difference(x, y)
            if found is not None:
                found[0].append(("index", index))
                return found
        return None
    if ta is dict:
        if len(a) != len(b):
            return [], a, b
        for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True):
            found = _difference(ka, kb)
            if found is not None:
                found[0].append(("key", ka))
                return found
            found = _difference(va, vb)
            if found is not None:
                found[0].append(("value", ka))
                return found
        return None
    if ta is set or ta is frozenset:
        if len(a) != len(b):
            return [], a, b
        by_item = {item: item for item in b}
        for item in a:
            if item not in by_item:
                return [], a, b
            found = _difference(item, by_item[item])
            if found is not None:
                found[0].append(("element", item))
                return found
        return None
    names = _field_names(ta)
    if names is not None:
        for name in names:
            found = _difference(getattr(a, name), getattr(b, name))
            if found is not None:
                found[0].append(("field", name))
                return found
        return None
    if isinstance(a, datetime | time):
        same = (
            a == b
            and _same_zone(a.tzinfo, b.tzinfo)
            and a.utcoffset() == b.utcoffset()
            and a.fold == b.fold
        )
        return None if same else ([], a, b)
    if isinstance(a, Decimal):
        return None if a.as_tuple() == b.as_tuple() else ([], a, b)
    try:
        equal = bool(a == b)
    except Exception:
        equal = False
    return None if equal else ([], a, b)


def _field_type(declared: Any, name: str) -> Any:
    cls = optional_type(declared)[0]
    if attrs.has(cls):
        field = getattr(attrs.fields(cls), name, None)
        return None if field is None else field.type
    if dataclasses.is_dataclass(cls):
        types_ = {item.name: item.type for item in dataclasses.fields(cls)}
        return types_.get(name)
    return None


def _stored_form(data: Any) -> Any:
    """``data`` as storage gives it back (the adapters' msgpack options)."""
    packed = msgpack.packb(data, use_bin_type=True)
    return msgpack.unpackb(packed, raw=False, strict_map_key=False)


def _stores(data: Any) -> bool:
    try:
        _stored_form(data)
    except Exception:
        return False
    return True


def _unstorable(data: Any, path: str) -> tuple[str, Any]:
    """The path and value of the innermost part of ``data`` that msgpack
    cannot store and read back."""
    if type(data) is dict:
        for key, item in data.items():
            if _stores({key: item}):
                continue
            if not _stores(key) or isinstance(key, tuple):
                return f"{path}[{_short(key)}] (a key)", key
            return _unstorable(item, _join(path, key))
    elif type(data) is list or type(data) is tuple:
        for index, item in enumerate(data):
            if not _stores(item):
                return _unstorable(item, f"{path}[{index}]")
    return path, data


def _locate(
    converter: cattrs.Converter,
    value: Any,
    stored: Any,
    declared: Any,
    path: str,
    error: BaseException,
) -> tuple[str, Any, Any, BaseException]:
    """The innermost attrs field whose stored data does not structure back:
    ``(path, value, declared type, error)``."""
    cls = type(value)
    if attrs.has(cls) and isinstance(stored, dict) and _declares(declared, cls):
        resolve_types(cls)
        for field in attrs.fields(cls):
            if field.name not in stored:
                continue
            try:
                converter.structure(stored[field.name], field.type)
            except Exception as inner:
                return _locate(
                    converter,
                    getattr(value, field.name),
                    stored[field.name],
                    field.type,
                    f"{path}.{field.name}",
                    inner,
                )
    return path, value, declared, error


def _locate_unstructure(
    converter: cattrs.Converter, value: Any, declared: Any, path: str, error: BaseException
) -> tuple[str, Any, Any, BaseException]:
    cls = type(value)
    if attrs.has(cls) and _declares(declared, cls):
        resolve_types(cls)
        for field in attrs.fields(cls):
            item = getattr(value, field.name)
            try:
                converter.unstructure(item, field.type)
            except Exception as inner:
                return _locate_unstructure(
                    converter, item, field.type, f"{path}.{field.name}", inner
                )
    return path, value, declared, error


def _declares(declared: Any, cls: type) -> bool:
    return declared is cls or cls in typing.get_args(declared)


def _item_type(declared: Any, index: int) -> Any:
    args = typing.get_args(optional_type(declared)[0])
    if len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    if typing.get_origin(optional_type(declared)[0]) is tuple:
        return args[index] if index < len(args) else None
    return args[0] if len(args) == 1 else None


def _key_value_types(declared: Any) -> tuple[Any, Any]:
    args = typing.get_args(optional_type(declared)[0])
    return (args[0], args[1]) if len(args) == 2 else (None, None)


def _same_zone(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    if type(a) is not type(b):
        return False
    if type(a) is ZoneInfo:
        return bool(a.key is not None and a.key == b.key)
    return bool(a == b and a.tzname(None) == b.tzname(None))


def _zone_note(given: Any, read: Any) -> str:
    both = isinstance(given, datetime | time) and isinstance(read, datetime | time)
    if both and (
        not _same_zone(given.tzinfo, read.tzinfo) or given.utcoffset() != read.utcoffset()
    ):
        return f", with tzinfo {read.tzinfo!r} instead of {given.tzinfo!r}"
    return ""


def _article(declared: Any, read: Any) -> str:
    if declared is None:
        name = type(read).__qualname__
    elif isinstance(declared, type):
        name = declared.__qualname__
    else:
        name = str(declared).replace("typing.", "")
    return f"{'an' if name[:1] in 'aeiouAEIOU' else 'a'} {name}"


def _join(path: str, key: Any) -> str:
    if isinstance(key, str) and key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{_short(key)}]"


def _short(value: Any) -> str:
    return reprlib.repr(value)


def _advice() -> str:
    return (
        "give the field a value of its declared type, or declare the type it holds "
        "(nothing was written)"
    )


def _field_names(cls: type) -> list[str] | None:
    """The field names of an attrs class or a dataclass, else None."""
    if attrs.has(cls):
        return [field.name for field in attrs.fields(cls)]
    if dataclasses.is_dataclass(cls):
        return [field.name for field in dataclasses.fields(cls)]
    return None
