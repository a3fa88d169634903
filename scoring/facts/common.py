"""What every fact module shares: the outcome of applying a fact, the notices it raises, the parameters the
rules read, and the job that applies it.

    apply(session, fact_id, params) -> Applied(entries, notices) | Refused(reason, notices)

- `Applied`: the fact is in the ledger. `entries` are all of its entries, those this call wrote
  (`written` of them) and those an earlier run wrote: the worker bumps them all onto the live boards,
  which count each entry once (scoring/live.py), so a run after a crash between commit and bump still
  completes the boards.
- `Refused`: the rule gives the fact nothing (now, or ever: `reason` says which).
- `Notice`: someone should hear of what happened. Data only, no sentence: a kind, an audience (the
  talent, the station's operators, the admins) with the account it concerns, the outbox key, and the
  numbers and reasons. scoring/notify.py turns notices into messages in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final

from scoring.fraud import Thresholds
from scoring.models import Entry
from scoring.rules import RULES
from scoring.settings import Settings

APPLY: Final = "apply"  # the worker's one task: apply(ctx, kind, fact_id)


class Refusal(StrEnum):
    """Why a fact earned nothing; also stored (Redemption.reason) and shown by the worker's job result."""

    NOT_FOUND = "not_found"
    NOT_ACCEPTED = "not_accepted"  # a rejected scan, a voided activity
    HELD = "held"  # a fraud rule holds the visit until an admin releases or voids it
    VOIDED = "voided"  # an admin voided it before it was applied
    CONDITIONS_NOT_MET = "conditions_not_met"  # R1
    NOT_HELD_YET = "not_held_yet"  # R2: the activity has not taken place (yet)
    NOTHING_TO_PAY = "nothing_to_pay"  # R2: no report of a paying level stands
    SURVEY_CAP = "survey_cap"  # R4
    BALANCE = "balance"  # G
    STOCK = "stock"  # G
    NOTHING_TO_REVERSE = "nothing_to_reverse"  # V: the target produced no entry


class Audience(StrEnum):
    TALENT = "talent"  # the talent whose account it is
    STATION = "station"  # every active operator of the station
    ADMINS = "admins"  # every active admin and ADMIN_OPENIDS


class NoticeKind(StrEnum):
    HOLD = "hold"  # a visit's points are held for review (data: flag_id, visit_id, talent_id, stations, minutes)
    VOID = "void"  # a talent's points taken back (data: void_id, entries, points, reason, visit_id)
    REDEEMED = "redeemed"  # a gift redeemed (data: redemption_id, gift_id, cost, pickup_code)
    REDEEM_REFUSED = "redeem_refused"  # a redemption refused (data: redemption_id, gift_id, cost, reason, balance)
    ENTRY = "entry"  # a station got or lost points (data: entry_id): a line of its operators' hourly digest


@dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    audience: Audience
    account_id: int | None  # the talent (TALENT) or the station (STATION); None for ADMINS
    key: str  # the outbox key; for a group (STATION, ADMINS) each recipient's is `{key}:{openid}`
    data: Mapping[str, int | str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Applied:
    entries: Sequence[Entry]
    notices: tuple[Notice, ...] = ()
    written: int = 0  # entries this call wrote; 0: applied before, nothing new

    @property
    def already(self) -> bool:
        return self.written == 0


@dataclass(frozen=True)
class Refused:
    reason: Refusal
    notices: tuple[Notice, ...] = ()


Outcome = Applied | Refused


def station_entries(entries: Iterable[Entry], written: Iterable[str]) -> tuple[Notice, ...]:
    """An ENTRY notice (a line of the station's hourly digest) per station entry this call wrote (keys in
    `written`) but R3's: R1, R2, R4 and reversals (R3's visits are too many; the rank-change notices cover
    them). Raised in the transaction that writes the entry, so once; the line is keyed by the entry too."""
    new = set(written)
    return tuple(Notice(NoticeKind.ENTRY, Audience.STATION, e.station_id, f"entry:{e.id}", {"entry_id": e.id})
                 for e in entries
                 if e.key in new and e.station_id is not None and e.rule.split("@")[0] != "R3")


@dataclass(frozen=True)
class Params:
    """What the rules read besides the facts: R1's lead and attendance (rules.py, overridden by settings),
    the fraud thresholds, and the admins that hear of holds beside the admin staff."""

    lead_hours: int = RULES["R1"].params["lead_hours"]
    min_attendees: int = RULES["R1"].params["min_attendees"]
    fraud: Thresholds = field(default_factory=Thresholds)
    admin_openids: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, s: Settings) -> Params:
        return cls(s.activity_lead_hours, s.activity_min_attendees, Thresholds.from_settings(s),
                   tuple(sorted(s.admin_openid_set)))


DEFAULT: Final = Params()


@dataclass(frozen=True)
class Job:
    """The worker's `apply(kind, fact_id)` for a recorded fact, under a deterministic arq job id
    `{kind}:{fact_id}` (`:{tag}` added for another occasion: a publicity report, a release, a sweep, a
    retry), not before `defer_until` (naive UTC) when set."""

    kind: str
    fact_id: int
    tag: str = ""
    defer_until: datetime | None = None

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.fact_id}" + (f":{self.tag}" if self.tag else "")

    @property
    def args(self) -> tuple[str, int]:
        return self.kind, self.fact_id
