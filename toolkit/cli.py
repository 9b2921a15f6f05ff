"""How every entry point fails: one clear line and a non-zero exit status for bad input or a fault (a full disk,
SIGTERM, Ctrl-C), never a traceback; what was written before is kept and the same command resumes."""

from __future__ import annotations

import errno
import signal
import sys
from collections.abc import Callable
from types import FrameType

# Errors of a write that found no room: a full file system, or a user's quota spent.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
RESUME = "rerun the same command to resume"


class UserError(Exception):
    """Bad input a user can fix (config, file, game), or a fault they can clear: one line, exit status 2."""


class Terminated(BaseException):
    """SIGTERM arrived (`kill`, Slurm's time limit, a preemption): unwinds like Ctrl-C, so every `finally` runs,
    temporary files go and locks are released, then the process exits 143."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def no_space(where: object) -> UserError:
    """The one line of a write that found the disk full."""
    return UserError(f"the disk of {where} is full: files written before are kept; free space, then {RESUME}")


def run_main(main: Callable[[list[str]], object], argv: list[str] | None = None) -> None:
    """Run `main(argv)`; a `UserError` or a full disk becomes `error: ...` on stderr and exit status 2, SIGTERM
    and Ctrl-C one line saying how to resume (exit 143 and 130)."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        main(sys.argv[1:] if argv is None else argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        if err.errno not in NO_SPACE:
            raise
        print(f"error: {no_space(err.filename or 'this run')}", file=sys.stderr)
        sys.exit(2)
    except Terminated:
        print(
            f"terminated (SIGTERM): the newest checkpoint and every finished file are intact; {RESUME}", file=sys.stderr
        )
        sys.exit(128 + signal.SIGTERM)
    except KeyboardInterrupt:
        print(f"interrupted: the newest checkpoint and every finished file are intact; {RESUME}", file=sys.stderr)
        sys.exit(130)


# Where the kernel counts the processes its OOM killer ended in this cgroup: cgroup v2, then v1.
OOM_COUNTERS = ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control")


def oom_kills() -> int | None:
    """How many processes of this cgroup the OOM killer has ended, or None where the kernel does not say."""
    for path in OOM_COUNTERS:
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return None


def exit_reason(code: int, oom_kills_before: int | None) -> str:
    """A child's exit status in words: a SIGKILL is named the OOM killer's when the kernel's count rose."""
    if code >= 0:
        return f"exit {code}"
    name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
    if code != -signal.SIGKILL:
        return f"killed by {name}"
    now = oom_kills()
    if now is not None and oom_kills_before is not None and now > oom_kills_before:
        return "killed by the kernel's OOM killer: out of memory (exit -9)"
    return "killed by SIGKILL (exit -9): when no one sent it, the kernel's OOM killer did, out of memory (see dmesg)"


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
