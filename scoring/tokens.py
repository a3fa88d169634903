"""Signed QR scene strings (SPEC 5): station `st:<code>:<token>`, activity `ac:<id>:<token>`, a talent's
personal code `tl:<token>`. Tokens are HMAC-SHA256 (truncated to 72 bits) over the scene and its issue
time. Station codes rotate every `rotation_s` seconds and stay valid one more window (grace); a talent's
personal code lives `TALENT_CODE_TTL_S`. Every scene string is at most 64 characters (WeChat's limit).

A scanned string is anything a camera read: non-ASCII, control characters or half a code are refused as
MALFORMED or FORGED, never raised (MACs are compared as bytes). An activity's code credits only inside the
activity's window (`activity_window`): `grace` before its start until `grace` after its end.
"""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

MAX_SCENE: Final = 64
TALENT_CODE_TTL_S: Final = 600
_ALPHABET: Final = "0123456789abcdefghijklmnopqrstuvwxyz"
ACTIVITY_GRACE: Final = timedelta(minutes=30)  # the ACTIVITY_CODE_GRACE_MINUTES setting's default


class SceneError(StrEnum):
    MALFORMED = "malformed"
    FORGED = "forged"
    EXPIRED = "expired"


class Window(StrEnum):
    """Why an activity's code does not credit now."""

    NOT_STARTED = "not_started"  # earlier than `grace` before the start
    ENDED = "ended"  # later than `grace` after the end


def activity_window(at: datetime, starts_at: datetime, ends_at: datetime,
                    grace: timedelta = ACTIVITY_GRACE) -> Window | None:
    """None when a scan of an activity's code at `at` credits: from `grace` before `starts_at` until `grace`
    after `ends_at` (all naive UTC). However old the printed code, a scan outside this window does not."""
    if at < starts_at - grace:
        return Window.NOT_STARTED
    if at > ends_at + grace:
        return Window.ENDED
    return None


def _b36(n: int) -> str:
    if n < 0:
        raise ValueError("negative")
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _ALPHABET[r] + out
        if n == 0:
            return out


def _unb36(s: str) -> int:
    if not s or any(c not in _ALPHABET for c in s) or len(s) > 12:
        raise ValueError("not base36")
    return int(s, 36)


def _mac(key: bytes, message: str) -> str:
    digest = hmac.digest(key, message.encode(), "sha256")[:9]  # one-shot: no HMAC object per scan
    return base64.urlsafe_b64encode(digest).decode()


def _signed(key: bytes, mac: str, message: str) -> bool:
    """`mac` is the MAC of `message`, compared in constant time as bytes: compare_digest raises TypeError
    on a str with non-ASCII characters, and a scanned code may hold anything."""
    if not mac.isascii():
        return False
    return hmac.compare_digest(mac.encode(), _mac(key, message).encode())


@dataclass(frozen=True)
class Scene:
    kind: str  # station | activity | talent
    ref: str  # station code, activity id or talent id (as text)
    issued: int  # window number (station) or unix seconds (activity, talent)


def station_scene(key: bytes, code: str, now: float, rotation_s: int = 300) -> str:
    window = int(now) // rotation_s
    w = _b36(window)
    scene = f"st:{code}:{w}.{_mac(key, f'st:{code}:{w}')}"
    if len(scene) > MAX_SCENE:
        raise ValueError(f"station code {code!r} too long for a {MAX_SCENE}-character scene")
    return scene


def activity_scene(key: bytes, activity_id: int, now: float) -> str:
    t = _b36(int(now))
    return f"ac:{activity_id}:{t}.{_mac(key, f'ac:{activity_id}:{t}')}"


def talent_scene(key: bytes, talent_id: int, now: float) -> str:
    i, t = _b36(talent_id), _b36(int(now))
    return f"tl:{i}.{t}.{_mac(key, f'tl:{i}:{t}')}"


def parse_scene(key: bytes, scene: str, now: float, rotation_s: int = 300) -> Scene | SceneError:
    """Verify a scene string; a forged or malformed one never reveals which part was wrong."""
    if not isinstance(scene, str) or len(scene) > MAX_SCENE:
        return SceneError.MALFORMED
    try:
        if scene.startswith("st:"):
            _, code, token = scene.split(":")
            w, mac = token.split(".")
            window = _unb36(w)
            if not code or not _signed(key, mac, f"st:{code}:{w}"):
                return SceneError.FORGED
            current = int(now) // rotation_s
            if not current - 1 <= window <= current:
                return SceneError.EXPIRED
            return Scene("station", code, window)
        if scene.startswith("ac:"):
            _, ref, token = scene.split(":")
            t, mac = token.split(".")
            if not (ref.isascii() and ref.isdigit()) or not _signed(key, mac, f"ac:{ref}:{t}"):
                return SceneError.FORGED
            return Scene("activity", ref, _unb36(t))
        if scene.startswith("tl:"):
            i, t, mac = scene[3:].split(".")
            if not _signed(key, mac, f"tl:{i}:{t}"):
                return SceneError.FORGED
            issued = _unb36(t)
            if not issued - 60 <= now <= issued + TALENT_CODE_TTL_S:
                return SceneError.EXPIRED
            return Scene("talent", str(_unb36(i)), issued)
    except ValueError:
        return SceneError.MALFORMED
    return SceneError.MALFORMED
