"""Writing files atomically: a reader sees the old file or the whole new one, never a part.

Every writer of spicelearn goes through :func:`atomic_write`: the new content is
written to a temporary file in the target's folder, flushed to disk, and renamed
over the target only when complete. An error, Ctrl-C or SIGTERM while writing
(the command line turns SIGTERM into an exception, so ``finally`` runs) leaves
the old file as it was and no temporary file behind.
"""

from __future__ import annotations

import os
import signal
import stat
import tempfile
import threading
from contextlib import contextmanager

from .checks import text_or_path
from .errors import ConfigError

__all__ = ["atomic_write", "atomic_path", "check_target", "make_folder"]


def make_folder(path, what: str = "--out-dir") -> str:
    """The folder ``path`` (created, with its parents, where missing), as a string; an empty path, or one that is a
    file, is one error naming ``what``."""
    path = text_or_path(what, path, "a folder")
    if not path.strip():
        raise ConfigError(f"`{what}` is empty; give a folder")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"`{what}`={path!r} is a file, not a folder; give a folder (created if missing)")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"`{what}`={path!r}: cannot create the folder ({exc.strerror})") from None
    return path


def check_target(path, what: str = "output") -> str:
    """``path`` as a string, checked before any work: its folder exists and is writable, and it is
    not something other than a regular file (a device, a folder, a FIFO) that a rename would replace."""
    path = text_or_path(what, path, "a file name")
    if not path:
        raise ConfigError(f"`{what}` is empty; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(f"`{what}`={path!r}: {folder!r} is a file, not a folder" if os.path.exists(folder) else
                          f"`{what}`={path!r}: folder {folder!r} does not exist; create it first")
    if os.path.lexists(path):
        mode = os.stat(path).st_mode if os.path.exists(path) else os.lstat(path).st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
            raise ConfigError(f"`{what}`={path!r} exists and is {kind}; spicelearn replaces only regular files: "
                              "give another path")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"`{what}`={path!r}: folder {folder!r} is not writable")
    return path


#: The signals that stop a run (Ctrl-C; SIGTERM, which the command line turns into the same).
_INTERRUPTS = {signal.SIGINT, signal.SIGTERM}


def _hold_interrupts():
    """Hold Ctrl-C and SIGTERM back (the mask before), so that none lands between the creation of a temporary file
    and the code that removes it; None where signals cannot be held (not POSIX, or not the main thread)."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, _INTERRUPTS)


def _release(held) -> None:
    """Let the signals :func:`_hold_interrupts` held back through again (a pending one is handled now)."""
    if held is not None and not (_INTERRUPTS & held):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _INTERRUPTS)


@contextmanager
def atomic_path(path, what: str = "output", suffix: str = ".part"):
    """Context manager yielding a temporary path beside ``path``; renamed onto ``path`` on success.

    The target is checked first (:func:`check_target`). A symbolic link that points at a regular
    file is written through (its target is replaced), so a link stays a link.
    """
    path = check_target(path, what)
    target = os.path.realpath(path)
    folder = os.path.dirname(target)
    base = os.path.basename(target)
    tmp, held = None, _hold_interrupts()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=suffix, dir=folder)
        os.close(fd)
        _release(held)  # an interrupt that came meanwhile is raised here, where `finally` removes the file
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; an output file gets the usual permissions
        os.replace(tmp, target)
    except OSError as exc:
        if exc.errno == 28:  # ENOSPC
            raise ConfigError(f"`{what}`={path!r}: the disk is full; nothing was written "
                              f"(an existing file is unchanged)") from None
        raise
    finally:
        _release(held)
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path, text: str | bytes, what: str = "output") -> str:
    """Write ``text`` (str as UTF-8, or bytes) to ``path`` atomically; returns the path."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    with atomic_path(path, what) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return os.fspath(path)
