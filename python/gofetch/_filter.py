"""Which paths are data files: the preload shim's filter, in Python.

A path is recorded when it is not under an exclude prefix and, if include
prefixes are given, is under one of them; when both match, the longer (more
specific) prefix wins. Paths containing /site-packages/, /dist-packages/ or
/__pycache__/ and the interpreter's own prefixes are always excluded.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Iterable, List, Optional, Sequence, Tuple

DEFAULT_EXCLUDE = ("/proc", "/sys", "/dev", "/usr", "/lib", "/lib64", "/etc", "/run", "/var/lib/dpkg")
ALWAYS_EXCLUDED_PARTS = ("/site-packages/", "/dist-packages/", "/__pycache__/")


def _env_list(name: str) -> Optional[List[str]]:
    value = os.environ.get(name)
    if value is None:
        return None
    return [p for p in value.split(":") if p]


def _normalise(prefixes: Iterable[str]) -> Tuple[str, ...]:
    out = []
    for p in prefixes:
        p = os.fsdecode(os.fspath(p))
        if not p:
            continue
        if p != "/":
            p = p.rstrip("/")
        if p not in out:
            out.append(p)
    return tuple(out)


def interpreter_prefixes() -> Tuple[str, ...]:
    seen = []
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, getattr(sys, "base_exec_prefix", None)):
        if not p:
            continue
        for q in (p, os.path.realpath(p)):
            # A prefix of "/" would exclude everything: never use it.
            if q and q != "/" and q not in seen:
                seen.append(q)
    return tuple(seen)


class PathFilter:
    """``wanted(path)`` for absolute paths (str); results are cached (data sets are re-read)."""

    CACHE_LIMIT = 1 << 18

    def __init__(self, include: Optional[Sequence[str]] = None, exclude: Optional[Sequence[str]] = None):
        if include is None:
            include = _env_list("GOFETCH_INCLUDE") or ()
        if exclude is None:
            env = _env_list("GOFETCH_EXCLUDE")
            exclude = DEFAULT_EXCLUDE if env is None else env
        self.include = _normalise(include)
        self.exclude = _normalise(tuple(exclude) + interpreter_prefixes())
        self._exclude_re = self._compile(self.exclude)
        self._include_re = self._compile(self.include)
        self._cache: dict = {}

    @staticmethod
    def _compile(prefixes: Tuple[str, ...]):
        """One regex; longest prefixes first, so the match found is the longest (component-wise)."""
        if not prefixes:
            return None
        parts = []
        for p in sorted(prefixes, key=len, reverse=True):
            parts.append(re.escape(p) if p == "/" else re.escape(p) + "(?=/|$)")
        return re.compile("|".join(parts))

    @staticmethod
    def _match(pattern, path: str) -> int:
        if pattern is None:
            return 0
        m = pattern.match(path)
        return m.end() if m else 0

    def wanted(self, path: str) -> bool:
        cached = self._cache.get(path)
        if cached is not None:
            return cached
        result = self._decide(path)
        if len(self._cache) >= self.CACHE_LIMIT:
            self._cache.clear()
        self._cache[path] = result
        return result

    def _decide(self, path: str) -> bool:
        for part in ALWAYS_EXCLUDED_PARTS:
            if part in path:
                return False
        excluded = self._match(self._exclude_re, path)
        if self.include:
            return self._match(self._include_re, path) > excluded
        return excluded == 0
