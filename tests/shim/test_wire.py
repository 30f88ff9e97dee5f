"""Unit tests of python/gofetch/wire.py against docs/wire-format.md."""

from __future__ import annotations

import struct

import pytest

import conftest  # noqa: F401  (puts python/ on sys.path)
from gofetch import wire

K = wire.Kind


def sample_records():
    return [
        wire.Record(kind=K.OPEN, tid=7, fd=3, flags=wire.Flag.STDIO, worker_id=2, time_ns=10, dev=0x801,
                    ino=1234, offset=0o2000000, length=4096, duration_ns=55, epoch=3, path="/data/a.jpg"),
        wire.Record(kind=K.READ, tid=7, fd=3, time_ns=11, dev=0x801, ino=1234, offset=0, length=4096,
                    duration_ns=900),
        wire.Record(kind=K.MMAP, tid=8, fd=4, time_ns=12, dev=1, ino=2, offset=8192, length=1 << 20),
        wire.Record(kind=K.CLOSE, tid=7, fd=3, time_ns=13, dev=0x801, ino=1234),
    ]


def test_round_trip_and_layout():
    msg = wire.encode_message(sample_records(), pid=4242, dropped=9, sent_ns=99)
    # header 24 + open (64 + 2 + 11 -> 80) + 3 * 64
    assert len(msg) == 24 + 80 + 3 * 64
    assert msg[:8] == b"GF\x01\x01\x04\x00\x18\x00"
    assert struct.unpack_from("<IIQ", msg, 8) == (4242, 9, 99)
    assert struct.unpack_from("<HBB", msg, 24) == (80, K.OPEN, 1)
    assert struct.unpack_from("<H", msg, 24 + 64) == (11,)
    assert msg[24 + 66 : 24 + 77] == b"/data/a.jpg" and msg[24 + 77 : 24 + 80] == b"\0\0\0"
    header, records = wire.decode_message(msg)
    assert header == wire.Header(source=1, record_count=4, pid=4242, dropped=9, sent_ns=99)
    assert records == sample_records()


def test_non_utf8_path_round_trips():
    rec = wire.Record(kind=K.OPEN, path="/data/\udcff.bin")
    _, (back,) = wire.decode_message(wire.encode_message([rec], pid=1))
    assert back.path == rec.path


def corrupt(msg: bytes, offset: int, fmt: str, value) -> bytes:
    b = bytearray(msg)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


GOOD = wire.encode_message(sample_records(), pid=1)


@pytest.mark.parametrize(
    "data, reason",
    [
        (GOOD[:23], "short header"),
        (b"XY" + GOOD[2:], "bad magic"),
        (corrupt(GOOD, 2, "<B", 2), "unsupported version"),
        (corrupt(GOOD, 3, "<B", 9), "unknown source"),
        (corrupt(GOOD, 6, "<H", 20), "bad header_size"),
        (corrupt(GOOD, 6, "<H", 28), "bad header_size"),
        (corrupt(GOOD, 4, "<H", 5), "truncated"),
        (corrupt(GOOD, 4, "<H", 3), "trailing bytes"),
        (corrupt(GOOD, 24, "<H", 56), "bad size"),
        (corrupt(GOOD, 24, "<H", 84), "bad size"),
        (corrupt(GOOD, 24 + 80, "<H", 4096), "runs past the end"),
        (corrupt(GOOD, 24 + 80 + 2, "<B", 9), "unknown kind"),
        (corrupt(GOOD, 24 + 64, "<H", 20), "does not fit"),
        (corrupt(GOOD, 24 + 64, "<H", 0), "does not fit"),
        (corrupt(GOOD, 24 + 66, "<B", ord("d")), "not absolute"),
        (GOOD + b"\0" * (wire.MAX_MESSAGE), "oversized"),
    ],
)
def test_bad_input_raises(data, reason):
    with pytest.raises(ValueError, match=reason):
        wire.decode_message(data)


def test_encoder_rejects_what_the_format_cannot_carry():
    with pytest.raises(ValueError):
        wire.encode_record(wire.Record(kind=K.OPEN))
    with pytest.raises(ValueError):
        wire.encode_record(wire.Record(kind=K.READ, path="/x"))
    with pytest.raises(ValueError):
        wire.encode_record(wire.Record(kind=K.OPEN, path="/" + "a" * 4096))
    with pytest.raises(ValueError):
        wire.encode_record(wire.Record(kind=K.READ, duration_ns=1 << 32))
    with pytest.raises(ValueError):
        wire.encode_message([wire.Record(kind=K.READ)] * 1100, pid=1)


def test_the_shims_structs_write_every_golden_message(tmp_path):
    """tests/contracts/wire-golden.json with the shim's own structs and record-size rule
    (preload/gofetch_preload.h), as the client (python/tests/test_wire_golden.py) and the
    daemon (WireGoldenContractTests) run it."""
    import json
    import pathlib
    import subprocess
    root = pathlib.Path(__file__).resolve().parents[2]
    program = tmp_path / "wire_golden"
    subprocess.run(["cc", "-O2", "-Wall", "-Werror", "-I", str(root / "preload"), "-o", str(program),
                    str(pathlib.Path(__file__).with_name("wire_golden.c"))], check=True)
    table = json.loads((root / "tests" / "contracts" / "wire-golden.json").read_text())
    for message in table["messages"]:
        args = [str(message[k]) for k in ("source", "pid", "dropped", "sent_ns")]
        for r in message["records"]:
            args += [str(r[k]) for k in ("kind", "flags", "tid", "fd", "worker_id", "epoch", "time_ns", "dev", "ino",
                                         "offset", "length", "duration_ns")] + [r.get("path_hex", "-")]
        out = subprocess.run([str(program), *args], capture_output=True, text=True, check=True).stdout.strip()
        assert out == message["hex"], message["name"]
