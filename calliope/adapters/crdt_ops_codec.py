"""The replicator's codec: one CRDT type's operations and states, stored.

An operation is stored as an event named ``"<CRDT name>.<operation class>"``
(``"GCounter.Increment"``) with the operation's fields as data, so a key's
log says which CRDT type wrote it: reading a ``GCounter`` key as an
``ORSet`` is refused by name, before anything is decoded into the wrong
type. The replicator's own marker for a deleted key is stored under the
reserved name ``"calliope.deleted"``.

Encoding checks that the operation reads back equal (packed and unpacked
as storage does, or proven from its fields' exact types by the events'
quick check), so a value that would change on the way (a tuple that
comes back a list, an object cattrs cannot rebuild) is refused with
:class:`calliope.InvalidOperationError` before anything is written: every
replica applies exactly the operation the writer applied.
"""

from __future__ import annotations

from typing import Any

import msgpack

from calliope.adapters.codec_quick_check import quick_check
from calliope.adapters.crdt_codec import CRDTCodec
from calliope.adapters.packing import pack_data
from calliope.core.crdt.protocol import crdt_name
from calliope.errors import CRDTCodecError, InvalidOperationError, WrongCRDTTypeError
from calliope.shell.key_deleted import DELETED
from calliope.shell.ports import NewEvent

__all__ = ["CRDTOpCodec"]

DELETED_NAME = DELETED.name


class CRDTOpCodec:
    """Operations and states of one CRDT type (implements the shell's
    ``CRDTTypeCodec``); built by ``Codec.for_crdt``."""

    def __init__(self, crdt_codec: CRDTCodec, crdt_type: type) -> None:
        self._codec = crdt_codec
        self.crdt_type = crdt_type
        self.name = crdt_name(crdt_type)
        self._op_types: dict[str, type] = {
            op_type.__name__: op_type
            for op_type in crdt_type.op_types  # type: ignore[attr-defined]
        }
        self._names = {op_type: f"{self.name}.{name}" for name, op_type in self._op_types.items()}
        self._converter = crdt_codec.converter
        # Operations whose fields are simple enough are proven to read back
        # equal from their values' exact types, as events are (codec_quick_check).
        self._quick = {
            op_type: quick_check(self._converter, op_type) for op_type in self._op_types.values()
        }

    # -- operations (the TypeCodec protocol) --------------------------------

    @property
    def type_names(self) -> frozenset[str]:
        """The stored names of this CRDT type's operations."""
        return frozenset(self._names.values())

    def encode(self, value: Any) -> NewEvent:
        """The stored form of one operation; refused (InvalidOperationError)
        unless it is an operation of this type that reads back equal."""
        if value is DELETED:
            return NewEvent(DELETED_NAME, 1, None)
        name = self._names.get(type(value))
        if name is None:
            raise InvalidOperationError(
                f"the prepare step returned {value!r}, which is not an operation of "
                f"{self.name} (those are {sorted(self._op_types)}); call the state's "
                f"methods to make operations, e.g. `lambda state: state.increment()`"
            )
        quick = self._quick[type(value)]
        if quick is not None and quick(value):  # reads back equal, surely
            return NewEvent(name, 1, self._converter.unstructure(value))
        try:
            data = self._converter.unstructure(value)
            stored = msgpack.unpackb(pack_data(data), raw=False, strict_map_key=False)
            back = self._converter.structure(stored, type(value))
        except Exception as error:
            raise InvalidOperationError(
                f"operation {value!r} of {self.name} cannot be stored: {error}; "
                f"use plain values (str, int, float, bool, None) inside operations"
            ) from error
        if back != value:
            raise InvalidOperationError(
                f"operation {value!r} of {self.name} would read back as {back!r}; use "
                f"plain values (str, int, float, bool, None) inside operations"
            )
        return NewEvent(name, 1, data)

    def decode(self, type_name: str, schema_version: int, data: Any) -> Any:
        """The operation stored as ``type_name`` (or :data:`DELETED`).
        Raises WrongCRDTTypeError when it belongs to another CRDT type."""
        if type_name == DELETED_NAME:
            return DELETED
        crdt, _, op_name = type_name.rpartition(".")
        op_type = self._op_types.get(op_name) if crdt == self.name else None
        if op_type is None:
            raise WrongCRDTTypeError(
                f"this key holds operations stored as {type_name!r}, not operations of "
                f"{self.name}; a key has one CRDT type for its whole life: use that type, "
                f"or another key"
            )
        try:
            return self._converter.structure(data, op_type)
        except Exception as error:
            raise CRDTCodecError(
                f"stored operation {type_name!r} does not fit {op_type.__qualname__}: {error!r}"
            ) from error

    # -- states (CRDT snapshots) ------------------------------------------------

    def encode_state(self, state: Any) -> Any:
        return self._codec.encode_state(state)

    def decode_state(self, type_name: str, data: Any) -> Any:
        if type_name != self.name:
            raise WrongCRDTTypeError(
                f"this key's snapshot holds a {type_name}, not a {self.name}; a key has one "
                f"CRDT type for its whole life: use that type, or another key"
            )
        return self._codec.decode_state(data, self.crdt_type)
