"""End-to-end tests use the bot harness of tests/bot (a real server on loopback) and the worker's burst runner."""

from tests.bot.conftest import safe_bot  # noqa: F401  (a fixture, re-exported for this folder)
