"""Paths in the benchmark records written as any machine can read them: the checkout as `.`, the home folder as `~`,
the temporary folder as `$TMPDIR` (the records say what ran; the absolute paths of one machine say nothing more)."""
from __future__ import annotations

import os
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def portable(text: str) -> str:
    """`text` (a path or a command line) with this machine's checkout, temporary folder and home made relative."""
    for prefix, name in ((ROOT, "."), (tempfile.gettempdir(), "$TMPDIR"), (os.path.expanduser("~"), "~")):
        text = text.replace(prefix + os.sep, name + os.sep)
    return text
