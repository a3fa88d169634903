"""Routing of incoming messages to handlers, aiogram-style.

A `Router` registers words (Chinese first, English alias; staff routers also accept `/word`), events and
QR scene prefixes; a role filter on a whole router (operator, admin) is checked once here, not in each
handler. Handlers receive a `Context` and, for words, the rest of the line; they return the reply text
(or None for no reply).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot import ratelimit, texts
from scoring import accounts, staff
from scoring.db import transaction
from scoring.models import Talent

if TYPE_CHECKING:
    from bot.app import Deps

log = logging.getLogger(__name__)

ROLES = ("talent", "operator", "admin")


@dataclass
class Incoming:
    """What a person sent, reduced to what routing needs; `raw` is wechatpy's parsed message."""

    openid: str
    kind: str  # text | event | other
    text: str = ""
    event: str = ""  # lower case: subscribe, scan, scancode_waitmsg, click, ...
    scene: str = ""  # a QR scene (SCAN / subscribe with qrscene_ / scancode ScanResult) or a menu key
    safe: bool = False  # arrived encrypted (safe mode)
    via: str = "wechat"  # wechat | cli (`talenthome admin`, actor cli:<user>)
    received_at: datetime | None = None
    raw: Any = None


@dataclass
class Context:
    deps: Deps
    incoming: Incoming
    _access: staff.Access | None = None
    _talent: Talent | bool | None = False

    @property
    def openid(self) -> str:
        return self.incoming.openid

    async def access(self) -> staff.Access:
        """The sender's roles and, for an operator, station (scoring.staff; asked once per message)."""
        if self._access is None:
            async with self.deps.sessions() as s:
                self._access = await staff.access_of(s, self.openid, self.deps.settings.admin_openid_set,
                                                     shell=self.incoming.via == "cli")
        return self._access

    async def talent(self) -> Talent | None:
        if self._talent is False:
            async with self.deps.sessions() as s:
                self._talent = await accounts.talent_by_openid(s, self.openid)
        return self._talent  # type: ignore[return-value]

    async def roles(self) -> frozenset[staff.Role]:
        return (await self.access()).roles


Handler = Callable[..., Awaitable[str | None]]


@dataclass
class Route:
    handler: Handler
    router: Router
    changes_state: bool = True


@dataclass
class Router:
    """`roles`: who may use this router's words and scenes (any of them); None = everyone."""

    name: str
    roles: frozenset[str] | None = None
    words: dict[str, Route] = field(default_factory=dict)
    events: dict[str, Route] = field(default_factory=dict)
    scenes: dict[str, Route] = field(default_factory=dict)
    patterns: list[tuple[re.Pattern[str], Route]] = field(default_factory=list)
    children: list[Router] = field(default_factory=list)

    def word(self, *names: str, changes_state: bool = True) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            for n in names:
                self.words[n.lower()] = Route(fn, self, changes_state)
            return fn
        return deco

    def event(self, *names: str) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            for n in names:
                self.events[n.lower()] = Route(fn, self)
            return fn
        return deco

    def scene(self, *prefixes: str) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            for p in prefixes:
                self.scenes[p] = Route(fn, self)
            return fn
        return deco

    def pattern(self, regex: str) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.patterns.append((re.compile(regex, re.S), Route(fn, self)))
            return fn
        return deco

    def include_router(self, child: Router) -> Router:
        self.children.append(child)
        return child

    def all_routers(self) -> Iterable[Router]:
        yield self
        for c in self.children:
            yield from c.all_routers()


class Dispatcher:
    """Finds the route for an incoming message, applies the role filter, runs the handler."""

    def __init__(self, root: Router):
        self.words: dict[str, Route] = {}
        self.events: dict[str, Route] = {}
        self.scenes: dict[str, Route] = {}
        self.patterns: list[tuple[re.Pattern[str], Route]] = []
        for r in root.all_routers():
            self.words.update(r.words)
            self.events.update(r.events)
            self.scenes.update(r.scenes)
            self.patterns.extend(r.patterns)

    @staticmethod
    def split(text: str) -> tuple[str, str]:
        text = text.strip()
        parts = text.split(None, 1)
        if not parts:
            return "", ""
        head, rest = parts[0], parts[1] if len(parts) > 1 else ""
        return head, rest

    def _word_route(self, text: str) -> tuple[str, Route, str] | None:
        head, rest = self.split(text)
        key = head.lower()
        # Staff commands have two-word English forms: "/activity new ..." or "/station add ...".
        sub_head, sub_rest = self.split(rest)
        if sub_head and f"{key} {sub_head.lower()}" in self.words:
            return f"{head} {sub_head}", self.words[f"{key} {sub_head.lower()}"], sub_rest
        # "word *": the word with arguments belongs to another router than the bare word (解绑 / 解绑 <cert_no>).
        if rest and f"{key} *" in self.words:
            return head, self.words[f"{key} *"], rest
        if key in self.words:
            return head, self.words[key], rest
        return None

    async def _allowed(self, ctx: Context, route: Route) -> bool:
        roles = route.router.roles
        return roles is None or bool(roles & await ctx.roles())

    async def _staff_call(self, ctx: Context, route: Route, command: str,
                          call: Callable[[], Awaitable[str | None]], word: str = "") -> str | None:
        """A staff route: role filter, the safe-mode rule for state-changing commands, and the audit row."""
        assert route.router.roles is not None
        if not await self._allowed(ctx, route):
            reply: str | None = texts.NOT_ALLOWED.format(word=word or self.split(command)[0] or "扫码")
            if route.changes_state:
                await self._audit(ctx, route, command, "refused: role", refused=True)
            return reply
        inc = ctx.incoming
        if route.changes_state and inc.via == "wechat" and not inc.safe \
                and not ctx.deps.settings.allow_plain_staff_commands:
            await self._audit(ctx, route, command, "refused: plain mode", refused=True)
            return texts.PLAIN_MODE_REFUSED
        reply = await call()
        if route.changes_state:
            await self._audit(ctx, route, command, reply or "")
        return reply

    async def _audit(self, ctx: Context, route: Route, command: str, outcome: str, *, refused: bool = False
                     ) -> None:
        role = (await ctx.access()).acting_as(route.router.roles or frozenset())
        async with transaction(ctx.deps.sessions) as s:
            await staff.audit(s, ctx.openid, role, command, outcome, refused=refused)

    async def dispatch(self, ctx: Context) -> str | None:
        inc = ctx.incoming
        if inc.kind != "event" or inc.event in self.events:  # what the bot would act on (bot/ratelimit.py)
            verdict, wait_s = await ratelimit.check(ctx)
            if verdict is ratelimit.Verdict.WARN:
                log.warning("rate limit: %s is over %d messages in %d s; further ones dropped", inc.openid,
                            ctx.deps.settings.rate_limit_messages, ctx.deps.settings.rate_limit_window_s)
                return texts.RATE_LIMITED.format(seconds=wait_s)
            if verdict is ratelimit.Verdict.DROP:
                return None
        if inc.kind == "text":
            if not inc.text.strip():
                return texts.EMPTY_TEXT
            found = self._word_route(inc.text)
            if found is not None:
                word, route, rest = found
                if route.router.roles is not None:
                    return await self._staff_call(ctx, route, inc.text.strip(),
                                                  lambda: route.handler(ctx, rest.strip()), word)
                return await route.handler(ctx, rest.strip())
            for regex, route in self.patterns:
                m = regex.fullmatch(inc.text.strip())
                if m and await self._allowed(ctx, route):
                    return await route.handler(ctx, m)
            head, _ = self.split(inc.text)
            return texts.UNKNOWN.format(word=head[:20])
        if inc.kind == "event":
            route = self.events.get(inc.event)
            if route is None:
                return None  # events we do not handle are acknowledged silently
            if not await self._allowed(ctx, route):
                return None
            return await route.handler(ctx)
        return texts.UNSUPPORTED

    async def dispatch_scene(self, ctx: Context, scene: str) -> str | None:
        """Handlers of scan events call this to reach the handler of the scene's prefix."""
        route = self.scenes.get(scene[:3])
        if route is None:
            return None
        if route.router.roles is not None:
            return await self._staff_call(ctx, route, f"扫码 {scene}", lambda: route.handler(ctx, scene))
        return await route.handler(ctx, scene)
