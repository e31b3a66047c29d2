"""Writes that fail part way (a full disk, a file-size limit, an I/O error) as one line saying
what failed and what to free: each writer that stages its output (the index folder's
transaction, a model folder, an export, `embed`'s output) removes what it staged, then raises
`WriteFailed` from `write_failed`; the CLI prints it as it prints every SemsearchError.

The three ways a failed write shows itself here: OSError from Python and numpy (numpy's
`tofile` gives no errno, only "N requested and M written"), sqlite3's OperationalError
("database or disk is full", "disk I/O error") and FAISS's RuntimeError ("write error in ...").
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

from semsearch.errors import WriteFailed

_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def write_failure(error: BaseException) -> str | None:
    """The cause of a failed write in a few words, or None when `error` is not one.

    >>> write_failure(OSError(errno.ENOSPC, "No space left on device"))
    'no space left on the device'
    >>> write_failure(ValueError("x")) is None
    True
    """
    if isinstance(error, shutil.Error):  # copytree's list of (source, target, why) it met
        causes = [str(entry[2]) for entry in error.args[0] if len(entry) == 3] \
            if error.args and isinstance(error.args[0], list) else [str(error)]
        written = [os.strerror(code) for code in (*_NO_SPACE, errno.EFBIG, errno.EIO)]
        hit = next((cause for cause in causes if any(text in cause for text in written)), None)
        return f"copying failed ({hit[-160:]})" if hit else None
    if isinstance(error, OSError):
        if error.errno in _NO_SPACE:
            return "no space left on the device"
        if error.errno == errno.EFBIG:
            return "the file-size limit (`ulimit -f`) was reached"
        if error.errno is None and "written" in str(error):
            return f"a short write ({error}): the disk is full or a file-size limit was reached"
        if error.errno in (errno.EIO, errno.EROFS, errno.EACCES, errno.EPERM):
            return error.strerror or str(error)
        return None
    if isinstance(error, sqlite3.OperationalError):
        text = str(error)
        if "full" in text or "disk" in text or "I/O" in text:
            return f"the document store could not be written ({text})"
        return None
    if isinstance(error, RuntimeError) and "write error" in str(error):
        detail = str(error).rsplit("write error", 1)[-1].strip(" :")
        return f"the FAISS index could not be written ({detail[-160:]})"
    return None


def write_failed(error: BaseException, target: Path, kept: str) -> WriteFailed | None:
    """A WriteFailed for `error` (None when it is no failed write): what failed writing `target`,
    what to free, and what was `kept` (e.g. "the previous version is untouched")."""
    reason = write_failure(error)
    if reason is None:
        return None
    where = Path(target).resolve().parent
    return WriteFailed(
        f"writing {target} failed: {reason}; free space on the disk holding {where} (`df -h "
        f"{where}`) or raise the file-size limit (`ulimit -f`), then run again; {kept}"
    )
