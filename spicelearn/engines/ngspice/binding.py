"""ngspice's shared library, in-process, through PySpice's ``NgSpiceShared``.

ngspice keeps global state, so one loaded library is one instance. A process has
at most two: the system library (instance 0) and a private copy of its file
(instance 1, loaded with ``RTLD_LOCAL | RTLD_DEEPBIND`` from a temporary copy that
is deleted at once). :func:`ngspice` hands them out; :class:`Session` wraps one
with checked commands (``ngSpice_Command`` keeps 1,023 characters of a line, and
PySpice's ``exec_command`` raises on ngspice's normal stop notes). Every call that can make
ngspice print holds SIGINT and SIGTERM until it returns (:func:`held_signals`).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import signal
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from ...errors import ConfigError, SpiceError

__all__ = ["Session", "ngspice", "worker", "held_signals", "DEBIAN_PACKAGES"]

DEBIAN_PACKAGES = "ngspice libngspice0 libngspice0-dev"
#: ``ngSpice_Command`` keeps the first 1,023 characters of a line (PySpice's ``MAX_COMMAND_LENGTH``).
_LINE = 1000
#: Signals whose Python handlers :func:`held_signals` holds while ngspice runs (the command line turns
#: SIGTERM into the KeyboardInterrupt of Ctrl-C).
_HELD = (signal.SIGINT, signal.SIGTERM)


_holding = False  # whether the main thread is inside held_signals


@contextmanager
def held_signals():
    """Hold SIGINT and SIGTERM while ngspice runs in the main thread; deliver them once it has returned.

    Python runs signal handlers in the main thread between bytecodes, and ngspice calls back into
    Python to print (PySpice's ``send_char``). A KeyboardInterrupt raised in that callback is printed
    and dropped by cffi, together with the line ngspice was printing: a Ctrl-C would then surface as
    a ``resume`` that "ended without reaching the next clock tick", or be lost. Here the Python
    handlers are swapped for one that notes the signal, and the noted signals go to the saved
    handlers after the block (the default SIGINT handler raises KeyboardInterrupt there). Other
    threads, which never run signal handlers, handlers that are not Python functions (``SIG_DFL``,
    ``SIG_IGN``) and blocks inside a block are left alone. The engine holds the signals for a whole
    tick (milliseconds; swapping the handlers costs ~30 us); each :class:`Session` call that can make
    ngspice print holds them too.
    """
    global _holding
    if _holding or threading.current_thread() is not threading.main_thread():
        yield
        return
    noted, saved = [], {}

    def note(signum, frame):
        noted.append(signum)

    for sig in _HELD:
        handler = signal.getsignal(sig)
        if callable(handler):
            saved[sig] = handler
            signal.signal(sig, note)
    _holding = True
    try:
        yield
    finally:
        _holding = False
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(noted):
            saved[sig](sig, None)


def _holding_signals(method):
    """Run ``method`` inside :func:`held_signals` (at once where the signals are held already)."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        if _holding:
            return method(*args, **kwargs)
        with held_signals():
            return method(*args, **kwargs)
    return wrapper


class Session:
    """One ngspice instance: PySpice's shared-library binding plus captured output lines.

    Parameters
    ----------
    copy_of : str, optional
        Path of the ngspice library to load a private copy of (a second instance
        with its own global state); default PySpice's library.
    """

    def __init__(self, copy_of: str | None = None):
        self.live = 0  # token of the engine state the loaded circuit is at (0: none)
        try:
            from PySpice.Spice.NgSpice.Shared import NgSpiceShared, ffi
        except ImportError as exc:
            raise SpiceError(f"the `ngspice` backend needs PySpice (pip install PySpice): {exc}") from None
        logging.getLogger("PySpice").setLevel(logging.CRITICAL)  # ngspice's lines are surfaced in SpiceError
        lines = self.lines = []

        class _Shared(NgSpiceShared):
            def send_char(self, message, ngspice_id):
                lines.append(message)
                return 0

            if copy_of is not None:
                def _load_library(self, verbose):  # PySpice's own would declare the C API to cffi twice
                    self._ngspice_shared = _dlopen_copy(ffi, copy_of)

        try:
            self.shared = _Shared(ngspice_id=0 if copy_of is None else 1)
        except OSError as exc:
            raise SpiceError(f"cannot load ngspice's shared library ({exc}); install the Debian packages "
                             f"{DEBIAN_PACKAGES} (`make system`), or set NGSPICE_LIBRARY_PATH") from None
        except AttributeError as exc:  # cffi: a library that lacks ngspice's functions
            where = os.environ.get("NGSPICE_LIBRARY_PATH", "PySpice's default library")
            raise SpiceError(f"{where} is not ngspice's shared library ({str(exc).split(':')[0]}); point "
                             "NGSPICE_LIBRARY_PATH at libngspice.so or unset it") from None
        self.ffi = ffi
        self.lib = self.shared._ngspice_shared

    @_holding_signals
    def command(self, text: str, *, allow: tuple = ()) -> list:
        """Run one ngspice command; raise :class:`SpiceError` on its error lines.

        Unlike PySpice's ``exec_command``, stderr lines that are part of normal
        operation (the stop and pause notes of ``resume``) do not raise.
        """
        _check_length(text)
        del self.lines[:]
        rc = self.lib.ngSpice_Command(text.encode("ascii"))
        out = list(self.lines)
        if rc or any(_is_error(ln) and not any(a in ln for a in allow) for ln in out):
            raise SpiceError(f"ngspice command `{text[:80]}` failed:\n" + _report(out))
        return out

    @_holding_signals
    def commands(self, texts) -> None:
        """Run many commands that print nothing when they work (``alter``); check ngspice's lines once.

        The commands are joined with ``;`` into lines of at most ``_LINE`` characters: one
        ``ngSpice_Command`` call per line instead of per command.
        """
        del self.lines[:]
        run = self.lib.ngSpice_Command
        for line in _join(texts):
            if run(line.encode("ascii")):
                raise SpiceError(f"ngspice command line `{line[:80]}` failed:\n" + _report(self.lines))
        if any(_is_error(ln) for ln in self.lines):
            raise SpiceError(f"ngspice rejected one of {len(texts)} commands such as `{texts[0][:80]}`:\n"
                             + _report(self.lines))

    @_holding_signals
    def breakpoint(self, t: float) -> None:
        """Plant a breakpoint at ``t`` seconds in the running transient (``ngSpice_SetBkpt``)."""
        del self.lines[:]
        if not self.lib.ngSpice_SetBkpt(t):
            raise SpiceError(f"ngspice cannot set a breakpoint at t = {t!r} s:\n" + _report(self.lines))

    @_holding_signals
    def load(self, text: str) -> None:
        """Load a netlist (``ngSpice_Circ``); raise :class:`SpiceError` with ngspice's lines if it does not parse."""
        ffi = self.ffi
        keep = [ffi.new("char[]", ln.encode("ascii")) for ln in text.splitlines() if ln.strip()]
        arr = ffi.new("char *[]", keep + [ffi.NULL])
        del self.lines[:]
        rc = self.lib.ngSpice_Circ(arr)
        if rc or any(_is_error(ln) for ln in self.lines):
            raise SpiceError("ngspice cannot load the circuit:\n" + _report(self.lines))

    def vector_names(self) -> set:
        """Names of the vectors of the current plot."""
        ffi = self.ffi
        plot = self.lib.ngSpice_CurPlot()
        vecs = self.lib.ngSpice_AllVecs(plot)
        names, i = set(), 0
        while vecs[i] != ffi.NULL:
            names.add(ffi.string(vecs[i]).decode())
            i += 1
        return names

    def check_vectors(self, names) -> None:
        """Raise :class:`SpiceError` unless every named vector exists in the current plot.

        Reading a vector that does not exist would dereference NULL and kill the process.
        """
        have = self.vector_names()
        missing = [n for n in names if n not in have]
        if missing:
            raise SpiceError(f"ngspice has no vector {missing[0]!r} in its current plot "
                             f"(it has {len(have)}: {', '.join(sorted(have)[:12])}{' ...' if len(have) > 12 else ''})")

    def last_values(self, names: list) -> np.ndarray:
        """Last sample of each vector (cffi ``char[]`` names, checked with :meth:`check_vectors`)."""
        out = np.empty(len(names))
        get = self.lib.ngGet_Vec_Info
        for i, name in enumerate(names):
            info = get(name)
            out[i] = info.v_realdata[info.v_length - 1]
        return out

    def vector_length(self, name) -> int:
        """Samples in a vector (a cffi ``char[]`` name, checked with :meth:`check_vectors`)."""
        return int(self.lib.ngGet_Vec_Info(name).v_length)

    @_holding_signals
    def reset(self) -> None:
        """Forget old circuits, plots and the command history (quietly: there may be none)."""
        for text in (b"destroy all", b"remcirc"):
            self.lib.ngSpice_Command(text)
        self.live = 0
        self.lib.ngSpice_Command(self.ffi.NULL)
        del self.lines[:]


def _join(texts, limit: int = _LINE):
    """Commands joined with ``"; "`` into lines of at most ``limit`` characters."""
    line = ""
    for text in texts:
        _check_length(text, limit)
        if line and len(line) + 2 + len(text) > limit:
            yield line
            line = text
        else:
            line = f"{line}; {text}" if line else text
    if line:
        yield line


def _check_length(text: str, limit: int = _LINE) -> None:
    """A longer line would be cut by ``ngSpice_Command`` (and can corrupt ngspice's memory)."""
    if len(text) > limit:
        raise SpiceError(f"ngspice command of {len(text)} characters (at most {limit} are safe): `{text[:60]} ...`")


def _library_file() -> str | None:
    """Path of the ngspice library this process has loaded (from ``/proc/self/maps``), or None."""
    try:
        with open("/proc/self/maps") as fh:
            for row in fh:
                parts = row.split(maxsplit=5)
                if len(parts) == 6 and "libngspice" in os.path.basename(parts[5].strip()):
                    return parts[5].strip()
    except OSError:
        pass
    return None


def _dlopen_copy(ffi, path: str):
    """Load a private copy of the library at ``path`` (its own globals: a second ngspice instance)."""
    fd, tmp = tempfile.mkstemp(prefix="spicelearn-libngspice-", suffix=".so")
    try:
        with os.fdopen(fd, "wb") as dst, open(path, "rb") as src:
            shutil.copyfileobj(src, dst)
        flags = ffi.RTLD_NOW | ffi.RTLD_LOCAL | getattr(ffi, "RTLD_DEEPBIND", 0)
        return ffi.dlopen(tmp, flags)
    finally:
        os.unlink(tmp)  # the mapping outlives the file


def _strip(line: str) -> str:
    return line.partition(" ")[2] if line.startswith(("stdout ", "stderr ")) else line


def _report(lines: list) -> str:
    """ngspice's lines from its first error on, without its warnings and gmin-stepping notes."""
    text = [_strip(ln).rstrip() for ln in lines]
    first = next((i for i, ln in enumerate(text) if _is_error(ln) and not ln.startswith(("Warning", "Trying"))), 0)
    keep = [ln for ln in text[first:] if not ln.lstrip().startswith(("Warning", "Trying", "Note"))]
    return "\n".join(keep[:12] or text[:12])


def _is_error(line: str) -> bool:
    low = line.lower()
    return any(k in low for k in ("error", "aborted", "too small", "not found", "singular", "cannot", "unknown"))


_SESSIONS: dict = {}
_WORKER: ThreadPoolExecutor | None = None


def ngspice(instance: int = 0) -> Session:
    """The process's ngspice instance (created on first use).

    ``instance`` 0 is PySpice's library; 1 is a private copy of it, for running the second twin
    in parallel (raises :class:`SpiceError` where no copy can be loaded).
    """
    if instance not in (0, 1):
        raise ConfigError(f"`instance` must be 0 or 1, got {instance!r}")
    if instance not in _SESSIONS:
        if instance == 0:
            _SESSIONS[0] = Session()
        else:
            ngspice(0)  # loaded first: the copy is made of the file the process loaded
            path = _library_file()
            if path is None:
                raise SpiceError("cannot find the file of the loaded ngspice library to load a second instance")
            try:
                _SESSIONS[1] = Session(copy_of=path)
            except (OSError, SpiceError) as exc:
                raise SpiceError(f"cannot load a second ngspice instance from a copy of {path}: {exc}") from None
    return _SESSIONS[instance]


def worker() -> ThreadPoolExecutor:
    """The thread that drives ngspice instance 1."""
    global _WORKER
    if _WORKER is None:
        _WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spicelearn-ngspice-1")
    return _WORKER


def _forget_worker() -> None:
    """In a forked child: the parent's worker thread does not exist there (its executor would hang)."""
    global _WORKER
    _WORKER = None
    for session in _SESSIONS.values():
        session.live = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_worker)


