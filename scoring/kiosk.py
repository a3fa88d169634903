"""The station kiosk (issue 11): the tablet at a station's door that shows its rotating check-in QR code.

Promises:

- A kiosk link carries a per-station secret: `key_for(secret, code, version)`, an HMAC of the station code
  and the station's `kiosk_key_version`. An admin rotates it (`rotate_key`: version + 1), which makes every
  earlier link show nothing. `check_key` compares in constant time.
- A kiosk that polls marks its station "open" in one Redis sorted set (`OPEN_KEY`, member = station code,
  score = unix time of the last poll). The QR cron (worker/push.py) issues WeChat QR tickets only for
  stations open within the last `OPEN_FOR_S` seconds, and for stations an operator or the shell asked for
  (`ask`, the same set): 10,000 stations x 288 windows a day is beyond WeChat's quota, kiosks on demand are not.
- `today_count` is today's (Asia/Shanghai) accepted check-ins at the station: a number, no people.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from redis.asyncio import Redis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import periods
from scoring.clock import utcnow
from scoring.models import Station, Visit

OPEN_KEY: Final = "th:kiosk:open"
OPEN_FOR_S: Final = 600  # a kiosk polled within the last 10 minutes counts as open
KEY_LEN: Final = 20


def key_for(secret: bytes, code: str, version: int) -> str:
    """The kiosk key of a station at a key version (hex, KEY_LEN characters)."""
    mac = hmac.new(secret, f"kiosk:{code}:{version}".encode(), hashlib.sha256).hexdigest()
    return mac[:KEY_LEN]


def check_key(secret: bytes, code: str, version: int, key: str) -> bool:
    return hmac.compare_digest(key_for(secret, code, version), key)


@dataclass(frozen=True)
class KioskStation:
    id: int
    code: str
    name: str
    status: str
    key_version: int


async def station(session: AsyncSession, code: str) -> KioskStation | None:
    row = (await session.execute(select(Station.id, Station.code, Station.name, Station.status,
                                        Station.kiosk_key_version).where(Station.code == code))).first()
    if row is None:
        return None
    return KioskStation(row.id, row.code, row.name, row.status, row.kiosk_key_version)


async def open_station(session: AsyncSession, secret: bytes, code: str, key: str) -> KioskStation | None:
    """The active station whose kiosk `key` is right; None for anything else (unknown, delisted, wrong key)."""
    st = await station(session, code)
    if st is None or st.status != "active" or not check_key(secret, code, st.key_version, key):
        return None
    return st


async def link_key(session: AsyncSession, secret: bytes, station_id: int) -> tuple[str, str] | None:
    """(code, current key) of a station, for the operator's kiosk link."""
    row = (await session.execute(select(Station.code, Station.kiosk_key_version)
                                 .where(Station.id == station_id))).first()
    if row is None:
        return None
    return row.code, key_for(secret, row.code, row.kiosk_key_version)


async def rotate_key(session: AsyncSession, code: str) -> int | None:
    """Invalidate the station's kiosk links: the new key version, or None for an unknown station."""
    version = await session.scalar(update(Station).where(Station.code == code)
                                   .values(kiosk_key_version=Station.kiosk_key_version + 1)
                                   .returning(Station.kiosk_key_version))
    return int(version) if version is not None else None


async def today_count(session: AsyncSession, station_id: int, now: datetime | None = None) -> int:
    day = periods.local_day(now or utcnow())
    n = await session.scalar(select(func.count(Visit.id)).where(
        Visit.station_id == station_id, Visit.local_day == day, Visit.status == "accepted"))
    return int(n or 0)


async def ask(redis: Redis, code: str, now: float | None = None) -> None:
    """Mark the station's kiosk open (a poll) or its code asked for (`talenthome qr station`)."""
    await redis.zadd(OPEN_KEY, {code: time.time() if now is None else now})


async def claim_issue(redis: Redis, code: str, window: int, ttl_s: int) -> bool:
    """True once per station and rotation window: the kiosk asks the worker for its codes (the current
    window's if missing and the next one's ahead) at most once a window, however often it polls."""
    return bool(await redis.set(f"th:kiosk:asked:{code}:{window}", b"1", nx=True, ex=max(1, ttl_s)))


async def open_codes(redis: Redis, now: float | None = None, within_s: float = OPEN_FOR_S) -> set[str]:
    """Stations whose kiosk polled (or that were asked for) in the last `within_s` seconds; older marks
    are dropped on the way."""
    now = time.time() if now is None else now
    await redis.zremrangebyscore(OPEN_KEY, "-inf", now - within_s)
    raw = await redis.zrangebyscore(OPEN_KEY, now - within_s, "+inf")
    return {m.decode() if isinstance(m, bytes) else str(m) for m in raw}


# -- the QR records the worker keeps (worker/push.py writes them) ------------------------------------


def qr_key(code: str, window: int | None = None) -> str:
    return f"th:qr:{code}" if window is None else f"th:qr:{code}:{window}"


def load_qr(raw: bytes | str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def current_qr(redis: Redis, code: str, *, now: float | None = None) -> dict[str, Any] | None:
    """The station's QR for the current rotation window: {code, scene, ticket, url, content, window,
    valid_from, valid_until, expires_at} (unix seconds), or None when none is issued (yet)."""
    now = time.time() if now is None else now
    rec = load_qr(await redis.get(qr_key(code)))
    if rec is None:
        return None
    if rec["valid_from"] <= now < rec["valid_until"]:
        return rec
    rotation = int(rec["valid_until"] - rec["valid_from"])
    window = int(now) // rotation
    newer = load_qr(await redis.get(qr_key(code, window)))
    if newer is not None:
        return newer
    # Not promoted yet (the cron runs each minute): the last window's scene is still valid (grace).
    return rec if window <= rec["window"] + 1 else None
