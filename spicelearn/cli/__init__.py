"""Command line: ``spicelearn <command>``, one module per command group, registered explicitly.

Each module in :data:`COMMAND_MODULES` defines ``register(subparsers)``, which adds
its parsers with ``set_defaults(func=...)``, where ``func(args) -> int``. Heavy
imports (xarray, scipy, PySpice, matplotlib) happen inside the commands, so
``spicelearn --help`` stays quick. Every :class:`~spicelearn.errors.SpicelearnError`
ends the command with a one-line message and exit status 2; no traceback.
SIGTERM is turned into the same clean stop as Ctrl-C, so no partial file is left.
"""

from __future__ import annotations

import argparse
import signal
import sys

from ..errors import SpicelearnError
from ..progress import request_stop
from . import compare, figure, kicad, run, spice, sweep, validate

__all__ = ["main", "build_parser", "COMMAND_MODULES"]

#: The command groups, in the order of ``spicelearn --help``.
COMMAND_MODULES = (run, sweep, compare, validate, spice, kicad, figure)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="spicelearn", description="Physical learning in resistor networks")
    parser.add_argument("--version", action="version", version=f"spicelearn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def _terminate(signum, frame):
    request_stop()  # (in case the exception below is swallowed: the next progress update raises it again)
    raise KeyboardInterrupt


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.func(args) or 0)
    except SpicelearnError as exc:  # one line (ngspice's own report runs over several)
        print("spicelearn: error: " + "; ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip()),
              file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"spicelearn: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spicelearn: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        request_stop(False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
