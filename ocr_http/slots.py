"""The CGI's cap on concurrent recognitions: one of N slot files, held with ``flock``.

A CGI hit that is about to recognise takes a slot and keeps it until the process ends; the
kernel drops an ``flock`` when its holder exits, however it exits (``os._exit``, a watchdog,
``kill -9``), so a crashed hit never leaks a slot and there is no state to repair. When all N
are held the hit answers ``503 busy`` at once instead of adding one more process' worth of
memory: N bounds what the CGI can use in total (README, "Bounds").
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator

from ocr_core.errors import ErrorCode, OcrError


def _slot_dir(path: str) -> str:
    """The directory, made private to this user if missing; refused if anyone else could plant
    files in it (it may sit in a shared /tmp)."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise OcrError(ErrorCode.INTERNAL, f"the server is misconfigured: cannot create the CGI slot "
                                           f"directory ({exc.strerror})") from None
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise OcrError(ErrorCode.INTERNAL, "the server is misconfigured: the CGI slot directory is not a "
                                           "directory owned by the CGI's user and writable only by it")
    return path


def take_slot(directory: str, count: int) -> int | None:
    """The descriptor of a slot now held by this process, or None when all ``count`` are taken.

    Starts at a pid-dependent slot so that concurrent hits do not all contend for slot 0.
    """
    base = _slot_dir(directory)
    start = os.getpid() % count
    for i in range(count):
        path = os.path.join(base, f"slot-{(start + i) % count}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return fd
    return None


@contextlib.contextmanager
def recognition_slot(directory: str, count: int) -> Iterator[None]:
    """Hold a slot for the block (no cap when ``count`` is 0); ``busy`` when none is free."""
    if count <= 0:
        yield
        return
    fd = take_slot(directory, count)
    if fd is None:
        raise OcrError(ErrorCode.BUSY, f"all {count} recognition slots of this server are in use; "
                                       "retry shortly")
    try:
        yield
    finally:
        os.close(fd)
