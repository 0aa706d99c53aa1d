"""``benchmarks.versus``'s sequence CRDT part: Calliope's ``RGA`` beside
``pycrdt``'s ``Text`` (Yjs), one character per operation, appended and at
random positions: typing, applying another replica's operations, and the
encoded state size; the texts are checked equal (see benchmarks/versus.py
for the conventions)."""

from __future__ import annotations

import gc
import itertools
import random
import string
import time
from types import ModuleType
from typing import Any

import msgpack

from benchmarks.report import header, installed_version, rate, row
from calliope.adapters.crdt_codec import CRDTCodec
from calliope.core.crdt import RGA, Tagged, tag_operations
from calliope.core.version_vector import VersionVector

__all__ = ["crdt_section"]

# -- the sequence CRDT --------------------------------------------------------------


Plan = list[tuple[int, str]]


def typing_plan(count: int) -> Plan:
    """``count`` characters typed one after the other at the end."""
    rng = random.Random(7)
    return [(index, rng.choice(string.ascii_letters)) for index in range(count)]


def random_plan(count: int) -> Plan:
    """``count`` characters each inserted at a random index of the document so far."""
    rng = random.Random(11)
    return [(rng.randint(0, length), rng.choice(string.ascii_letters)) for length in range(count)]


def plain_text(plan: Plan) -> str:
    chars: list[str] = []
    for index, char in plan:
        chars.insert(index, char)
    return "".join(chars)


def tenths(count: int) -> list[int]:
    """Where each tenth of a ``count``-step workload starts (and its end)."""
    return [count * part // 10 for part in range(11)]


def rga_typing(plan: Plan) -> tuple[list[float], RGA, list[Tagged[Any]]]:
    """Seconds per tenth of the plan for prepare + tag + effect of each
    insert; the document and the tagged ops."""
    doc = RGA()
    delivered = VersionVector()
    ops: list[Tagged[Any]] = []
    bounds = tenths(len(plan))
    seconds: list[float] = []
    gc.collect()
    for first, end in itertools.pairwise(bounds):
        start = time.perf_counter()
        for index, char in plan[first:end]:
            (tagged,) = tag_operations("a", delivered, [doc.insert(index, char)])
            delivered = tagged.version
            doc = doc.effect(tagged)
            ops.append(tagged)
        seconds.append(time.perf_counter() - start)
    return seconds, doc, ops


def rga_remote(ops: list[Tagged[Any]]) -> tuple[float, RGA]:
    doc = RGA()
    gc.collect()
    start = time.perf_counter()
    for tagged in ops:
        doc = doc.effect(tagged)
    return time.perf_counter() - start, doc


def rga_remote_bytes(ops: list[Tagged[Any]]) -> tuple[float, RGA]:
    """Seconds to decode each operation from msgpack bytes and apply it."""
    codec = CRDTCodec()
    encoded = [msgpack.packb(codec.encode_tagged(tagged)) for tagged in ops]
    decode = codec.decode_tagged
    doc = RGA()
    gc.collect()
    start = time.perf_counter()
    for data in encoded:
        doc = doc.effect(decode(msgpack.unpackb(data), RGA))
    return time.perf_counter() - start, doc


def pycrdt_typing(pycrdt: ModuleType, plan: Plan) -> tuple[list[float], Any]:
    """Seconds per tenth of the plan for ``text.insert`` of each character; the document."""
    doc = pycrdt.Doc()
    text = doc["text"] = pycrdt.Text()
    seconds: list[float] = []
    gc.collect()
    for first, end in itertools.pairwise(tenths(len(plan))):
        start = time.perf_counter()
        for index, char in plan[first:end]:
            text.insert(index, char)
        seconds.append(time.perf_counter() - start)
    return seconds, doc


def pycrdt_updates(pycrdt: ModuleType, plan: Plan) -> list[bytes]:
    """The update of each transaction while ``plan`` is typed (observed, untimed)."""
    doc = pycrdt.Doc()
    text = doc["text"] = pycrdt.Text()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for index, char in plan:
        text.insert(index, char)
    return updates


def pycrdt_remote(pycrdt: ModuleType, updates: list[bytes]) -> tuple[float, Any]:
    doc = pycrdt.Doc()
    doc["text"] = pycrdt.Text()
    gc.collect()
    start = time.perf_counter()
    for update in updates:
        doc.apply_update(update)
    return time.perf_counter() - start, doc


def pycrdt_text(doc: Any) -> str:
    return str(doc["text"])


def crdt_section(pycrdt: ModuleType, chars: int) -> None:
    count = chars
    header(
        f"sequence CRDT: Calliope RGA vs pycrdt {installed_version('pycrdt')} Text, "
        f"{count:,} characters, one per operation"
    )
    for what, plan in (("at the end", typing_plan(count)), ("at random", random_plan(count))):
        expected = plain_text(plan)
        our_tenths, rga, ops = rga_typing(plan)
        their_tenths, doc = pycrdt_typing(pycrdt, plan)
        assert rga.text == pycrdt_text(doc) == expected
        print(
            row(
                f"RGA (a) typing {what}: insert+tag+effect",
                rate(count, sum(our_tenths)),
                "chars/s",
                rate(count, sum(their_tenths)),
                "pycrdt Text.insert, 1 char per transaction",
            )
        )
        ours_us = [seconds / count * 10 * 1e6 for seconds in our_tenths]
        theirs_us = [seconds / count * 10 * 1e6 for seconds in their_tenths]
        print(
            f"    microseconds per char, first / last tenth: Calliope {ours_us[0]:.1f} / "
            f"{ours_us[-1]:.1f}, pycrdt {theirs_us[0]:.1f} / {theirs_us[-1]:.1f}"
        )

        updates = pycrdt_updates(pycrdt, plan)
        assert len(updates) == count
        theirs, remote_doc = pycrdt_remote(pycrdt, updates)
        assert pycrdt_text(remote_doc) == expected
        ours, remote = rga_remote(ops)
        assert remote.text == expected
        print(
            row(
                f"RGA (b) remote, {what}: effect",
                rate(count, ours),
                "ops/s",
                rate(count, theirs),
                "pycrdt apply_update of each 1-char update",
            )
        )
        ours, remote = rga_remote_bytes(ops)
        assert remote.text == expected
        print(
            row(
                f"RGA (b) remote, {what}: decode+effect",
                rate(count, ours),
                "ops/s",
                rate(count, theirs),
                "pycrdt apply_update of each 1-char update",
            )
        )

        our_bytes = len(msgpack.packb(CRDTCodec().encode_state(rga)))
        their_bytes = len(doc.get_update())
        print(
            row(
                f"RGA (c) state size, typed {what}",
                count / (our_bytes / 1024),
                "chars/KiB",
                count / (their_bytes / 1024),
                "pycrdt Doc.get_update()",
            )
        )
        print(
            f"    Calliope {our_bytes:,} bytes (msgpack of the codec's encode_state), "
            f"pycrdt {their_bytes:,} bytes"
        )


# -- main -----------------------------------------------------------------------------
