"""A page read decodes what the page holds, not the whole read window."""

from __future__ import annotations

from pathlib import Path

import pytest

from calliope.adapters.files import reader as reader_module  # (patched below)
from calliope.adapters.files.store import FileStore
from calliope.shell.ports import NewEvent


async def test_a_page_of_small_batches_decodes_about_a_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(
        tmp_path, replica_id="a", durability="flush", segment_bytes=64 << 20, poll_interval=0.01
    )
    await store.open()
    try:
        for n in range(3_000):  # 3,000 one-event batches: about 200 KiB, one read window
            await store.replicated.append_replica(
                "s", "a", [NewEvent("t", 1, {"n": n})], observed={}, timestamp_us=1
            )
        decoded = 0
        real = reader_module.decode_batch  # type: ignore[attr-defined]

        def counting(*args: object, **kwargs: object) -> object:
            nonlocal decoded
            decoded += 1
            return real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(reader_module, "decode_batch", counting)
        known: dict[str, int] = {}
        pages = 0
        while True:
            found = await store.replicated.read_new("s", known, limit=100)
            if not found:
                break
            pages += 1
            known["a"] = found[0].batches[-1].last_sequence
        assert known == {"a": 3_000}
        assert pages == 30
        assert decoded <= 3_000 + 2 * pages, decoded  # each batch once, and a little slack
    finally:
        await store.aclose()
