"""wire.py: the epoch (5) and lookahead (6) records of docs/wire-format.md."""

from __future__ import annotations

import struct

import pytest

import gofetch_testlib  # noqa: F401  (puts python/ on sys.path)
from gofetch import wire

K = wire.Kind


def test_epoch_record_layout():
    message = wire.encode_message([wire.epoch_record(7, worker_id=3)], pid=42, source=wire.Source.PYTHON_HOOK)
    assert len(message) == wire.HEADER_SIZE + 64
    size, kind, flags, tid, fd, worker, time_ns, dev, ino, offset, length, duration, epoch = struct.unpack_from(
        "<HBBIiiQQQQQII", message, wire.HEADER_SIZE)
    assert (size, kind, fd, worker, epoch) == (64, 5, -1, 3, 7)
    assert (flags, tid, time_ns, dev, ino, offset, length, duration) == (0,) * 8  # "everything else 0"
    header, (record,) = wire.decode_message(message)
    assert header.source == 2 and header.pid == 42
    assert record == wire.Record(kind=K.EPOCH, fd=-1, worker_id=3, epoch=7)


def test_lookahead_records_layout_and_round_trip():
    entries = [("/data/a.jpg", 0, 100), ("/data/long/" + "b" * 300 + ".jpg", 1, 0), ("/d/\udcff.bin", -1, 5)]
    records = wire.lookahead_records(entries, epoch=2)
    message = wire.encode_message(records, pid=1, source=wire.Source.PYTHON_HOOK)
    pos = wire.HEADER_SIZE
    for position, (path, worker, size) in enumerate(entries):
        fields = struct.unpack_from("<HBBIiiQQQQQII", message, pos)
        rec_size, kind, flags, tid, fd, w, time_ns, dev, ino, offset, length, duration, epoch = fields
        raw = path.encode("utf-8", "surrogateescape")
        (path_len,) = struct.unpack_from("<H", message, pos + 64)
        assert kind == 6 and offset == position and length == size and w == worker and epoch == 2 and fd == -1
        assert flags == (16 if position == 0 else 0)
        assert (tid, time_ns, dev, ino, duration) == (0, 0, 0, 0, 0)
        assert path_len == len(raw) and message[pos + 66:pos + 66 + path_len] == raw
        assert rec_size % 8 == 0 and rec_size == 64 + ((2 + len(raw) + 7) // 8) * 8
        assert message[pos + 66 + path_len:pos + rec_size] == b"\0" * (rec_size - 66 - path_len)
        pos += rec_size
    assert pos == len(message)
    _, back = wire.decode_message(message)
    assert [(r.path, r.worker_id, r.length, r.offset) for r in back] == [
        (p, w, s, i) for i, (p, w, s) in enumerate(entries)]
    assert back[0].flags == wire.Flag.ANNOUNCEMENT_START


def test_split_messages_keeps_offsets_running_and_fits():
    entries = [(f"/data/class_{i % 7}/sample_{i:06d}.jpg", i % 4, i) for i in range(3000)]
    messages = wire.split_messages(wire.lookahead_records(entries, epoch=0), pid=9)
    assert len(messages) > 1
    offsets = []
    for message in messages:
        assert len(message) <= wire.MAX_MESSAGE
        header, records = wire.decode_message(message)
        assert header.source == wire.Source.PYTHON_HOOK
        offsets += [r.offset for r in records]
        assert all(r.kind == K.LOOKAHEAD for r in records)
    assert offsets == list(range(3000))


def test_pack_record_matches_encode_record():
    rec = wire.Record(kind=K.OPEN, tid=5, fd=3, flags=1, worker_id=2, time_ns=11, dev=7, ino=8, offset=0,
                      length=99, duration_ns=4, epoch=1, path="/x/y")
    fast = wire.pack_record(1, 5, 3, 1, 2, 11, 7, 8, 0, 99, 4, 1, b"/x/y")
    assert fast == wire.encode_record(rec)
    assert wire.pack_record(2, 1, 2, 0, -1, 3, 4, 5, 6, 7, 8, 9) == wire.encode_record(
        wire.Record(kind=K.READ, tid=1, fd=2, time_ns=3, dev=4, ino=5, offset=6, length=7, duration_ns=8, epoch=9))


def test_lookahead_needs_a_path_and_epoch_takes_none():
    with pytest.raises(ValueError):
        wire.encode_record(wire.Record(kind=K.LOOKAHEAD))
    with pytest.raises(ValueError):
        wire.encode_record(wire.Record(kind=K.EPOCH, path="/x"))
    bad = bytearray(wire.encode_message(wire.lookahead_records([("/a", 0, 0)], 0), pid=1))
    bad[wire.HEADER_SIZE + 66] = ord("a")  # not absolute
    with pytest.raises(ValueError, match="not absolute"):
        wire.decode_message(bytes(bad))
