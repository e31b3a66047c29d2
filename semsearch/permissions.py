"""The mode of the files semsearch writes: what `open()` would give them under the user's umask.

Atomic writers make a private temporary first (`mkstemp` and `mkdtemp` create 0600 / 0700, and
the safetensors writer 0600 too) and rename it into place, which keeps that private mode; a model
shared with another user or a container of another uid then cannot be read. Each writer calls
`set_default_mode` on its temporary before the rename, so the mode never depends on a library's
choice.
"""

from __future__ import annotations

import os
from pathlib import Path


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back).

    >>> old = os.umask(0o027); current_umask() == 0o027 and os.umask(old) == 0o027
    True
    """
    mask = os.umask(0)
    os.umask(mask)
    return mask


def set_default_mode(path: str | Path) -> None:
    """Give `path` the mode a new file (0666) or folder (0777) gets under the umask; a folder's
    contents are left as they are."""
    path = Path(path)
    base = 0o777 if path.is_dir() else 0o666
    os.chmod(path, base & ~current_umask())
