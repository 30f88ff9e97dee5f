"""The include/exclude rule exists in C (the shim), Swift (the kernel sources) and
Python (this client): all three run tests/contracts/path-filter.json."""
import json
import os

import gofetch_testlib  # noqa: F401  (puts the client on sys.path)
from gofetch._filter import PathFilter

TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "contracts", "path-filter.json")


def test_the_client_decides_every_case_of_the_shared_table():
    cases = json.load(open(TABLE))["cases"]
    assert len(cases) >= 15
    root = "/scratch/root"

    def fill(text):
        return text.replace("{root}", root)

    for case in cases:
        # The interpreter's own prefixes are always excluded too; the scratch root is not under them.
        rule = PathFilter(include=[fill(p) for p in case["include"]], exclude=[fill(p) for p in case["exclude"]])
        assert rule.wanted(fill(case["path"])) == case["wanted"], case
