"""Operation-based CRDTs, pure: prepare operations, apply them in causal order, compact.

See :mod:`calliope.core.crdt.protocol` for the protocol every CRDT follows and
:mod:`calliope.core.crdt.stability` for causal stability and compaction.
"""

from calliope.core.crdt.flag import Disable, Enable, Flag
from calliope.core.crdt.gcounter import GCounter, Increment
from calliope.core.crdt.gset import Add, GSet
from calliope.core.crdt.lww_register import LWWRegister, LWWSet, Timestamp
from calliope.core.crdt.mv_register import MVRegister, MVSet
from calliope.core.crdt.ormap import ORMap, RemoveKey, Update
from calliope.core.crdt.orset import ORSet, Remove
from calliope.core.crdt.pncounter import Decrement, PNCounter
from calliope.core.crdt.protocol import (
    CRDT,
    Tagged,
    as_operations,
    compact,
    covers,
    crdt_name,
    effect,
    effect_all,
    tag_operations,
)
from calliope.core.crdt.rga import RGA, Delete, ElementId, Insert
from calliope.core.crdt.stability import is_stable, stable_point

BUILTIN_CRDTS: tuple[type, ...] = (
    GCounter,
    PNCounter,
    GSet,
    ORSet,
    LWWRegister,
    MVRegister,
    Flag,
    ORMap,
    RGA,
)
"""Every CRDT type Calliope ships."""

__all__ = [
    "BUILTIN_CRDTS",
    "CRDT",
    "RGA",
    "Add",
    "Decrement",
    "Delete",
    "Disable",
    "ElementId",
    "Enable",
    "Flag",
    "GCounter",
    "GSet",
    "Increment",
    "Insert",
    "LWWRegister",
    "LWWSet",
    "MVRegister",
    "MVSet",
    "ORMap",
    "ORSet",
    "PNCounter",
    "Remove",
    "RemoveKey",
    "Tagged",
    "Timestamp",
    "Update",
    "as_operations",
    "compact",
    "covers",
    "crdt_name",
    "effect",
    "effect_all",
    "is_stable",
    "stable_point",
    "tag_operations",
]
