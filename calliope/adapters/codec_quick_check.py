"""The quick round-trip check: proving, from a class's declared field types
and its values' exact types, that a value reads back equal, without the
msgpack round trip (see codec_check.py, which falls back to the full check
when this cannot decide).

For an attrs class whose fields are ``str``, ``int``, ``float``, ``bool``,
``bytes``, ``datetime``, ``date``, ``time``, ``UUID``, ``Decimal``, enums of
plain values, lists, tuples, sets or frozensets of the first five or of such
classes, dicts of the first five, those or ``None``, or such classes, all
with the converter's own hooks, :func:`quick_check` builds once per class a
function (generated, as cattrs and attrs generate theirs, from field names
only, never from data) that checks each value's exact type. O(size of the
value), about one type comparison per value in it.
"""

from __future__ import annotations

import contextlib
import enum
import types
import typing
from collections.abc import Callable
from typing import Any

import attrs
import cattrs
from cattrs.fns import identity

from calliope.adapters.codec_hooks import exact_test

__all__ = ["INT_RANGE", "optional_type", "quick_check", "resolve_types"]

INT_RANGE = (-(2**63), 2**64)  # msgpack's integers

_SCALARS = (str, int, float, bool, bytes)
_EXACT = frozenset({str, int, bool, bytes, type(None)})


def quick_check(converter: cattrs.Converter, cls: type) -> Callable[[object], bool] | None:
    """A test of a ``cls`` value, O(size of the value), that is True only if the value
    surely reads back equal (False: run the full check); None when ``cls``
    is not simple enough for one (see the module's docstring)."""
    return _quick_check(converter, cls, frozenset())


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
    resolve_types(cls)
    namespace: dict[str, Any] = {"_low": INT_RANGE[0], "_high": INT_RANGE[1]}
    tests: list[str] = []
    for index, field in enumerate(attrs.fields(cls)):
        if not field.init or field.converter is not None or not field.name.isidentifier():
            return None
        declared, optional = optional_type(field.type)
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


def optional_type(declared: Any) -> tuple[Any, bool]:
    """``(T, True)`` for ``T | None``, else ``(declared, False)``."""
    if typing.get_origin(declared) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(declared) if arg is not type(None)]
        if len(members) == 1 and len(typing.get_args(declared)) == 2:
            return members[0], True
    return declared, False


def resolve_types(cls: type) -> None:
    """Resolve string annotations of ``cls`` (cattrs has, to build its hooks)."""
    with contextlib.suppress(Exception):  # cattrs would have failed first
        attrs.resolve_types(cls)
