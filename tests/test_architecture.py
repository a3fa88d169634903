"""Dependencies point inward: scoring imports neither bot, worker, talenthome, aiohttp, arq nor wechatpy;
scoring/facts (the rules) not even redis; bot and worker do not import each other (the worker's push module
is the one the CLI may share)."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "scoring": {"bot", "worker", "talenthome", "aiohttp", "arq", "wechatpy"},
    "bot": {"worker", "talenthome"},
    "worker": {"bot", "talenthome"},
    "web": {"bot", "worker", "talenthome", "wechatpy"},
    # the rules: no transport at all (no WeChat, no HTTP, no queue, no Redis), only the domain
    "scoring/facts": {"bot", "worker", "talenthome", "web", "aiohttp", "arq", "wechatpy", "redis", "httpx"},
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


def _py_files(*parts: str) -> list[pathlib.Path]:
    out: list[pathlib.Path] = []
    for part in parts:
        target = ROOT / part
        out += sorted(target.rglob("*.py")) if target.is_dir() else [target]
    return out


def test_no_import_by_name_in_the_bot_or_the_cli() -> None:
    """Routers and commands are written-out lists: a missing module is an ImportError at start, and static
    tools can follow every import. No importlib / __import__ in bot/ or talenthome/."""
    offences = []
    for path in _py_files("bot", "talenthome"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n.split(".")[0] == "importlib" for n in names) or \
                    (isinstance(node, ast.Name) and node.id == "__import__"):
                offences.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offences == []


def test_every_handler_module_is_routed_and_no_word_twice() -> None:
    """Every area module under bot/handlers/ is in the root router's written-out list, and no word, event
    or scene is registered by two areas (so the list's order cannot change who answers)."""
    import sys
    from collections import Counter

    from bot.handlers import ROUTERS

    areas = sorted(p.stem for p in (ROOT / "bot" / "handlers").glob("*.py") if p.stem != "__init__")
    unrouted = [a for a in areas if getattr(sys.modules.get(f"bot.handlers.{a}"), "router", None) not in ROUTERS]
    assert unrouted == []
    keys = Counter(k for router in ROUTERS for k in [*router.words, *router.events, *router.scenes])
    assert [k for k, n in keys.items() if n > 1] == []


def test_the_bot_asks_the_domain_about_staff_and_audit() -> None:
    """Roles and the audit trail are the domain's (scoring/staff.py): no module of the bot imports the
    Staff or AuditLog models, so none can query staff or write an audit row itself."""
    offences = []
    for path in _py_files("bot"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "scoring.models":
                offences += [f"{path.relative_to(ROOT)} imports {a.name}" for a in node.names
                             if a.name in ("Staff", "AuditLog", "*")]
            elif isinstance(node, ast.Attribute) and node.attr in ("Staff", "AuditLog") \
                    and isinstance(node.value, ast.Name) and node.value.id == "models":
                offences.append(f"{path.relative_to(ROOT)} uses models.{node.attr}")
    assert offences == []


def test_job_ids_come_from_the_domain() -> None:
    """A job id is a contract (the de-duplication of retries and the sweeper rest on it): the bot takes it
    from a function next to the fact in scoring/ (or the outcome's `job_id`), never an f-string of its own."""
    offences = []
    for path in _py_files("bot"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg in ("job_id", "_job_id") \
                    and isinstance(node.value, ast.JoinedStr | ast.BinOp | ast.Constant):
                offences.append(f"{path.relative_to(ROOT)}:{node.value.lineno}")
    assert offences == []


def test_one_engine_factory() -> None:
    """Engines are made in one place, scoring/db.py::make_engine (pragmas, BEGIN IMMEDIATE, pools): nothing
    else in the code or the benchmarks calls SQLAlchemy's create_engine / create_async_engine."""
    offences = []
    for path in _py_files("bot", "scoring", "worker", "talenthome", "migrations", "bench"):
        if path == ROOT / "scoring" / "db.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = node.func.attr if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) else \
                node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else ""
            if name in ("create_engine", "create_async_engine"):
                offences.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offences == []


def test_the_window_holds_no_sql() -> None:
    """web/ (the API and pages) reads and writes through scoring/ only: no module of it imports SQLAlchemy
    (web/deps.py names the session factory's type in its Protocol, nothing else) or scoring.models;
    a unit of work is scoring.db.transaction around domain calls."""
    offences = []
    for path in _py_files("web"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for name in names:
                if name.split(".")[0] == "sqlalchemy" and path.name != "deps.py":
                    offences.append(f"{path.relative_to(ROOT)} imports {name}")
                if name == "scoring.models":
                    offences.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offences == []


def test_the_window_imports_scoring_and_is_mounted_by_the_bot() -> None:
    """web/ is on the domain (scoring/) and the bot's composition root mounts it: bot/app.py calls
    web.app.setup, so the API and pages share the /wechat port."""
    assert "scoring" in set().union(*(imported_roots(p) for p in _py_files("web")))
    assert "web" in imported_roots(ROOT / "bot" / "app.py")


def test_only_the_rules_write_entries() -> None:
    """Every entry is written by a rule: ledger.post and ledger.reverse are called from scoring/facts/ only
    (and the ledger itself), so each rule's recipe lives in its fact module and nowhere else."""
    offences = []
    for path in _py_files("scoring", "bot", "worker", "talenthome", "web"):
        rel = path.relative_to(ROOT)
        if rel.parts[:2] == ("scoring", "facts") or rel == pathlib.Path("scoring/ledger.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "scoring.ledger":
                offences += [f"{rel} imports {a.name}" for a in node.names if a.name in ("post", "reverse")]
            elif isinstance(node, ast.Attribute) and node.attr in ("post", "reverse") \
                    and isinstance(node.value, ast.Name) and node.value.id == "ledger":
                offences.append(f"{rel}:{node.lineno} ledger.{node.attr}")
    assert offences == []
