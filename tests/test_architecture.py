"""Dependencies point inward: scoring imports neither bot, worker, talenthome, aiohttp, arq nor wechatpy;
bot and worker do not import each other (the worker's push module is the one the CLI may share)."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "scoring": {"bot", "worker", "talenthome", "aiohttp", "arq", "wechatpy"},
    "bot": {"worker", "talenthome"},
    "worker": {"bot", "talenthome"},
}


def imported_roots(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_dependencies_point_inward() -> None:
    offences = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            bad = imported_roots(path) & forbidden
            if bad:
                offences.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert offences == []


def test_no_update_or_delete_of_ledger_entries() -> None:
    """Entries are append-only: no code issues UPDATE or DELETE on the entries table."""
    needles = ("update(Entry", "delete(Entry", "UPDATE entries", "DELETE FROM entries", "update(models.Entry")
    offences = []
    for package in ("scoring", "bot", "worker", "talenthome"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            offences += [f"{path.relative_to(ROOT)}: {n}" for n in needles if n in text]
    assert offences == []
