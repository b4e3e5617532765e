"""Python source for a test's child process (a second process is the point: file locks, SIGKILL, another reader)."""

from __future__ import annotations

import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def child_script(body: str) -> str:
    """``body`` (indented as written in the test) as a script for ``python -c``, with this checkout first on
    ``sys.path`` so the child imports the packages under test and not an installed copy."""
    return f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n" + textwrap.dedent(body)
