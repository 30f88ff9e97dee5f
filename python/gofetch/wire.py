"""Encoder and decoder of the gofetch trace wire format, version 1.

The format is specified in ``docs/wire-format.md``: one message per
``SOCK_SEQPACKET`` packet, a 24-byte header and ``record_count`` records of
64 bytes each (open records carry a path tail). Standard library only.

``decode_message`` is strict: any malformed input raises ``ValueError``
naming the reason (the daemon's decoder instead counts and skips; this
module is for tests, tools and the Python hook).
"""

from __future__ import annotations

import enum
import os
import struct
from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple

MAGIC = b"GF"
VERSION = 1
HEADER_SIZE = 24
RECORD_SIZE = 64
MAX_MESSAGE = 65536
MAX_PATH = 4096
UNKNOWN_WORKER = -1
UNKNOWN_EPOCH = 0xFFFFFFFF


class Source(enum.IntEnum):
    PRELOAD = 1
    PYTHON_HOOK = 2
    FANOTIFY = 3
    EBPF = 4


class Kind(enum.IntEnum):
    OPEN = 1
    READ = 2
    MMAP = 3
    CLOSE = 4


class Flag(enum.IntFlag):
    STDIO = 1 << 0
    PATH_TRUNCATED = 1 << 1
    VECTORED = 1 << 2
    POSITIONAL = 1 << 3


_HEADER = struct.Struct("<2sBBHHIIQ")
_RECORD = struct.Struct("<HBBIiiQQQQQII")
_PATH_LEN = struct.Struct("<H")
assert _HEADER.size == HEADER_SIZE and _RECORD.size == RECORD_SIZE


@dataclass(frozen=True)
class Header:
    source: int
    record_count: int
    pid: int
    dropped: int = 0
    sent_ns: int = 0
    version: int = VERSION
    header_size: int = HEADER_SIZE


@dataclass(frozen=True)
class Record:
    kind: int
    tid: int = 0
    fd: int = -1
    flags: int = 0
    worker_id: int = UNKNOWN_WORKER
    time_ns: int = 0
    dev: int = 0
    ino: int = 0
    offset: int = 0
    length: int = 0
    duration_ns: int = 0
    epoch: int = UNKNOWN_EPOCH
    # Open records only: the absolute path, decoded with os.fsdecode (undecodable
    # bytes survive as surrogate escapes; os.fsencode gives the bytes back).
    path: Optional[str] = None


def _u(value: int, bits: int, name: str) -> int:
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{name}={value} does not fit in u{bits}")
    return value


def encode_header(header: Header) -> bytes:
    return _HEADER.pack(
        MAGIC,
        _u(header.version, 8, "version"),
        _u(header.source, 8, "source"),
        _u(header.record_count, 16, "record_count"),
        _u(header.header_size, 16, "header_size"),
        _u(header.pid, 32, "pid"),
        _u(header.dropped, 32, "dropped"),
        _u(header.sent_ns, 64, "sent_ns"),
    )


def encode_record(record: Record) -> bytes:
    """One record with its tail and padding; ``size`` is computed."""
    tail = b""
    if record.kind == Kind.OPEN:
        if record.path is None:
            raise ValueError("an open record needs a path")
        raw = os.fsencode(record.path)
        if not 0 < len(raw) <= MAX_PATH:
            raise ValueError(f"path length {len(raw)} outside 1..{MAX_PATH}")
        tail = _PATH_LEN.pack(len(raw)) + raw
        tail += b"\0" * (-(RECORD_SIZE + len(tail)) % 8)
    elif record.path is not None:
        raise ValueError("only open records carry a path")
    if not -(1 << 31) <= record.fd < (1 << 31) or not -(1 << 31) <= record.worker_id < (1 << 31):
        raise ValueError("fd and worker_id are i32")
    head = _RECORD.pack(
        RECORD_SIZE + len(tail),
        _u(record.kind, 8, "kind"),
        _u(record.flags, 8, "flags"),
        _u(record.tid, 32, "tid"),
        record.fd,
        record.worker_id,
        _u(record.time_ns, 64, "time_ns"),
        _u(record.dev, 64, "dev"),
        _u(record.ino, 64, "ino"),
        _u(record.offset, 64, "offset"),
        _u(record.length, 64, "length"),
        _u(record.duration_ns, 32, "duration_ns"),
        _u(record.epoch, 32, "epoch"),
    )
    return head + tail


def encode_message(
    records: Iterable[Record],
    *,
    pid: int,
    dropped: int = 0,
    sent_ns: int = 0,
    source: int = Source.PRELOAD,
) -> bytes:
    """A complete message: header (``record_count`` from ``records``) and records."""
    body = [encode_record(r) for r in records]
    header = Header(source=source, record_count=len(body), pid=pid, dropped=dropped, sent_ns=sent_ns)
    message = encode_header(header) + b"".join(body)
    if len(message) > MAX_MESSAGE:
        raise ValueError(f"message of {len(message)} bytes exceeds {MAX_MESSAGE}")
    return message


def decode_header(data: bytes) -> Header:
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"oversized message: {len(data)} > {MAX_MESSAGE} bytes")
    if len(data) < HEADER_SIZE:
        raise ValueError(f"short header: {len(data)} < {HEADER_SIZE} bytes")
    magic, version, source, count, header_size, pid, dropped, sent_ns = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError(f"bad magic {magic!r}")
    if version != VERSION:
        raise ValueError(f"unsupported version {version}")
    if source not in Source._value2member_map_:
        raise ValueError(f"unknown source {source}")
    if header_size < HEADER_SIZE or header_size % 8 or header_size > len(data):
        raise ValueError(f"bad header_size {header_size}")
    return Header(source, count, pid, dropped, sent_ns, version, header_size)


def decode_message(data: bytes) -> Tuple[Header, List[Record]]:
    """Decodes one message; raises ``ValueError`` on anything malformed."""
    data = bytes(data)
    header = decode_header(data)
    records: List[Record] = []
    pos = header.header_size
    for index in range(header.record_count):
        if pos + RECORD_SIZE > len(data):
            raise ValueError(f"record {index}: truncated (message ends at {len(data)})")
        fields = _RECORD.unpack_from(data, pos)
        size, kind = fields[0], fields[1]
        if size < RECORD_SIZE or size % 8:
            raise ValueError(f"record {index}: bad size {size}")
        if pos + size > len(data):
            raise ValueError(f"record {index}: size {size} runs past the end of the message")
        if kind not in Kind._value2member_map_:
            raise ValueError(f"record {index}: unknown kind {kind}")
        path = None
        if kind == Kind.OPEN:
            if size < RECORD_SIZE + _PATH_LEN.size:
                raise ValueError(f"record {index}: open record without a path")
            (path_len,) = _PATH_LEN.unpack_from(data, pos + RECORD_SIZE)
            start = pos + RECORD_SIZE + _PATH_LEN.size
            if not 0 < path_len <= MAX_PATH or start + path_len > pos + size:
                raise ValueError(f"record {index}: path length {path_len} does not fit")
            raw = data[start : start + path_len]
            if not raw.startswith(b"/"):
                raise ValueError(f"record {index}: path {raw[:64]!r} is not absolute")
            path = os.fsdecode(raw)
        (_, kind, flags, tid, fd, worker_id, time_ns, dev, ino, offset, length, duration_ns, epoch) = fields
        records.append(
            Record(
                kind=Kind(kind), tid=tid, fd=fd, flags=flags, worker_id=worker_id, time_ns=time_ns,
                dev=dev, ino=ino, offset=offset, length=length, duration_ns=duration_ns, epoch=epoch,
                path=path,
            )
        )
        pos += size
    if pos != len(data):
        raise ValueError(f"record_count {header.record_count} leaves {len(data) - pos} trailing bytes")
    return header, records
