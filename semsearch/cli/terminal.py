"""Text from a corpus made safe to print on a terminal."""

from __future__ import annotations

import re

# C0 and C1 control characters (ESC starts the sequences that clear a screen or retitle a
# window), DEL, and the bidirectional overrides that reorder what a line appears to say
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    r"""`text` with control characters shown as visible escapes (\x1b, \u202e), so corpus text
    cannot drive the user's terminal; tabs and newlines are left to the caller.

    >>> printable("ok\x1b]0;pwned\x07 done")
    'ok\\x1b]0;pwned\\x07 done'
    """
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
