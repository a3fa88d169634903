"""The schema. The SQL database is the source of truth; every datetime column holds naive UTC.

Ledger entries are append-only: nothing in this code base UPDATEs or DELETEs an entry. A void is a
reversal entry that points at what it reverses; a redemption is a debit entry.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from scoring.clock import utcnow

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT for the big tables.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Station(Base):
    __tablename__ = "stations"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # home | community
    type: Mapped[str] = mapped_column(String(16))  # comprehensive | industry | professional | service
    county: Mapped[str] = mapped_column(String(64))
    certified_on: Mapped[date] = mapped_column(Date)
    # Local midnight of 1 January after the certification year, as UTC (SPEC 3, eligibility).
    eligible_from: Mapped[datetime] = mapped_column(DateTime)
    stars: Mapped[int] = mapped_column(Integer, default=3)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | delisted
    demotion_streak: Mapped[int] = mapped_column(Integer, default=0)
    delisted_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Why it was delisted: a code (Delisting) and its parameters, rendered when read (scoring/texts/admin.py)
    delisted_code: Mapped[str | None] = mapped_column(String(32))
    delisted_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The station's card on the window (web/): where it is and when it is open, as people write them.
    address: Mapped[str] = mapped_column(String(300), default="", server_default="")
    opening_hours: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # The kiosk link's key version (scoring/kiosk.py): an admin's rotation makes earlier links show nothing.
    kiosk_key_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    __table_args__ = (
        CheckConstraint("stars BETWEEN 1 AND 5", name="ck_station_stars"),
        CheckConstraint("kind IN ('home','community')", name="ck_station_kind"),
        CheckConstraint(
            "type IN ('comprehensive','industry','professional','service')", name="ck_station_type"
        ),
        CheckConstraint("status IN ('active','delisted')", name="ck_station_status"),
    )


class Delisting(StrEnum):
    """Why a station was delisted (Station.delisted_code); the parameters in Station.delisted_params."""

    RATING = "rating"  # the annual rating: bottom 10% a second consecutive year ({"year": 2026})
    ADMIN = "admin"  # an admin's 摘牌, with the reason they typed ({"text": "..."}); also a migrated old text


class Talent(Base):
    __tablename__ = "talents"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    cert_no: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(32), default="")
    category: Mapped[str] = mapped_column(String(32), default="")
    county: Mapped[str] = mapped_column(String(64), default="")
    openid: Mapped[str | None] = mapped_column(String(64), unique=True)
    bound_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Staff(Base):
    __tablename__ = "staff"
    id: Mapped[int] = mapped_column(primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # operator | admin
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (
        CheckConstraint("role IN ('operator','admin')", name="ck_staff_role"),
        CheckConstraint("role = 'admin' OR station_id IS NOT NULL", name="ck_staff_operator_station"),
    )


class Activity(Base):
    __tablename__ = "activities"
    id: Mapped[int] = mapped_column(primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    theme: Mapped[str] = mapped_column(Text, default="")
    starts_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    ends_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    capacity: Mapped[int | None] = mapped_column(Integer)  # None: no limit
    published_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    published_by: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), default="published")  # published | voided
    # Work markers for the worker's calendar (reminder sent, invitations sent); not points.
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime)
    invited_at: Mapped[datetime | None] = mapped_column(DateTime)
    # lecture (人才讲堂) | seminar (研修班) | culture (在地文化讲解) | salon (交流沙龙) | other (policy measure 9)
    category: Mapped[str] = mapped_column(String(16), default="other", server_default="other")
    __table_args__ = (CheckConstraint("ends_at > starts_at", name="ck_activity_times"),)


class Signup(Base):
    __tablename__ = "signups"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id"))
    talent_id: Mapped[int] = mapped_column(ForeignKey("talents.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (UniqueConstraint("activity_id", "talent_id", name="uq_signup"),)


class Visit(Base):
    """A scan, accepted or rejected (rejected scans are kept for fraud analysis)."""

    __tablename__ = "visits"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    openid: Mapped[str] = mapped_column(String(64))
    talent_id: Mapped[int | None] = mapped_column(ForeignKey("talents.id"), index=True)
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"))
    activity_id: Mapped[int | None] = mapped_column(ForeignKey("activities.id"))
    source: Mapped[str] = mapped_column(String(16))  # station | operator | activity
    scanned_at: Mapped[datetime] = mapped_column(DateTime)
    local_day: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))  # accepted | rejected
    reason: Mapped[str | None] = mapped_column(String(32))
    # Set on accepted visits only: "{talent}:{station}:{day}"; R3's one credit per day.
    credit_key: Mapped[str | None] = mapped_column(String(96), unique=True)
    operator_openid: Mapped[str | None] = mapped_column(String(64))
    applied_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (
        Index("ix_visits_station_day", "station_id", "local_day"),
        Index("ix_visits_unapplied", "status", "applied_at"),
    )


class Attendance(Base):
    __tablename__ = "attendances"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id"))
    talent_id: Mapped[int] = mapped_column(ForeignKey("talents.id"), index=True)
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("activity_id", "talent_id", name="uq_attendance"),)


class PublicityReport(Base):
    __tablename__ = "publicity_reports"
    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id"), index=True)
    url: Mapped[str] = mapped_column(Text)
    uploaded_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class MediaReport(Base):
    __tablename__ = "media_reports"
    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id"), index=True)
    level: Mapped[str] = mapped_column(String(16))  # central | provincial | municipal | county
    outlet: Mapped[str] = mapped_column(String(200), default="")
    url: Mapped[str] = mapped_column(Text, default="")
    uploaded_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(DateTime)
    voided_at: Mapped[datetime | None] = mapped_column(DateTime)


class SurveyResult(Base):
    __tablename__ = "survey_results"
    id: Mapped[int] = mapped_column(primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"), index=True)
    year: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text, default="")
    entered_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | applied | rejected
    applied_at: Mapped[datetime | None] = mapped_column(DateTime)


class Extension(Base):
    """An admin's extension of a station's scoring window for a year by `days` (SPEC 3)."""

    __tablename__ = "extensions"
    id: Mapped[int] = mapped_column(primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"), index=True)
    year: Mapped[int] = mapped_column(Integer)
    days: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text, default="")
    granted_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (CheckConstraint("days > 0", name="ck_extension_days"),)


class Entry(Base):
    """One ledger line: an amount on one account (a station or a talent)."""

    __tablename__ = "entries"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(160), unique=True)  # idempotency key
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"))
    talent_id: Mapped[int | None] = mapped_column(ForeignKey("talents.id"))
    amount: Mapped[int] = mapped_column(Integer)
    rule: Mapped[str] = mapped_column(String(16))  # rule_id@version
    fact_kind: Mapped[str] = mapped_column(String(16))
    fact_id: Mapped[int | None] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(DateTime)  # business time: picks the period
    recorded_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("entries.id"), unique=True)
    actor: Mapped[str | None] = mapped_column(String(80))
    reason: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (
        CheckConstraint("(station_id IS NULL) <> (talent_id IS NULL)", name="ck_entry_one_account"),
        Index("ix_entries_station_time", "station_id", "occurred_at"),
        Index("ix_entries_talent_time", "talent_id", "occurred_at"),
        Index("ix_entries_fact", "fact_kind", "fact_id"),
    )


class Void(Base):
    """An admin's request to void a fact for fraud or error; the worker writes the reversal entries."""

    __tablename__ = "voids"
    id: Mapped[int] = mapped_column(primary_key=True)
    target_kind: Mapped[str] = mapped_column(String(16))  # entry | visit | activity | media | flag
    target_id: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (UniqueConstraint("target_kind", "target_id", name="uq_void_target"),)


class BoardSnapshot(Base):
    __tablename__ = "board_snapshots"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope: Mapped[str] = mapped_column(String(8))  # station | talent
    kind: Mapped[str] = mapped_column(String(8))  # month | year | total
    period: Mapped[str] = mapped_column(String(8))  # 2026-11 | 2026 | all
    account_id: Mapped[int] = mapped_column(BigInteger)
    rank: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("scope", "kind", "period", "account_id", name="uq_snapshot"),)


class MonthClose(Base):
    __tablename__ = "month_closes"
    period: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM closed
    closed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    featured_station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"))
    featured_month: Mapped[str] = mapped_column(String(7))  # the month it is featured in (M+1)


class RatingRun(Base):
    __tablename__ = "rating_runs"
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="preview")  # preview | confirmed | reversed
    computed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime)
    confirmed_by: Mapped[str | None] = mapped_column(String(80))
    # Times the year was reversed; part of the rating notification keys, so a re-confirmed year is told again.
    revision: Mapped[int] = mapped_column(Integer, default=0)


class Rating(Base):
    __tablename__ = "ratings"
    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column(ForeignKey("rating_runs.year"))
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    cohort: Mapped[str] = mapped_column(String(16), default="all")
    rank: Mapped[int | None] = mapped_column(Integer)  # None: not ranked (a new station's subsidy row)
    points: Mapped[int] = mapped_column(Integer)
    stars_before: Mapped[int] = mapped_column(Integer)
    streak_before: Mapped[int] = mapped_column(Integer, default=0)  # demotion_streak before; for reversal
    stars_after: Mapped[int] = mapped_column(Integer)
    move: Mapped[str] = mapped_column(String(8))  # up | down | same
    delisted: Mapped[bool] = mapped_column(Boolean, default=False)
    subsidy_cny: Mapped[int] = mapped_column(Integer, default=0)
    __table_args__ = (UniqueConstraint("year", "station_id", name="uq_rating"),)


class Flag(Base):
    """A fraud signal. `hold` keeps the visit's points out until an admin releases or voids it."""

    __tablename__ = "flags"
    id: Mapped[int] = mapped_column(primary_key=True)
    rule: Mapped[str] = mapped_column(String(32))  # multi_station | daily_volume | staff_self
    hold: Mapped[bool] = mapped_column(Boolean, default=False)
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"))
    talent_id: Mapped[int | None] = mapped_column(ForeignKey("talents.id"))
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"))
    # the rule's numbers (scoring/fraud.py), rendered when read (scoring/texts/admin.py `flag_detail`);
    # {"text": ...} for a detail stored as a sentence before migration 0010 that could not be read back
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default="{}")
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | released | voided
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(80))
    __table_args__ = (UniqueConstraint("rule", "visit_id", name="uq_flag_visit"),)


class Gift(Base):
    """An item talents may redeem points for (policy annex part 2). `active` False: retired (下架)."""

    __tablename__ = "gifts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    cost: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # NULL: offered city-wide; else offered at, and picked up at, this station only.
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"))
    description: Mapped[str] = mapped_column(String(500), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (
        CheckConstraint("cost > 0", name="ck_gift_cost"),
        CheckConstraint("stock >= 0", name="ck_gift_stock"),
    )


class Redemption(Base):
    __tablename__ = "redemptions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    gift_id: Mapped[int] = mapped_column(ForeignKey("gifts.id"))
    talent_id: Mapped[int] = mapped_column(ForeignKey("talents.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | applied | rejected
    reason: Mapped[str | None] = mapped_column(String(32))
    pickup_code: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(DateTime)


class Satisfaction(Base):
    __tablename__ = "satisfactions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id"), index=True)
    talent_id: Mapped[int] = mapped_column(ForeignKey("talents.id"))
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (
        UniqueConstraint("activity_id", "talent_id", name="uq_satisfaction"),
        CheckConstraint("score BETWEEN 1 AND 5", name="ck_satisfaction_score"),
    )


class Notification(Base):
    """The outbox: one row per message, sent at most once, keyed deterministically."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(160), unique=True)
    openid: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))  # template | custom
    payload: Mapped[str] = mapped_column(Text)  # JSON
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sent | given_up
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (Index("ix_notifications_due", "status", "next_attempt_at"),)


class DigestLine(Base):
    """An entry a station got or lost (R1, R2, R4, a reversal), waiting for the hourly digest to its operators
    (scoring/notify.py `send_digests`); one per entry, marked sent by the digest that told it."""

    __tablename__ = "digest_lines"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entry_id: Mapped[int] = mapped_column(BigId, ForeignKey("entries.id"), unique=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (Index("ix_digest_lines_pending", "sent_at", "created_at"),)


class DeadLetter(Base):
    __tablename__ = "dead_letters"
    id: Mapped[int] = mapped_column(primary_key=True)
    task: Mapped[str] = mapped_column(String(64))
    fact_id: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (UniqueConstraint("task", "fact_id", name="uq_dead_letter"),)


class Warning(Base):
    """A recorded warning talk (提醒谈话) with a station's operating body."""

    __tablename__ = "warnings"
    id: Mapped[int] = mapped_column(primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    note: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AuditLog(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    actor: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    command: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text)
    # action: a command that ran; refusal: one refused (role, plain mode). 审计 lists actions, so a flood of
    # refused words from followers cannot push real admin actions out of view.
    kind: Mapped[str] = mapped_column(String(8), default="action", server_default="action")
    __table_args__ = (Index("ix_audit_log_kind_id", "kind", "id"),)


class SubscribeConsent(Base):
    """A follower's answer to a subscription-notification template (订阅通知), from WeChat's
    subscribe_msg_popup_event / subscribe_msg_change_event (and a bizsend refused with 43101): the latest
    answer per (openid, template) by the event's time. Notices go by message/subscribe/bizsend only while
    it is `accept` (worker/push.py)."""

    __tablename__ = "subscribe_consents"
    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    template_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str] = mapped_column(String(8))  # accept | reject
    changed_at: Mapped[datetime] = mapped_column(DateTime)  # the event's CreateTime (naive UTC)


# -- services, bookings and consultations (policy measures 1, 7, 8; scoring/services.py, bookings.py,
# consultations.py) ---------------------------------------------------------------------------------------
class ServiceItem(Base):
    """An item of a service list (服务清单): `station_id` NULL is the city-wide common list, else the
    station's own. `active` False: withdrawn (kept for the bookings that name it)."""

    __tablename__ = "service_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    description: Mapped[str] = mapped_column(String(300), default="")
    schedule: Mapped[str] = mapped_column(String(100), default="")  # when it is offered, as people write it
    bookable: Mapped[bool] = mapped_column(Boolean, default=False)
    capacity: Mapped[int | None] = mapped_column(Integer)  # talents per slot when bookable
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (CheckConstraint("capacity IS NULL OR capacity > 0", name="ck_service_capacity"),)


class StationDuties(Base):
    """A station's written statement of its service duties (服务职责, policy measure 1)."""

    __tablename__ = "station_duties"
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(80), default="")


class Booking(Base):
    """A talent's booking (预约) of a slot at a station, for a service (`service_id`) or a plain visit.
    booked -> cancelled | kept (a check-in there that day) | no_show (the slot passed without one)."""

    __tablename__ = "bookings"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    talent_id: Mapped[int] = mapped_column(ForeignKey("talents.id"), index=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    service_id: Mapped[int | None] = mapped_column(ForeignKey("service_items.id"))
    slot_start: Mapped[datetime] = mapped_column(DateTime)
    slot_end: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16), default="booked")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime)
    settled_at: Mapped[datetime | None] = mapped_column(DateTime)  # when it became kept or no_show
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"))
    __table_args__ = (
        CheckConstraint("status IN ('booked','cancelled','kept','no_show')", name="ck_booking_status"),
        CheckConstraint("slot_end > slot_start", name="ck_booking_slot"),
        Index("ix_bookings_station_slot", "station_id", "slot_start"),
        Index("ix_bookings_status_slot", "status", "slot_start"),
    )


class Consultation(Base):
    """A talent's question (咨询) to a station (`station_id`) or the city (NULL). The first staff member to
    claim or answer it owns it (首问责任, `first_owner_openid` never changes); a transfer moves
    `owner_openid` and is kept in ConsultationEvent."""

    __tablename__ = "consultations"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    talent_id: Mapped[int] = mapped_column(ForeignKey("talents.id"), index=True)
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"))
    question: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | closed
    owner_openid: Mapped[str | None] = mapped_column(String(64))
    first_owner_openid: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    talent_last_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)  # the 48-hour window
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime)
    first_answer_at: Mapped[datetime | None] = mapped_column(DateTime)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)  # 1: staff again, 2: admins
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    rating: Mapped[int | None] = mapped_column(Integer)
    rated_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (
        CheckConstraint("status IN ('open','closed')", name="ck_consultation_status"),
        CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="ck_consultation_rating"),
        Index("ix_consultations_station_status", "station_id", "status"),
    )


class ConsultationEvent(Base):
    """The history of a consultation: asked, claimed, answered, transferred, escalated, closed, rated."""

    __tablename__ = "consultation_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text, default="")
    target: Mapped[str | None] = mapped_column(String(80))  # a transfer's new owner
