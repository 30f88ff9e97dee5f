"""tests/contracts/wire-golden.json, as the shim (tests/shim/test_wire.py) and the daemon
(tests/swift/GoFetchTests/WireGoldenContractTests.swift) run it: the client's encoder writes
each message byte for byte, and its decoder reads the bytes back to the same records."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gofetch import wire  # noqa: E402

TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "contracts", "wire-golden.json")


def records(message):
    out = []
    for r in message["records"]:
        fields = {k: v for k, v in r.items() if k != "path_hex"}
        path = os.fsdecode(bytes.fromhex(r["path_hex"])) if "path_hex" in r else None
        out.append(wire.Record(**fields, path=path))
    return out


def test_the_client_writes_and_reads_every_golden_message():
    with open(TABLE) as f:
        table = json.load(f)
    kinds = set()
    for message in table["messages"]:
        expected = records(message)
        kinds |= {r.kind for r in expected}
        encoded = wire.encode_message(expected, pid=message["pid"], dropped=message["dropped"],
                                      sent_ns=message["sent_ns"], source=message["source"])
        assert encoded.hex() == message["hex"], message["name"]
        header, decoded = wire.decode_message(bytes.fromhex(message["hex"]))
        assert (header.source, header.pid, header.dropped, header.sent_ns, header.record_count) == (
            message["source"], message["pid"], message["dropped"], message["sent_ns"], len(expected))
        assert decoded == expected, message["name"]
    assert kinds == {int(k) for k in wire.Kind}
