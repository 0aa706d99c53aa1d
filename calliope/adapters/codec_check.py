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

import contextlib
import dataclasses
import enum
import reprlib
import types
import typing
from collections.abc import Callable
from datetime import datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import cattrs
import msgpack
from cattrs.fns import identity

from calliope.adapters.codec_hooks import exact_test
from calliope.adapters.packing import is_large
from calliope.errors import EventEncodingError

__all__ = ["first_difference", "quick_check", "unencodable", "verify_round_trip"]

_INT_RANGE = (-(2**63), 2**64)  # msgpack's integers
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


def quick_check(converter: cattrs.Converter, cls: type) -> Callable[[object], bool] | None:
    """A test of a ``cls`` value, O(size of the value), that is True only if the value
    surely reads back equal (False: run the full check); None when ``cls``
    is not simple enough for one (see the module's docstring)."""
    return _quick_check(converter, cls, frozenset())


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
    cls = _optional(declared)[0]
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
        _resolve(cls)
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
        _resolve(cls)
        for field in attrs.fields(cls):
            item = getattr(value, field.name)
            try:
                converter.unstructure(item, field.type)
            except Exception as inner:
                return _locate_unstructure(
                    converter, item, field.type, f"{path}.{field.name}", inner
                )
    return path, value, declared, error


def _quick_check(
    converter: cattrs.Converter, cls: type, seen: frozenset[type]
) -> Callable[[object], bool] | None:
    if not attrs.has(cls) or cls in seen or hasattr(cls, "__attrs_post_init__"):
        return None
    if not (
        _generated(converter.get_structure_hook(cls))
        and _generated(converter.get_unstructure_hook(cls))
    ):
        return None
    _resolve(cls)
    namespace: dict[str, Any] = {"_low": _INT_RANGE[0], "_high": _INT_RANGE[1]}
    tests: list[str] = []
    for index, field in enumerate(attrs.fields(cls)):
        if not field.init or field.converter is not None or not field.name.isidentifier():
            return None
        declared, optional = _optional(field.type)
        if optional and not _plain_optional_hooks(converter, field.type):
            return None
        item = f"value.{field.name}"
        kind = f"_type{index}"
        namespace[kind] = declared
        if declared in _SCALARS and _plain_hooks(converter, declared):
            test = f"type({item}) is {kind}"
            if declared is int:
                test = f"({test} and _low <= {item} < _high)"
            if optional:
                test = f"({item} is None or {test})"
        elif (collection := _plain_collection(converter, declared, seen | {cls})) is not None:
            namespace[kind], namespace[f"_item{index}"], inner = collection
            each = _each(f"_item{index}", collection[1], "i")
            if inner is not None:
                namespace[f"_inner{index}"] = inner
                each = f"{each} and _inner{index}(i)"
            test = f"(type({item}) is {kind} and all({each} for i in {item}))"
            if optional:
                test = f"({item} is None or {test})"
        elif (mapping := _plain_mapping(converter, declared)) is not None:
            namespace[kind] = dict
            namespace[f"_key{index}"], namespace[f"_value{index}"] = mapping
            keys = _each(f"_key{index}", mapping[0], "k")
            values = _each(f"_value{index}", mapping[1], "v")
            test = (
                f"(type({item}) is dict and all({keys} for k in {item}) "
                f"and all({values} for v in {item}.values()))"
            )
            if optional:
                test = f"({item} is None or {test})"
        elif (exact := _exact_test(converter, declared)) is not None:
            namespace[f"_exact{index}"] = exact
            test = f"(type({item}) is {kind} and _exact{index}({item}))"
            if optional:
                test = f"({item} is None or {test})"
        elif isinstance(declared, type) and not optional:
            inner = _quick_check(converter, declared, seen | {cls})
            if inner is None:
                return None
            namespace[f"_inner{index}"] = inner
            test = f"(type({item}) is {kind} and _inner{index}({item}))"
        else:
            return None
        tests.append(test)
    # Generated, as cattrs' and attrs' own hooks are: a walk of plain code
    # costs a fraction of a loop over the fields. Names come from the class.
    source = f"def check(value):\n    return {' and '.join(tests) or 'True'}\n"
    exec(compile(source, f"<calliope round-trip check {cls.__qualname__}>", "exec"), namespace)
    check: Callable[[object], bool] = namespace["check"]
    return check


def _exact_test(converter: cattrs.Converter, declared: Any) -> Callable[[Any], bool] | None:
    """A test of a value of exactly type ``declared`` (a type the codec's
    hooks store, or an enum of plain values with cattrs' hooks) that is True
    only if it reads back equal; else None."""
    if isinstance(declared, type) and issubclass(declared, enum.Enum):
        plain = "_value_" not in getattr(declared, "__annotations__", {}) and all(
            type(member.value) in (str, int) for member in declared
        )
        structure = converter.get_structure_hook(declared)
        unstructure = converter.get_unstructure_hook(declared)
        default = _made_by(structure, "enum_structure_factory") and (
            unstructure is identity or _made_by(unstructure, "enum_unstructure_factory")
        )
        return _always if plain and default else None
    return exact_test(converter, declared)


def _each(name: str, kind: type, variable: str) -> str:
    """The generated test that ``variable`` is of exactly ``kind``."""
    test = f"type({variable}) is {name}"
    return f"{test} and _low <= {variable} < _high" if kind is int else test


def _plain_collection(
    converter: cattrs.Converter, declared: Any, seen: frozenset[type]
) -> tuple[type, type, Callable[[object], bool] | None] | None:
    """``(list, str, None)`` for ``list[str]`` (likewise ``tuple[T, ...]``,
    ``set[T]``, ``frozenset[T]``) of a plain scalar ``T``, or ``(list, C,
    quick test of C)`` for a class ``C`` that has one, all with cattrs' own
    hooks; else None."""
    origin, args = typing.get_origin(declared), typing.get_args(declared)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        args = args[:1]
    if origin not in _COLLECTION_HOOKS or len(args) != 1:
        return None
    item = args[0]
    unstructure = converter.get_unstructure_hook(declared)
    inner = None
    if item in _SCALARS and _plain_hooks(converter, item):
        if unstructure is not list:
            return None
    elif isinstance(item, type):
        inner = _quick_check(converter, item, seen)
        if inner is None or not _made_by(unstructure, "iterable_unstructure_factory"):
            return None
    else:
        return None
    structure = converter.get_structure_hook(declared)
    expected = _COLLECTION_HOOKS[origin]
    made = (
        _made_by(structure, expected)
        if isinstance(expected, str)
        else getattr(structure, "__func__", None) is expected
    )
    return (origin, item, inner) if made else None


def _plain_mapping(converter: cattrs.Converter, declared: Any) -> tuple[type, type] | None:
    """``(str, int)`` for ``dict[str, int]`` of plain scalars with cattrs'
    own hooks; else None."""
    if typing.get_origin(declared) is not dict:
        return None
    args = typing.get_args(declared)
    if len(args) != 2 or not all(arg in _SCALARS and _plain_hooks(converter, arg) for arg in args):
        return None
    structure = converter.get_structure_hook(declared)
    if converter.get_unstructure_hook(declared) is not dict:
        return None
    if getattr(structure, "__name__", "") != "structure_mapping":
        return None
    return args[0], args[1]


_COLLECTION_HOOKS: dict[Any, Any] = {
    list: "list_structure_factory",
    tuple: cattrs.BaseConverter._structure_tuple,
    set: cattrs.BaseConverter._structure_set,
    frozenset: cattrs.BaseConverter._structure_frozenset,
}


def _always(value: object) -> bool:
    return True


def _made_by(hook: Any, factory: str) -> bool:
    """Whether ``hook`` is one cattrs' ``factory`` made."""
    return bool(getattr(hook, "__qualname__", "").startswith(f"{factory}.<locals>."))


def _generated(hook: Any) -> bool:
    """Whether ``hook`` is one cattrs generated for an attrs class, without
    overrides (renamed or omitted fields)."""
    code = getattr(hook, "__code__", None)
    return (
        code is not None
        and code.co_filename.startswith("<cattrs generated")
        and not getattr(hook, "overrides", True)
    )


def _plain_hooks(converter: cattrs.Converter, kind: type) -> bool:
    """Whether ``kind`` is passed through as is and structured by calling it."""
    return bool(
        converter.get_unstructure_hook(kind) is identity
        and converter.get_structure_hook(kind) is cattrs.BaseConverter._structure_call
    )


def _plain_optional_hooks(converter: cattrs.Converter, declared: Any) -> bool:
    structure = converter.get_structure_hook(declared)
    unstructure = converter.get_unstructure_hook(declared)
    return bool(
        getattr(structure, "__func__", None) is cattrs.BaseConverter._structure_optional
        and getattr(unstructure, "__qualname__", "").endswith(".unstructure_optional")
    )


def _optional(declared: Any) -> tuple[Any, bool]:
    """``(T, True)`` for ``T | None``, else ``(declared, False)``."""
    if typing.get_origin(declared) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(declared) if arg is not type(None)]
        if len(members) == 1 and len(typing.get_args(declared)) == 2:
            return members[0], True
    return declared, False


def _resolve(cls: type) -> None:
    """Resolve string annotations of ``cls`` (cattrs has, to build its hooks)."""
    with contextlib.suppress(Exception):  # cattrs would have failed first
        attrs.resolve_types(cls)


def _declares(declared: Any, cls: type) -> bool:
    return declared is cls or cls in typing.get_args(declared)


def _item_type(declared: Any, index: int) -> Any:
    args = typing.get_args(_optional(declared)[0])
    if len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    if typing.get_origin(_optional(declared)[0]) is tuple:
        return args[index] if index < len(args) else None
    return args[0] if len(args) == 1 else None


def _key_value_types(declared: Any) -> tuple[Any, Any]:
    args = typing.get_args(_optional(declared)[0])
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
