"""Expected failures of any `talenthome` command, each turned into one line that says what is wrong and what
to do (no traceback) and a non-zero exit status. A failure not listed here is a bug and keeps its traceback."""

from __future__ import annotations

import errno
import re

from pydantic import ValidationError

from talenthome.servers import ServerUnavailable

# Exit statuses: 2 bad input (CliError, argparse), 3 configuration, 4 a service we need is unavailable,
# 130 interrupted (Ctrl-C), 141 output pipe closed (as a shell reports SIGPIPE).
EXIT_CONFIG = 3
EXIT_SERVICE = 4
EXIT_INTERRUPTED = 130
EXIT_PIPE = 141


def hide_password(text: str) -> str:
    """A URL (or a message quoting one) with its password masked: `user:***@`, `:***@` (Redis), and a
    `password=` query parameter."""
    text = re.sub(r"(://[^:/@\s]*:)\S*@", r"\1***@", text)
    return re.sub(r"([?&]password=)[^&\s]*", r"\1***", text, flags=re.IGNORECASE)


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0]


def settings_problem(err: ValidationError) -> str:
    first = err.errors()[0] if err.errors() else {}
    name = ".".join(str(x) for x in first.get("loc", ())).upper() or "a setting"
    value = first.get("input")
    shown = "" if value is None or "SECRET" in name or "TOKEN" in name or "KEY" in name else f"={value!r}"
    return (f"bad configuration: {name}{shown}: {first.get('msg', 'invalid value')}; "
            "fix it in the environment or in .env")


def describe(exc: BaseException) -> tuple[str, int] | None:
    """One line and an exit status for an expected failure, or None for a bug."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

    if isinstance(exc, ValidationError):
        return settings_problem(exc), EXIT_CONFIG
    if isinstance(exc, ServerUnavailable):
        return f"{exc}", EXIT_SERVICE
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
        return (f"cannot reach Redis ({_first_line(str(exc))}): check REDIS_URL, or unset it to use the private "
                "Redis under ./var"), EXIT_SERVICE
    if isinstance(exc, (NoSuchModuleError, ArgumentError)):
        return (f"bad DATABASE_URL ({_first_line(str(exc))}): use sqlite+aiosqlite:///path or "
                "postgresql+asyncpg://user:pass@host/db"), EXIT_CONFIG
    if isinstance(exc, (OperationalError, DBAPIError)):
        text = hide_password(_first_line(str(getattr(exc, "orig", None) or exc)))
        if "no such table" in text or ("relation" in text and "does not exist" in text):
            return f"database error: no tables yet ({text}): run `talenthome migrate` first", EXIT_SERVICE
        return (f"database error ({text}): check DATABASE_URL and that the database server is "
                "running"), EXIT_SERVICE
    if isinstance(exc, OSError):
        if exc.errno == errno.EADDRINUSE:
            where = re.search(r"\('([^']+)', (\d+)\)", str(exc))
            port = f" {where.group(1)}:{where.group(2)}" if where else ""
            return (f"the address{port} is already in use (another talenthome or program listens there): stop it "
                    "or set BOT_PORT to a free port"), EXIT_SERVICE
        if isinstance(exc, ConnectionError) or exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH,
                                                              errno.ETIMEDOUT, errno.ENETUNREACH):
            return (f"cannot reach the database ({hide_password(_first_line(str(exc)))}): check DATABASE_URL "
                    "and that the database server is running"), EXIT_SERVICE
        if exc.filename is not None:
            return (f"cannot use {exc.filename}: {exc.strerror or exc}; check the path (DATABASE_URL for the "
                    "database) and its permissions"), EXIT_SERVICE
    return None
