"""How every entry point fails: one clear line and exit status 2 for bad input, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable


class UserError(Exception):
    """Bad input a user can fix (config, file, game): reported as one line, exit status 2."""


def run_main(main: Callable[[list[str]], object], argv: list[str] | None = None) -> None:
    """Run `main(argv)` and turn a `UserError` into `error: ...` on stderr and exit status 2."""
    try:
        main(sys.argv[1:] if argv is None else argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: the newest checkpoint and every finished file are intact", file=sys.stderr)
        sys.exit(130)


def require_extra(extra: str, purpose: str, *modules: str) -> None:
    """Refuse in one line, naming the install command, when an optional extra's modules are missing."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            raise UserError(
                f"{purpose} needs the '{extra}' extra ({module} is not installed): "
                f"pip install -e '.[{extra}]' -c constraints.txt"
            ) from None
