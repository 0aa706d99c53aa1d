"""A tour of the pure core: two replicas, concurrent writes, buffered delivery.

Run: ``.venv/bin/python -m examples.core_tour``. No files, no asyncio: the
core is plain values, so two replicas are two variables.
"""

from __future__ import annotations

import datetime

from calliope import CausalBuffer, Envelope, VersionVector, causal_order, detect_concurrent, receive

NOW = datetime.datetime(2026, 11, 26, tzinfo=datetime.UTC)


def write(replica: str, seen: VersionVector, event: str) -> Envelope[str]:
    version = seen.increment(replica)
    return Envelope(
        stream_id="cart-1",
        replica_id=replica,
        sequence=version[replica],
        version=version,
        timestamp=NOW,
        event=event,
    )


def main() -> None:
    print("Two replicas of cart-1 write without talking to each other:")
    a1 = write("node-a", VersionVector(), "ItemAdded(apple)")
    b1 = write("node-b", VersionVector(), "ItemAdded(pear)")
    print(f"  {a1.replica_id} wrote {a1.event} at {a1.version}")
    print(f"  {b1.replica_id} wrote {b1.event} at {b1.version}")
    print(f"  compare: {a1.version.compare(b1.version).name}")
    concurrent = [e.event for e in detect_concurrent(a1.version, [b1])]
    print(f"  what node-a did not know about: {concurrent}")

    print("\nnode-a learns of node-b's write and resolves the conflict:")
    a2 = write("node-a", a1.version.merge(b1.version), "CartMerged(apple, pear)")
    print(f"  {a2.event} at {a2.version}, after both: {a2.version.dominates(b1.version)}")

    print("\nnode-c receives them in the worst order; causal delivery holds back the early ones:")
    buffer: CausalBuffer[Envelope[str]] = CausalBuffer()
    for arriving in [a2, b1, a1]:
        buffer, released = receive(buffer, arriving)
        names = [e.event for e in released]
        print(f"  arrives {arriving.event:<24} -> delivered {names}, pending {buffer.pending}")

    print("\nEvery replica lists the same events in the same causal order:")
    for envelope in causal_order([a2, b1, a1]):
        print(f"  {envelope.replica_id}  {envelope.version}  {envelope.event}")


if __name__ == "__main__":
    main()
