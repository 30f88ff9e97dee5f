"""Encoder and decoder of the gofetch trace wire format, version 1.

The format is specified in ``docs/wire-format.md``: one message per
``SOCK_SEQPACKET`` packet, a 24-byte header and ``record_count`` records of
64 bytes each (open and lookahead records carry a path tail). Standard library
only.

Kinds 1-4 are file accesses; kind 5 (``epoch``) and kind 6 (``lookahead``) are
announcements from the Python hook: a process starting an epoch, and the ordered
list of the sample files a data loader will read (``epoch_record``,
``lookahead_records`` and ``split_messages`` build them).

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
    EPOCH = 5
    LOOKAHEAD = 6


# Kinds whose record carries the path tail (u16 path_len, path bytes, padding).
PATH_KINDS = frozenset((Kind.OPEN, Kind.LOOKAHEAD))


class Flag(enum.IntFlag):
    STDIO = 1 << 0
    PATH_TRUNCATED = 1 << 1
    VECTORED = 1 << 2
    POSITIONAL = 1 << 3
    # Open: the shim asked for the whole (small) file at open (trace.open_readahead_kb).
    WARMED_AT_OPEN = 1 << 5
    # Lookahead: the first record (offset 0) of a new announcement; the daemon
    # drops any earlier list from the same sender.
    ANNOUNCEMENT_START = 1 << 4


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
    # Open and lookahead records only: the absolute path, decoded with os.fsdecode
    # (undecodable bytes survive as surrogate escapes; os.fsencode gives the bytes back).
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


def _path_tail(raw: bytes) -> bytes:
    if not 0 < len(raw) <= MAX_PATH:
        raise ValueError(f"path length {len(raw)} outside 1..{MAX_PATH}")
    tail = _PATH_LEN.pack(len(raw)) + raw
    return tail + b"\0" * (-(RECORD_SIZE + len(tail)) % 8)


def encode_record(record: Record) -> bytes:
    """One record with its tail and padding; ``size`` is computed."""
    tail = b""
    if record.kind in PATH_KINDS:
        if record.path is None:
            raise ValueError(f"a {Kind(record.kind).name.lower()} record needs a path")
        tail = _path_tail(os.fsencode(record.path))
    elif record.path is not None:
        raise ValueError("only open and lookahead records carry a path")
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


def pack_record(
    kind: int, tid: int, fd: int, flags: int, worker_id: int, time_ns: int, dev: int, ino: int,
    offset: int, length: int, duration_ns: int, epoch: int, path: Optional[bytes] = None,
) -> bytes:
    """The fast path of ``encode_record`` for senders: plain values, ``path`` as bytes.

    Values are not range-checked beyond what ``struct`` enforces (``struct.error``).
    """
    if path is None:
        return _RECORD.pack(RECORD_SIZE, kind, flags, tid, fd, worker_id, time_ns, dev, ino, offset, length,
                            duration_ns, epoch)
    tail = _path_tail(path)
    return _RECORD.pack(RECORD_SIZE + len(tail), kind, flags, tid, fd, worker_id, time_ns, dev, ino, offset,
                        length, duration_ns, epoch) + tail


def epoch_record(epoch: int, worker_id: int = UNKNOWN_WORKER) -> Record:
    """Kind 5: the sending process starts ``epoch``; ``worker_id`` -1 is the main process."""
    return Record(kind=Kind.EPOCH, fd=-1, worker_id=worker_id, epoch=epoch)


def lookahead_records(
    entries: Iterable[Tuple[str, int, int]], epoch: int, start: int = 0
) -> List[Record]:
    """Kind 6 records for ``entries`` = (absolute path, worker id, size or 0), in read order.

    ``start`` is the position of the first entry in the announcement; the record at
    position 0 carries ``Flag.ANNOUNCEMENT_START``.
    """
    out = []
    for position, (path, worker_id, size) in enumerate(entries, start):
        out.append(Record(
            kind=Kind.LOOKAHEAD, fd=-1, flags=Flag.ANNOUNCEMENT_START if position == 0 else 0,
            worker_id=worker_id, offset=position, length=size, epoch=epoch, path=path,
        ))
    return out


def split_messages(
    records: Iterable[Record], *, pid: int, dropped: int = 0, sent_ns: int = 0, source: int = Source.PYTHON_HOOK,
) -> List[bytes]:
    """As many messages as ``records`` need (each at most ``MAX_MESSAGE`` bytes), in order."""
    messages: List[bytes] = []
    body: List[bytes] = []
    size = HEADER_SIZE
    for record in records:
        encoded = encode_record(record)
        if body and (size + len(encoded) > MAX_MESSAGE or len(body) == 0xFFFF):
            messages.append(_assemble(body, pid, dropped, sent_ns, source))
            body, size = [], HEADER_SIZE
        body.append(encoded)
        size += len(encoded)
    if body:
        messages.append(_assemble(body, pid, dropped, sent_ns, source))
    return messages


def _assemble(body: List[bytes], pid: int, dropped: int, sent_ns: int, source: int) -> bytes:
    header = Header(source=source, record_count=len(body), pid=pid, dropped=dropped, sent_ns=sent_ns)
    return encode_header(header) + b"".join(body)


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
        if kind in PATH_KINDS:
            if size < RECORD_SIZE + _PATH_LEN.size:
                raise ValueError(f"record {index}: {Kind(kind).name.lower()} record without a path")
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
