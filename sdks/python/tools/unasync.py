"""Writes the synchronous client (``client.py``) from the asynchronous one (``aio.py``), so
that the two cannot drift apart: edit ``aio.py``, then run ``python tools/unasync.py``.
``--check`` only reports whether ``client.py`` is current (the test suite runs it)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "connectors_gateway"
HEADER = '"""The synchronous clients: :class:`Connectors` (tenant API) and :class:`AdminAPI`.\n\nGenerated from ``aio.py`` by ``tools/unasync.py``: edit that file, not this one."""\n'

# In order: each a regular expression and its replacement.
RULES = [
    (r"^import asyncio\n", ""),
    (r"\basync def\b", "def"),
    (r"\bawait ", ""),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"\bAwaitable\[(\w+)\]", r"\1"),
    (r", Awaitable\b", ""),
    (r"\baclose\b", "close"),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\bhttpx\.AsyncClient\b", "httpx.Client"),
    (r"\b(_?)Async([A-Z]\w*)", r"\1\2"),
    (r"\basynchronous\b", "synchronous"),
]


def synchronous(source: str) -> str:
    """``aio.py``'s text as ``client.py``'s: the module docstring replaced, then the rules."""
    end = source.index('"""', 3) + 3
    body = source[end:]
    for pattern, replacement in RULES:
        body = re.sub(pattern, replacement, body, flags=re.MULTILINE)
    return HEADER + body


def main(argv: list[str]) -> int:
    wanted = synchronous((PACKAGE / "aio.py").read_text())
    target = PACKAGE / "client.py"
    if "--check" in argv:
        if target.read_text() != wanted:
            print("client.py is not what tools/unasync.py makes of aio.py: run it", file=sys.stderr)
            return 1
        return 0
    target.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
