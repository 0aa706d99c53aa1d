"""The codec: events and states to plain data and back, with cattrs.

One converter is built per app (never cattrs' global one). A stream declares
its event type as a class or a ``Union`` of classes; only those classes can
be decoded, found by their stored name (see :mod:`calliope.core.event_types`),
so nothing is ever imported because data names it. Data written under an
older schema version is lifted by the type's upcasters before structuring.
The plain data is then laid out by the adapter (msgpack in files).

Nothing undecodable is written: :meth:`DeclaredTypeCodec.encode` refuses a
value whose stored form would not read back as an equal value of its class
(:mod:`calliope.adapters.codec_check`), and the converter keeps datetimes
(naive, fixed-offset and zoned), dates, times, UUIDs and decimals exactly
(:mod:`calliope.adapters.codec_hooks` lists their stored forms).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import cattrs
from cattrs.preconf.msgpack import make_converter

from calliope.adapters.codec_check import quick_check, unencodable, verify_round_trip
from calliope.adapters.codec_hooks import configure_hooks
from calliope.adapters.crdt_codec import CRDTCodec
from calliope.adapters.crdt_ops_codec import CRDTOpCodec
from calliope.core.event_types import EventTypeInfo, type_info
from calliope.errors import (
    EventDecodingError,
    EventEncodingError,
    InvalidArgumentError,
    UnknownEventTypeError,
)
from calliope.shell.ports import NewEvent

__all__ = ["Codec", "DeclaredTypeCodec", "member_classes"]

E = TypeVar("E")


def member_classes(declared: Any) -> list[type]:
    """The classes a declared type stands for: itself, or a Union's members."""
    origin = typing.get_origin(declared)
    if origin is typing.Union or origin is types.UnionType:
        members = [arg for arg in typing.get_args(declared) if arg is not type(None)]
    else:
        members = [declared]
    for member in members:
        if not isinstance(member, type):
            raise InvalidArgumentError(
                f"a stream's event type must be a class or a Union of classes, got {member!r}; "
                f"wrap other values in an attrs class"
            )
    return members


class _Member:
    __slots__ = ("cls", "info", "quick", "structure", "unstructure")

    def __init__(self, converter: cattrs.Converter, cls: type) -> None:
        self.cls = cls
        self.info: EventTypeInfo = type_info(cls)
        try:
            self.unstructure: Callable[[Any], Any] = converter.get_unstructure_hook(cls)
            self.structure: Callable[[Any, Any], Any] = converter.get_structure_hook(cls)
        except Exception as error:
            raise InvalidArgumentError(
                f"{cls.__qualname__} cannot be stored: cattrs has no way to convert it "
                f"({error}); give its fields types cattrs supports, or register hooks on "
                f"app.codec.converter before opening the stream"
            ) from error
        self.quick = quick_check(converter, cls)


class DeclaredTypeCodec(Generic[E]):
    """Encodes and decodes the members of one declared type.

    ``verify`` (True but in benchmarks) runs the round-trip check on every
    encoded value.
    """

    def __init__(self, converter: cattrs.Converter, declared: Any, *, verify: bool = True) -> None:
        self._converter = converter
        self._verify = verify
        self._declared = declared
        self._by_class: dict[type, _Member] = {}
        self._by_name: dict[str, _Member] = {}
        self._decoders: dict[tuple[str, int], Callable[[Any], E]] = {}
        self._last_name, self._last_schema = "", -1
        self._last_structure: Callable[[Any, Any], E] = _unset
        self._last_target: Any = None
        for cls in member_classes(declared):
            member = _Member(converter, cls)
            clash = self._by_name.get(member.info.name)
            if clash is not None and clash.cls is not cls:
                raise InvalidArgumentError(
                    f"{clash.cls.__qualname__} and {cls.__qualname__} are both stored as "
                    f"{member.info.name!r}; give one a different @calliope.event_type name"
                )
            self._by_class[cls] = member
            self._by_name[member.info.name] = member

    @property
    def type_names(self) -> frozenset[str]:
        """The stored type names this codec decodes (O(members))."""
        return frozenset(self._by_name)

    def _member_for(self, value: object) -> _Member:
        """The member of exactly ``value``'s class (a subclass of a member
        would be stored as, and read back as, that member)."""
        member = self._by_class.get(type(value))
        if member is None:
            for cls in self._by_class:
                if isinstance(value, cls):
                    raise EventEncodingError(
                        f"{type(value).__qualname__} is a subclass of {cls.__qualname__}: "
                        f"stored as {cls.__qualname__} it would read back as one, without "
                        f"what the subclass adds; add {type(value).__qualname__} (with its "
                        f"own @calliope.event_type name) to the Union the stream was opened with"
                    )
            raise EventEncodingError(
                f"{type(value).__qualname__} is not part of the declared type "
                f"{_describe(self._declared)}; add it to the Union the stream was opened with"
            )
        return member

    def encode(self, value: E) -> NewEvent:
        """``value`` as its stored name, schema version and plain data.

        Raises :class:`EventEncodingError` (naming the field) if that data
        would not read back as a value equal to ``value``: O(fields) for a
        flat attrs class of plain fields, O(size of the value) otherwise.
        """
        member = self._member_for(value)
        try:
            data = member.unstructure(value)
        except Exception as error:
            raise unencodable(self._converter, value, error) from error
        if self._verify:
            quick = member.quick
            if quick is None or not quick(value):
                verify_round_trip(self._converter, member.cls, member.structure, value, data)
        return NewEvent(member.info.name, member.info.version, data)

    def decode(self, type_name: str, schema_version: int, data: Any) -> E:
        """The value stored as ``data`` under ``type_name`` at ``schema_version``.

        Hot path of every replay: the type last decoded is remembered, and
        data at the current schema goes straight to cattrs' hook. Only when
        that fails is it decoded again the careful way, for an error that
        says what to do. Whatever the arguments, only a value of the declared
        type or EventDecodingError (UnknownEventTypeError for a name not
        declared) comes out: ``type_name`` must be a str and
        ``schema_version`` an int (never a bool) from 1 to the type's version.
        """
        if (
            type_name != self._last_name
            or schema_version != self._last_schema
            or type(schema_version) is not int
        ):
            self._remember(type_name, schema_version)
        try:
            return self._last_structure(data, self._last_target)
        except Exception:
            return self._decoder(type_name, schema_version)(data)

    def _remember(self, type_name: str, schema_version: int) -> None:
        decode = self._decoder(type_name, schema_version)  # raises for unknown types
        member = self._by_name[type_name]
        if schema_version == member.info.version:
            self._last_structure, self._last_target = member.structure, member.cls
        else:
            self._last_structure, self._last_target = (lambda data, _: decode(data)), None
        self._last_name, self._last_schema = type_name, schema_version

    def _decoder(self, type_name: str, schema_version: int) -> Callable[[Any], E]:
        """A function decoding the plain data of ``type_name`` at
        ``schema_version``, with clear errors (cached; raises at once for
        unknown types)."""
        if type(type_name) is not str or type(schema_version) is not int or schema_version < 1:
            raise EventDecodingError(
                f"stored type name {type_name!r} at schema version {schema_version!r} is not a "
                f"type name (a str) at a schema version (an int of at least 1): the stored data "
                f"is damaged or was not written by Calliope; restore it from a backup or a replica"
            )
        cached = self._decoders.get((type_name, schema_version))
        if cached is not None:
            return cached
        member = self._by_name.get(type_name)
        if member is None:
            raise UnknownEventTypeError(
                f"stored type {type_name!r} is not one of {sorted(self._by_name)}, the types of "
                f"{_describe(self._declared)}; open the stream with a Union that includes the "
                f"class stored as {type_name!r} (named with @calliope.event_type)"
            )
        info = member.info
        if schema_version > info.version:
            raise EventDecodingError(
                f"stored {type_name!r} is at schema version {schema_version}, newer than "
                f"this code's version {info.version}; upgrade the application"
            )
        structure, cls = member.structure, member.cls

        def decode(data: Any) -> E:
            if schema_version != info.version:
                try:
                    data = info.upcast(data, schema_version)
                except Exception as error:
                    raise EventDecodingError(
                        f"upcasting stored {type_name!r} from schema version {schema_version} "
                        f"to {info.version} failed: {error!r}"
                    ) from error
            try:
                value: E = structure(data, cls)
            except Exception as error:
                raise EventDecodingError(
                    f"stored {type_name!r} (schema version {schema_version}) does not fit "
                    f"{cls.__qualname__}: {error!r}; if its shape changed, bump its "
                    f"@calliope.event_type version and add an upcaster"
                ) from error
            return value

        self._decoders[(type_name, schema_version)] = decode
        return decode


def _unset(data: Any, target: Any) -> Any:  # pragma: no cover - replaced before use
    raise AssertionError("no type remembered yet")


def _describe(declared: Any) -> str:
    return getattr(declared, "__qualname__", None) or repr(declared)


class Codec:
    """One cattrs converter and the per-type codecs built from it (cached)."""

    def __init__(self) -> None:
        # Without detailed validation structuring is about a third faster;
        # failures are still reported, wrapped in EventDecodingError.
        self._converter = make_converter(detailed_validation=False)
        configure_hooks(self._converter)
        self._codecs: dict[Any, DeclaredTypeCodec[Any]] = {}
        self._crdt_codec: CRDTCodec | None = None
        self._crdt_codecs: dict[type, CRDTOpCodec] = {}
        # Only benchmarks turn it off (before opening streams), to measure it.
        self._verify_round_trip = True

    @property
    def converter(self) -> cattrs.Converter:
        """The converter, for registering hooks of types cattrs cannot handle."""
        return self._converter

    def for_type(self, declared: Any) -> DeclaredTypeCodec[Any]:
        codec = self._codecs.get(declared)
        if codec is None:
            codec = DeclaredTypeCodec(self._converter, declared, verify=self._verify_round_trip)
            self._codecs[declared] = codec
        return codec

    def for_crdt(self, crdt_type: type) -> CRDTOpCodec:
        """The codec of ``crdt_type``'s operations and states (the type is
        known by name from then on, also nested in an ORMap)."""
        codec = self._crdt_codecs.get(crdt_type)
        if codec is None:
            if self._crdt_codec is None:
                self._crdt_codec = CRDTCodec()
            self._crdt_codec.register(crdt_type)
            codec = CRDTOpCodec(self._crdt_codec, crdt_type)
            self._crdt_codecs[crdt_type] = codec
        return codec
