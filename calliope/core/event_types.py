"""Stable names and schema versions for stored types.

Stored events and snapshots carry a *type name* and a *schema version*, never
a Python import path that data could use to load code. By default a class is
named ``module.QualName`` (which changes if the class moves); decorate it with
:func:`event_type` to give it a name that survives moving and renaming, and to
declare upcasters that lift data written by older schema versions.

The decorator only attaches a description to the class itself; nothing is
registered anywhere. A stream knows the types it may decode because the
application passes them (a class or a ``Union`` of classes) when it opens the
stream.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs

from calliope.errors import InvalidArgumentError

__all__ = ["EventTypeInfo", "Upcaster", "event_type", "type_info"]

T = TypeVar("T", bound=type)

Upcaster = Callable[[Any], Any]
"""Takes the plain data of schema version ``v`` and returns that of ``v + 1``."""

_ATTRIBUTE = "__calliope_event_type__"


@attrs.frozen(kw_only=True)
class EventTypeInfo:
    """How a class is named in storage, its current schema version, and how to
    lift older data: ``upcasters[v]`` turns version ``v`` data into ``v + 1``."""

    name: str
    version: int = 1
    upcasters: Mapping[int, Upcaster] = attrs.field(factory=dict)

    def upcast(self, data: Any, from_version: int) -> Any:
        """Lift plain ``data`` of ``from_version`` to the current version."""
        for version in range(from_version, self.version):
            data = self.upcasters[version](data)
        return data


def event_type(
    name: str, *, version: int = 1, upcasters: Mapping[int, Upcaster] | None = None
) -> Callable[[T], T]:
    """Class decorator: store this class under ``name`` at schema ``version``.

    ``upcasters`` maps every older version ``v`` (1 .. version-1) to a function
    that turns the plain data (as cattrs unstructured it, e.g. a dict) of
    version ``v`` into that of ``v + 1``; data is lifted step by step on read.

    >>> @event_type("cart.item-added", version=2, upcasters={1: lambda d: {**d, "qty": 1}})
    ... @attrs.frozen
    ... class ItemAdded:
    ...     sku: str
    ...     qty: int
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgumentError(f"event_type needs a non-empty name, got {name!r}")
    if not isinstance(version, int) or version < 1:
        raise InvalidArgumentError(f"event_type version must be an int >= 1, got {version!r}")
    steps = dict(upcasters or {})
    missing = [v for v in range(1, version) if v not in steps]
    if missing:
        raise InvalidArgumentError(
            f"event_type {name!r} is at version {version} but has no upcaster from "
            f"version(s) {missing}; give one per older version (v -> v+1), "
            f"e.g. upcasters={{{missing[0]}: lambda data: data}}"
        )
    extra = [v for v in steps if not (isinstance(v, int) and 1 <= v < version)]
    if extra:
        raise InvalidArgumentError(
            f"event_type {name!r} at version {version} has upcasters for {extra}, "
            f"which are not older versions (1..{version - 1})"
        )
    info = EventTypeInfo(name=name, version=version, upcasters=steps)

    def decorate(cls: T) -> T:
        setattr(cls, _ATTRIBUTE, info)
        return cls

    return decorate


def type_info(cls: type) -> EventTypeInfo:
    """The storage name and schema of ``cls``: its own :func:`event_type`
    description (never a base class's), else ``module.QualName`` at version 1.

    An undecorated class of a script (module ``__main__``) is refused with
    :class:`InvalidArgumentError`: it would be stored as ``__main__.Name``,
    which no longer names it once the class is imported from a module.
    """
    info = cls.__dict__.get(_ATTRIBUTE)
    if isinstance(info, EventTypeInfo):
        return info
    if cls.__module__ == "__main__":
        raise InvalidArgumentError(
            f"{cls.__qualname__} is defined in the script being run (module __main__) and has "
            f"no stored name: it would be stored as '__main__.{cls.__qualname__}', which cannot "
            f"be read once the class is imported from a module; decorate it with "
            f'@calliope.event_type("a-stable-name")'
        )
    return EventTypeInfo(name=f"{cls.__module__}.{cls.__qualname__}")
