"""CRDT states and operations to plain data and back (cattrs).

Plain data is what msgpack or JSON can hold: dicts with str keys, lists,
str, int, float, bool and None. A :class:`CRDTCodec` owns one cattrs
converter, built once (never cattrs' global one), with the hooks the built-in
CRDTs need; :func:`configure_crdt_hooks` installs the same hooks on a
converter of your own (the journal codec reuses them this way).

* States encode as their attrs fields (persistent maps as lists of
  ``[key, value]`` pairs, sets and tuples as lists); the RGA as its element
  list; the ORMap with each nested state's type *name*.
* Operations encode as ``{"type": <op class name>, **fields}`` and decode
  against the CRDT type whose ``op_types`` lists them.
* Tagged operations encode as ``{"replica_id", "version", "op"}``.

Types are found by name only among the CRDT types the codec was given
(the built-ins always): stored data never makes anything get imported.
Element, key and register values are stored as they are, so they must be
plain scalars (str, int, float, bool, None); ``calliope.testing.check_crdt``
tells you when something does not round-trip.
"""

from __future__ import annotations

import datetime
import typing
from collections.abc import Callable, Iterable, Sequence, Set
from typing import Any, TypeVar

import cattrs
import immutables
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from calliope.core.crdt import BUILTIN_CRDTS, RGA, ElementId, LWWRegister, LWWSet, ORMap, Update
from calliope.core.crdt.ormap import Entry
from calliope.core.crdt.protocol import Tagged, crdt_name
from calliope.core.version_vector import VersionVector
from calliope.errors import CRDTCodecError, InvalidArgumentError

__all__ = ["CRDTCodec", "Plain", "configure_crdt_hooks", "is_plain"]

Plain = Any
"""Plain data: dict (str keys), list, str, int, float, bool or None, nested."""

C = TypeVar("C")


def is_plain(data: object) -> bool:
    """True when ``data`` is plain data all the way down."""
    if data is None or isinstance(data, str | bool | int | float):
        return True
    if isinstance(data, list):
        return all(is_plain(item) for item in data)
    if isinstance(data, dict):
        return all(isinstance(key, str) and is_plain(item) for key, item in data.items())
    return False


def _timestamp_out(timestamp: object) -> Plain:
    if isinstance(timestamp, datetime.datetime):
        return timestamp.isoformat()
    return timestamp


def _timestamp_in(data: object, _: object = None) -> object:
    if isinstance(data, str):
        return datetime.datetime.fromisoformat(data)
    return data


def _is_map(cls: Any) -> bool:
    return cls is immutables.Map or typing.get_origin(cls) is immutables.Map


class CRDTCodec:
    """Encodes and decodes the states and operations of known CRDT types.

    ``types``: CRDT types beyond the built-ins (your own, and any you nest in
    an ORMap). ``converter``: install the hooks on this converter instead of
    a new one.
    """

    def __init__(
        self, types: Iterable[type] = (), *, converter: cattrs.Converter | None = None
    ) -> None:
        self._types: dict[str, type] = {}
        for crdt_type in (*BUILTIN_CRDTS, *types):
            self.register(crdt_type)
        self.converter = converter if converter is not None else _new_converter()
        _install(self.converter, self)

    def register(self, crdt_type: type) -> None:
        """Know ``crdt_type`` by its name from now on (idempotent); a
        different type with the same name is refused."""
        name = crdt_name(crdt_type)
        known = self._types.get(name)
        if known is not None and known is not crdt_type:
            raise InvalidArgumentError(
                f"{known.__qualname__} and {crdt_type.__qualname__} are both named "
                f"{name!r}; give one a different `crdt_name` class attribute"
            )
        if not isinstance(getattr(crdt_type, "op_types", None), tuple):
            raise InvalidArgumentError(
                f"{crdt_type.__qualname__} has no `op_types` tuple; a CRDT type lists "
                f"the operation classes its effect accepts, e.g. op_types = (Put,)"
            )
        self._types[name] = crdt_type

    @property
    def types(self) -> dict[str, type]:
        """The known CRDT types by stored name."""
        return dict(self._types)

    def crdt_type(self, name: str) -> type:
        crdt_type = self._types.get(name)
        if crdt_type is None:
            raise CRDTCodecError(
                f"stored data names CRDT type {name!r}, which this codec does not know "
                f"(it knows {sorted(self._types)}); pass the type in CRDTCodec(types=[...])"
            )
        return crdt_type

    # -- states ---------------------------------------------------------------

    def encode_state(self, state: object) -> Plain:
        """The plain data of a CRDT state."""
        try:
            return self.converter.unstructure(state)
        except Exception as error:
            raise CRDTCodecError(
                f"cannot encode {type(state).__qualname__} as plain data: {error!r}"
            ) from error

    def decode_state(self, data: Plain, crdt_type: type[C]) -> C:
        """The ``crdt_type`` state encoded as ``data``."""
        try:
            return self.converter.structure(data, crdt_type)
        except CRDTCodecError:
            raise
        except Exception as error:
            raise CRDTCodecError(
                f"stored data is not a {crdt_name(crdt_type)} state: {error!r}"
            ) from error

    # -- operations -----------------------------------------------------------

    def encode_op(self, op: object) -> Plain:
        """The plain data of an operation: ``{"type": <class name>, **fields}``."""
        try:
            fields = self.converter.unstructure(op)
        except Exception as error:
            raise CRDTCodecError(
                f"cannot encode operation {op!r} as plain data: {error!r}"
            ) from error
        if not isinstance(fields, dict):
            raise CRDTCodecError(f"operation {op!r} must be an attrs class to be encoded")
        return {"type": type(op).__name__, **fields}

    def decode_op(self, data: Plain, crdt_type: type) -> Any:
        """The operation of ``crdt_type`` encoded as ``data``."""
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise CRDTCodecError(f"stored operation {data!r} has no 'type' name")
        name = data["type"]
        for op_type in crdt_type.op_types:  # type: ignore[attr-defined]
            if op_type.__name__ == name:
                fields = {key: value for key, value in data.items() if key != "type"}
                try:
                    return self.converter.structure(fields, op_type)
                except CRDTCodecError:
                    raise
                except Exception as error:
                    raise CRDTCodecError(
                        f"stored {name} operation does not fit {op_type.__qualname__}: {error!r}"
                    ) from error
        raise CRDTCodecError(
            f"stored operation type {name!r} is not an operation of {crdt_name(crdt_type)} "
            f"(those are {[op.__name__ for op in crdt_type.op_types]})"  # type: ignore[attr-defined]
        )

    def encode_tagged(self, tagged: Tagged[Any]) -> Plain:
        """The plain data of a tagged operation."""
        return {
            "replica_id": tagged.replica_id,
            "version": tagged.version.to_dict(),
            "op": self.encode_op(tagged.op),
        }

    def decode_tagged(self, data: Plain, crdt_type: type) -> Tagged[Any]:
        """The tagged operation of ``crdt_type`` encoded as ``data``."""
        try:
            replica_id, version, op = data["replica_id"], data["version"], data["op"]
            return Tagged(
                replica_id=replica_id,
                version=VersionVector(version),
                op=self.decode_op(op, crdt_type),
            )
        except CRDTCodecError:
            raise
        except Exception as error:
            raise CRDTCodecError(f"stored data is not a tagged operation: {error!r}") from error


def configure_crdt_hooks(converter: cattrs.Converter, types: Iterable[type] = ()) -> CRDTCodec:
    """Install the CRDT hooks on ``converter``; return the codec using it."""
    return CRDTCodec(types, converter=converter)


def _new_converter() -> cattrs.Converter:
    return cattrs.Converter(unstruct_collection_overrides={Set: list, Sequence: list})


def _install(converter: cattrs.Converter, codec: CRDTCodec) -> None:
    converter.register_unstructure_hook(VersionVector, lambda vector: vector.to_dict())
    converter.register_structure_hook(VersionVector, lambda data, _: VersionVector(data))
    converter.register_unstructure_hook(ElementId, lambda identity: list(identity))
    converter.register_structure_hook(
        ElementId, lambda data, _: ElementId(int(data[0]), str(data[1]), int(data[2]))
    )

    def map_unstructure_factory(cls: Any) -> Callable[[Any], Any]:
        args = typing.get_args(cls)
        key_type, value_type = args if len(args) == 2 else (Any, Any)
        keys = converter.get_unstructure_hook(key_type)
        values = converter.get_unstructure_hook(value_type)
        return lambda mapping: [[keys(key), values(value)] for key, value in mapping.items()]

    def map_structure_factory(cls: Any) -> Callable[[Any, Any], Any]:
        args = typing.get_args(cls)
        key_type, value_type = args if len(args) == 2 else (Any, Any)

        def structure(data: Any, _: Any) -> immutables.Map[Any, Any]:
            return immutables.Map(
                (converter.structure(key, key_type), converter.structure(value, value_type))
                for key, value in data
            )

        return structure

    converter.register_unstructure_hook_factory(_is_map, map_unstructure_factory)
    converter.register_structure_hook_factory(_is_map, map_structure_factory)

    for cls in (LWWRegister, LWWSet):
        converter.register_unstructure_hook(
            cls,
            make_dict_unstructure_fn(
                cls, converter, timestamp=override(unstruct_hook=_timestamp_out)
            ),
        )
        converter.register_structure_hook(
            cls,
            make_dict_structure_fn(cls, converter, timestamp=override(struct_hook=_timestamp_in)),
        )

    def rga_out(rga: RGA) -> Plain:
        return {
            "elements": [
                [list(identity), converter.unstructure(value), None if by is None else list(by)]
                for identity, value, by in rga.elements()
            ]
        }

    def rga_in(data: Any, _: Any) -> RGA:
        return RGA.from_elements(
            [
                (
                    ElementId(*identity),
                    value,
                    None if deleted is None else ElementId(*deleted),
                )
                for identity, value, deleted in data["elements"]
            ]
        )

    converter.register_unstructure_hook(RGA, rga_out)
    converter.register_structure_hook(RGA, rga_in)

    def update_out(update: Update) -> Plain:
        return {
            "key": converter.unstructure(update.key),
            "crdt": crdt_name(update.crdt_type),
            "op": codec.encode_op(update.op),
        }

    def update_in(data: Any, _: Any) -> Update:
        crdt_type = codec.crdt_type(data["crdt"])
        return Update(data["key"], crdt_type, codec.decode_op(data["op"], crdt_type))

    converter.register_unstructure_hook(Update, update_out)
    converter.register_structure_hook(Update, update_in)

    def ormap_out(ormap: ORMap) -> Plain:
        return {
            "entries": [
                {
                    "key": converter.unstructure(key),
                    "crdt": crdt_name(entry.crdt_type),
                    "state": codec.encode_state(entry.state),
                    "log": [codec.encode_tagged(tagged) for tagged in entry.log.values()],
                    "settled": entry.settled,
                }
                for key, entries in ormap.entries.items()
                for entry in entries
            ]
        }

    def ormap_in(data: Any, _: Any) -> ORMap:
        by_key: dict[Any, list[Entry]] = {}
        for item in data["entries"]:
            crdt_type = codec.crdt_type(item["crdt"])
            log = [codec.decode_tagged(tagged, crdt_type) for tagged in item["log"]]
            by_key.setdefault(item["key"], []).append(
                Entry(
                    crdt_type=crdt_type,
                    state=codec.decode_state(item["state"], crdt_type),
                    log=immutables.Map({tagged.dot: tagged for tagged in log}),
                    settled=bool(item["settled"]),
                )
            )
        return ORMap(
            entries=immutables.Map(
                {
                    key: tuple(sorted(entries, key=lambda entry: crdt_name(entry.crdt_type)))
                    for key, entries in by_key.items()
                }
            )
        )

    converter.register_unstructure_hook(ORMap, ormap_out)
    converter.register_structure_hook(ORMap, ormap_in)
