"""Dependencies point inward: scoring imports neither bot, worker, talenthome, aiohttp, arq nor wechatpy;
scoring/facts (the rules) not even redis; bot and worker do not import each other (the worker's push module
is the one the CLI may share)."""

from __future__ import annotations

import ast
import pathlib
import re

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


# -- Every sentence a person reads is in a texts module (issue 10) -----------------------------------------------

CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]")
# the texts modules: the bot's and the window's, and the scoring core's package, one module per audience
# (scoring/texts/talent.py, operator.py, admin.py) and the labels they share (scoring/texts/labels.py)
TEXTS_MODULES = {"bot/texts.py", "web/texts.py", "scoring/texts/__init__.py", "scoring/texts/labels.py",
                 "scoring/texts/talent.py", "scoring/texts/operator.py", "scoring/texts/admin.py"}
SCANNED = ("scoring", "bot", "worker", "web", "talenthome")
MOVES = "sentences to move to the audience's texts module"
# path -> (most CJK literals allowed, or None for data of any size; reason). A sentence-holding file has a
# ceiling, so a NEW sentence fails here; lower the ceiling (or drop the line) as sentences move out.
CJK_ALLOWED: dict[str, tuple[int | None, str]] = {
    # data: names, categories, districts, column headers, demo content
    "scoring/rules.py": (None, "data: media levels (中央, 省级, 市级, ...) the operator types"),
    "scoring/imports.py": (None, "data: station kinds and types, city-wide words in imported files"),
    "scoring/services.py": (None, "data: the words of the service-list import (全市, 可预约, ...)"),
    "scoring/exports.py": (None, "data: Excel sheet titles and column headers"),
    "talenthome/demo.py": (None, "data: the demo city (stations, talents, activities)"),
    "talenthome/demo_services.py": (None, "data: the demo city's service lists"),
    "talenthome/commands/demo.py": (None, "data: the demo's scripted messages"),
    "talenthome/commands/data.py": (None, "data: imports and sample files of the shell"),
    "talenthome/commands/gifts.py": (None, "data: the shell's gift catalogue commands and samples"),
    # input patterns: what people type, not what they read
    "scoring/accounts.py": (1, "input pattern: the middle dots of a name"),
    "scoring/satisfaction.py": (2, "input pattern of a 1-5 answer; '无' as an empty comment"),
    "bot/handlers/survey.py": (1, "input pattern of a 1-5 answer"),
    "scoring/bookings.py": (5, "input: relative day words (今天, 明天, 后天) and date/time patterns"),
    "scoring/consultations.py": (1, "input pattern: the full-width # of a consultation number"),
    "bot/router.py": (2, "the word 扫码 the router prefixes to a scan"),
    # the shell's own output and help (an operator of the system reads them, in a terminal)
    "talenthome/commands/admin.py": (2, "shell: help example and the 导出 word it dispatches"),
    "talenthome/commands/boards.py": (1, "shell: the audit row's command text"),
    "talenthome/commands/calendar.py": (1, "shell: the audit row's command text"),
    "talenthome/commands/service.py": (1, "shell: start-up help"),
    "talenthome/commands/services.py": (6, "shell: import summary; " + MOVES),
    "talenthome/commands/tools.py": (2, "shell: the local chat's help and prompt"),
}


def _cjk_literals(path: pathlib.Path) -> list[int]:
    """Line numbers of str constants holding CJK, leaving out docstrings and the words a router registers
    (decorator arguments: `@router.word("发布活动", ...)` is routing, not a sentence)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            skip.update(id(n) for d in node.decorator_list for n in ast.walk(d))
    return sorted(n.lineno for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                  and id(n) not in skip and CJK.search(n.value))


def test_only_texts_modules_hold_sentences() -> None:
    """CJK string literals live in the texts modules (one per audience), in tests, and in the listed data
    modules; a new sentence anywhere else, or one more in a listed file, fails here."""
    offences, stale = [], []
    for path in _py_files(*SCANNED):
        rel = str(path.relative_to(ROOT))
        if rel in TEXTS_MODULES:
            continue
        lines = _cjk_literals(path)
        limit, _reason = CJK_ALLOWED.get(rel, (0, ""))
        if limit is not None and len(lines) > limit:
            offences.append(f"{rel}: {len(lines)} CJK literals (allowed {limit}), lines {lines}")
        if rel in CJK_ALLOWED and not lines:
            stale.append(rel)
    stale += [p for p in CJK_ALLOWED if not (ROOT / p).exists()]
    assert offences == [], "move these sentences to a texts module (bot/texts.py, web/texts.py, scoring/texts/)"
    assert stale == [], "these hold no CJK literal any more: drop them from CJK_ALLOWED"


def test_the_scoring_texts_are_one_module_per_audience() -> None:
    """scoring/texts/ is a package of texts modules and nothing else: one per audience and the shared labels,
    each listed in TEXTS_MODULES (a new file there must be named, so no sentence hides in a helper)."""
    found = {str(p.relative_to(ROOT)) for p in (ROOT / "scoring" / "texts").glob("*.py")}
    assert found == {m for m in TEXTS_MODULES if m.startswith("scoring/texts/")}
    assert not (ROOT / "scoring" / "texts.py").exists()
