"""Hostile requests to the JSON API through the real server (issue 13): Hypothesis draws wrong methods, unknown
and repeated query parameters, bad values (huge, negative, unicode digits, control characters), unknown codes
and ids, bad JSON bodies (deeply nested, truncated, wrong types) and bad, forged, expired or valid-but-unbound
bearer tokens. Never a 5xx, errors in the one JSON shape, no ERROR in the log, and nothing changes. The long
run is bench/fuzz.py; below it, the regression test for the crash that run found."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from scoring.models import Base
from tests.web.conftest import City, Site
from web.auth import sign_session

BOOKKEEPING = (b"th:dd:", b"th:nonce:", b"th:rl:")
PATHS = ("/api/v1/boards/{kind}", "/api/v1/featured", "/api/v1/stations", "/api/v1/stations/{code}",
         "/api/v1/activities", "/api/v1/services", "/api/v1/me", "/api/v1/me/signups", "/api/v1/me/signups/{id}",
         "/api/v1/me/bookings", "/api/v1/me/bookings/{id}", "/api/v1/me/code", "/api/v1/session")
PARAMS = ("period", "type", "district", "limit", "offset", "station", "date", "format", "x")
absurd_ids = st.one_of(st.integers(-10**30, -1).map(str), st.integers(10**9, 10**40).map(str),
                       st.sampled_from(["0", "1.5", "1e3", "０１", "٣", "%00", "..%2f..", "9" * 300, "", " "]))
values = st.one_of(absurd_ids, st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
                   st.sampled_from(["2026", "2026-13", "2026-02-30", "9999-99", "comprehensive", "鲤城区", "null"]))
json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**30, -1) | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner,
                                                                                         max_size=3), max_leaves=8)
bodies = st.one_of(st.none(), st.binary(max_size=200), st.sampled_from([b"[" * 4000 + b"]" * 4000, b'{"activity_id": 1',
                                                                        b"{" * 3000]),
                   json_values.map(lambda v: json.dumps(v).encode()),
                   st.dictionaries(st.sampled_from(["activity_id", "code", "station", "date", "hour", "x"]),
                                   absurd_ids | json_values, max_size=3).map(lambda v: json.dumps(v).encode()))
API_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    path = draw(st.sampled_from(PATHS))
    path = path.replace("{kind}", draw(st.sampled_from(["total", "year", "month", "week", "", "%E4%BA%BA"])))
    path = path.replace("{code}", draw(st.sampled_from(["S001", "S004", "NOPE", "x" * 300, "%2e%2e", "%00"])))
    path = path.replace("{id}", draw(absurd_ids).replace("/", "") or "0")
    method = draw(st.sampled_from(["GET", "GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"]))
    query = draw(st.lists(st.tuples(st.sampled_from(PARAMS) | st.text(max_size=5), values), max_size=3))
    token = draw(st.sampled_from(["none", "bound", "unbound", "expired", "forged", "garbage"]))
    body = draw(bodies) if method in ("POST", "PUT", "PATCH", "DELETE") else None
    ctype = draw(st.sampled_from(["application/json", "text/plain", ""]))
    return {"method": method, "path": path, "query": query, "token": token, "body": body, "ctype": ctype}


def header_safe(value: str) -> str:
    return "".join(c for c in value if " " <= c != "\x7f")


async def state(site: Site, redis: aioredis.Redis) -> dict[str, str]:
    out = {}
    async with site.bot.sessions() as s:
        for table in Base.metadata.sorted_tables:
            rows = sorted(repr(tuple(r)) for r in (await s.execute(select(table))).all())
            out[table.name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    for key in sorted(await redis.keys("*")):
        if not key.startswith(BOOKKEEPING):
            out[key.decode()] = str(await redis.dump(key))
    return out


def token_for(site: Site, kind: str) -> str | None:
    key, now = site.bot.settings.scene_key, time.time()
    return {"none": None, "bound": sign_session(key, "oTalentSecret01", now)[0],
            "unbound": sign_session(key, "oNobodyAtAll", now)[0],
            "expired": sign_session(key, "oTalentSecret01", now - 10**7)[0],
            "forged": "oTalentSecret01.9999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "garbage": "a.b.c"}[kind]


async def send(site: Site, req: dict[str, Any]) -> tuple[int, bytes, str]:
    headers = {"Content-Type": req["ctype"]} if req["ctype"] else {}
    token = token_for(site, req["token"])
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    query = [(header_safe(k), v) for k, v in req["query"]]
    async with site.http.request(req["method"], site.base + req["path"], params=query, data=req["body"],
                                 headers=headers, allow_redirects=False) as resp:
        return resp.status, await resp.read(), resp.content_type


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@API_SETTINGS
@given(req=requests())
async def test_hostile_api_requests_change_nothing_and_never_crash(site: Site, city: City, redis: aioredis.Redis,
                                                                   caplog: pytest.LogCaptureFixture,
                                                                   req: dict[str, Any]) -> None:
    caplog.set_level(logging.WARNING)
    before = await state(site, redis)
    status, body, ctype = await send(site, req)
    assert status < 500, (req, body[:300])
    if status >= 400 and ctype == "application/json" and req["method"] != "HEAD":
        error = json.loads(body)["error"]
        assert set(error) == {"code", "message"} and error["code"] and error["message"], (req, body[:300])
    assert not errors(caplog), req
    assert await state(site, redis) == before, req


@pytest.mark.parametrize("path", ["/api/v1/session", "/api/v1/me/signups", "/api/v1/me/bookings"])
async def test_deeply_nested_json_is_a_bad_body_not_a_500(site: Site, city: City, quiet_clock: datetime,
                                                          caplog: pytest.LogCaptureFixture, path: str) -> None:
    """Found by bench/fuzz.py: 4 KiB of `[` is a RecursionError in json.loads, not a ValueError (it was a 500)."""
    caplog.set_level(logging.WARNING)
    token = sign_session(site.bot.settings.scene_key, "oTalentSecret01", time.time())[0]
    async with site.http.post(site.base + path, data=b"[" * 2000 + b"]" * 2000,
                              headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"}) as r:
        assert r.status == 400
        assert (await r.json())["error"]["code"] == "bad_body"
    assert not errors(caplog)
