"""The annual star rating (SPEC 3 "Star rating", "Subsidies"; policy measures 11-12, annex part 2).

preview -> confirm, and reverse_rating to undo a confirmed year. Each runs inside the caller's transaction.

Decisions:

- **When**: a year can be previewed from 00:00 local on 1 January of the next year, and only once every
  extended scoring window of that year has closed (SPEC 3: "provisional until all extended windows have
  closed"). The refusal names the stations and the date the last window closes.
- **Who**: the eligible, active stations (`scoring.boards.station_board` for the year, which honours
  extensions); the cohort is `Settings.rating_cohort`: `all` (default) or `type` (each station type ranked
  and cut on its own, SPEC 3 / [P10]). N stations of a cohort: top set = ranks <= floor(0.2 N), bottom set
  = ranks > N - floor(0.1 N) (`scoring.ranking.cut_lines`; ties share their rank, so they pass a line
  together). A station with 0 points or fewer is never in the top set: with an empty ledger every station
  would share rank 1 and all would go up (the same rule as the monthly feature).
- **Moves**: `move` records the set: `up` (top set; 5 stays 5), `down` (bottom set; 1 stays 1 but still
  counts as a demotion), `same`. `demotion_streak` counts consecutive rated years with a demotion: a
  demotion adds one, any other confirmed outcome resets it to 0. Reaching 2 delists the station (摘牌):
  status `delisted`, `delisted_at`, `delisted_code` `rating` (`delisted_params` {year}, rendered when read);
  it leaves the boards at once (boards rank active stations only). Stations not in a cohort (not yet
  eligible) are not rated and keep their streak.
- **Subsidies** (a list, no money moves): each active station certified in the year (kind home:
  `subsidy_new_home_cny`, community: `subsidy_new_community_cny`; such a station is not ranked that year,
  its row has `rank` NULL and cohort `new`), and each station of a top set `subsidy_top_cny`, the cap
  ("不超过"; the amount paid is decided outside the system by the station's results).
- **Preview** stores `RatingRun(status preview)` and one `Rating` row per station, recomputed on every
  preview while the run is not confirmed. **Confirm** applies the stored rows exactly once (a second
  confirm reports `already`); it refuses when a station's stars, streak or status changed since the
  preview (preview again). `talenthome rate YEAR --confirm` previews and confirms in one transaction, so
  what it prints is what it applies. A confirmed year is never recomputed; `reverse_rating` restores
  stars, streak and status from the Rating rows (`stars_before`, `streak_before`, `delisted`), marks the
  run `reversed` and bumps its `revision`; preview and confirm are then allowed again.
- **Order of years**: a year cannot be previewed, confirmed or reversed while a later year is confirmed
  (streaks build year on year); reverse the later year first.
- **Notifications** (outbox, template): at confirm, operators of promoted, demoted ("one more demotion
  means delisting"), delisted and subsidised stations, and every admin (Staff role admin, plus
  ADMIN_OPENIDS) a summary; at reversal, operators of stations whose stars or status are restored, and
  admins. Keys carry the run's revision so a re-confirmed year is told again:
  `rating:{year}:r{revision}:{station_id}:{openid}`, `rating:{year}:r{revision}:admin:{openid}`,
  `rating-preview:{year}:r{revision}:{openid}`, `rating-reversed:{year}:r{revision}:{station_id|admin}:{openid}`.
- **Audit**: these functions write no audit row; the caller who knows the actor does, once per command
  (the bot's router for `评星`, `talenthome rate` through scoring.staff.audit). The run keeps
  `confirmed_by` and `confirmed_at`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Literal

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import outbox
from scoring.boards import extension_days, station_board, station_year_sums
from scoring.calendar import operators
from scoring.clock import utcnow
from scoring.models import Delisting, Rating, RatingRun, Staff, Station
from scoring.periods import Period, local_midnight_utc, to_local
from scoring.ranking import cut_lines
from scoring.settings import Settings
from scoring.texts import admin as admin_texts
from scoring.texts import operator as operator_texts

STATION_TYPES = ("comprehensive", "industry", "professional", "service")
MIN_STARS, MAX_STARS = 1, 5
DELIST_STREAK = 2

class RatingRefusal(StrEnum):
    BAD_YEAR = "bad_year"
    YEAR_NOT_ENDED = "year_not_ended"
    WINDOW_OPEN = "window_open"
    CONFIRMED = "confirmed"
    LATER_CONFIRMED = "later_confirmed"
    NO_PREVIEW = "no_preview"
    STALE = "stale"
    NOT_CONFIRMED = "not_confirmed"


@dataclass(frozen=True)
class RatingRefused:
    reason: RatingRefusal
    detail: str


@dataclass(frozen=True)
class Line:
    """One station's outcome. `rank` is None on a new station's subsidy-only line (cohort `new`)."""

    station_id: int
    code: str
    name: str
    kind: str
    cohort: str
    rank: int | None
    points: int
    stars_before: int
    stars_after: int
    move: str  # up | down | same
    streak_before: int
    delisted: bool
    subsidy_cny: int

    @property
    def streak_after(self) -> int:
        if self.rank is None:
            return self.streak_before
        return self.streak_before + 1 if self.move == "down" else 0

    @property
    def subsidy_reason(self) -> str | None:
        if not self.subsidy_cny:
            return None
        return f"new_{self.kind}" if self.rank is None else "top"


@dataclass(frozen=True)
class Outcome:
    year: int
    status: str  # preview | confirmed | reversed
    revision: int
    lines: list[Line] = field(default_factory=list)
    already: bool = False
    notified: int = 0

    @property
    def promoted(self) -> list[Line]:
        return [x for x in self.lines if x.move == "up"]

    @property
    def demoted(self) -> list[Line]:
        return [x for x in self.lines if x.move == "down"]

    @property
    def delisted(self) -> list[Line]:
        return [x for x in self.lines if x.delisted]

    @property
    def subsidies(self) -> list[Line]:
        return [x for x in self.lines if x.subsidy_cny]

    @property
    def subsidy_total(self) -> int:
        return sum(x.subsidy_cny for x in self.lines)

    def summary(self) -> dict[str, int]:
        return {"up": len(self.promoted), "down": len(self.demoted), "delisted": len(self.delisted),
                "subsidies": len(self.subsidies), "total": self.subsidy_total}


def year_ends_at(year: int) -> datetime:
    return local_midnight_utc(date(year + 1, 1, 1))


def _check_year(year: int) -> RatingRefused | None:
    if not 2000 <= year <= 9998:
        return RatingRefused(RatingRefusal.BAD_YEAR, f"year must look like 2026, got {year}")
    return None


async def open_windows(session: AsyncSession, year: int, now: datetime) -> dict[int, datetime]:
    """{station_id: window end (naive UTC)} of the year's extended windows still open at `now`."""
    end = year_ends_at(year)
    out = {}
    for (sid, _), days in (await extension_days(session, [year])).items():
        w_end = end + timedelta(days=days)
        if w_end > now:
            out[sid] = w_end
    return out


async def _run(session: AsyncSession, year: int) -> RatingRun | None:
    return (await session.scalars(select(RatingRun).where(RatingRun.year == year)
                                  .with_for_update().execution_options(populate_existing=True))).first()


async def _later_confirmed(session: AsyncSession, year: int) -> RatingRefused | None:
    later = (await session.scalars(select(RatingRun.year).where(
        RatingRun.year > year, RatingRun.status == "confirmed").order_by(RatingRun.year))).first()
    if later is not None:
        return RatingRefused(RatingRefusal.LATER_CONFIRMED,
                             f"{later} is confirmed already; reverse {later} first (rate {later} --reverse)")
    return None


async def compute(session: AsyncSession, year: int, settings: Settings) -> list[Line]:
    """The outcome for every station, from the ledger and the stations' current stars and streaks."""
    period = Period("year", str(year))
    now = year_ends_at(year)
    if settings.rating_cohort == "type":
        cohorts = [(t, await station_board(session, period, now=now, station_type=t)) for t in STATION_TYPES]
    else:
        cohorts = [("all", await station_board(session, period, now=now))]
    stations = {st.id: st for st in (await session.scalars(select(Station).where(Station.status == "active")))}
    lines: list[Line] = []
    for cohort, board in cohorts:
        top, bottom = cut_lines([r.rank for r in board])
        top = {i for i in top if board[i].points > 0}  # nobody goes up (or is paid) for a year without points
        for i, r in enumerate(board):
            st = stations[r.standing.id]
            move = "up" if i in top else "down" if i in bottom else "same"
            after = min(MAX_STARS, st.stars + 1) if move == "up" else \
                max(MIN_STARS, st.stars - 1) if move == "down" else st.stars
            delisted = move == "down" and st.demotion_streak + 1 >= DELIST_STREAK
            lines.append(Line(st.id, st.code, st.name, st.kind, cohort, r.rank, r.points, st.stars, after, move,
                              st.demotion_streak, delisted, settings.subsidy_top_cny if move == "up" else 0))
    new = sorted((st for st in stations.values() if st.certified_on.year == year), key=lambda s: s.code)
    if new:
        sums = await station_year_sums(session, year, [st.id for st in new])
        for st in new:
            amount = settings.subsidy_new_community_cny if st.kind == "community" else settings.subsidy_new_home_cny
            lines.append(Line(st.id, st.code, st.name, st.kind, "new", None, sums.get(st.id, (0, None))[0],
                              st.stars, st.stars, "same", st.demotion_streak, False, amount))
    return lines


async def preview(
    session: AsyncSession, year: int, settings: Settings, *, now: datetime | None = None
) -> Outcome | RatingRefused:
    """Compute and store the year's preview (refused while the year or an extended window is open)."""
    now = now or utcnow()
    if (bad := _check_year(year)) is not None:
        return bad
    if now < year_ends_at(year):
        return RatingRefused(RatingRefusal.YEAR_NOT_ENDED,
                             f"{year} has not ended; it can be rated from {year + 1}-01-01 00:00 Asia/Shanghai")
    windows = await open_windows(session, year, now)
    if windows:
        codes = dict((await session.execute(select(Station.id, Station.code).where(
            Station.id.in_(list(windows))))).all())
        last = max(windows.values())
        names = ", ".join(sorted(codes[sid] for sid in windows))
        return RatingRefused(RatingRefusal.WINDOW_OPEN,
                             f"{year} is provisional until all extended windows have closed: {names} "
                             f"(the last closes {to_local(last):%Y-%m-%d %H:%M} Asia/Shanghai)")
    run = await _run(session, year)
    if run is not None and run.status == "confirmed":
        return RatingRefused(RatingRefusal.CONFIRMED,
                             f"{year} was confirmed by {run.confirmed_by}; reverse it first (rate {year} --reverse)")
    if (later := await _later_confirmed(session, year)) is not None:
        return later
    lines = await compute(session, year, settings)
    if run is None:
        run = RatingRun(year=year, status="preview", computed_at=now, revision=0)
        session.add(run)
        await session.flush()
    else:
        run.status, run.computed_at = "preview", now
        await session.execute(delete(Rating).where(Rating.year == year))
    session.add_all([Rating(year=year, station_id=x.station_id, cohort=x.cohort, rank=x.rank, points=x.points,
                            stars_before=x.stars_before, streak_before=x.streak_before, stars_after=x.stars_after,
                            move=x.move, delisted=x.delisted, subsidy_cny=x.subsidy_cny) for x in lines])
    await session.flush()
    return Outcome(year, "preview", run.revision, lines)


async def load(session: AsyncSession, year: int) -> Outcome | None:
    """The stored run of `year` (preview, confirmed or reversed) with its lines; None when never previewed."""
    run = await session.get(RatingRun, year, populate_existing=True)
    if run is None:
        return None
    rows = (await session.execute(select(Rating, Station).join(Station, Station.id == Rating.station_id)
                                  .where(Rating.year == year).order_by(Rating.id))).all()
    lines = [Line(st.id, st.code, st.name, st.kind, r.cohort, r.rank, r.points, r.stars_before, r.stars_after,
                  r.move, r.streak_before, r.delisted, r.subsidy_cny) for r, st in rows]
    return Outcome(year, run.status, run.revision, lines, already=True)


async def admins(session: AsyncSession, extra: Collection[str] = ()) -> list[str]:
    staff = (await session.scalars(select(Staff.openid).where(
        Staff.role == "admin", Staff.active.is_(True)).order_by(Staff.id))).all()
    return list(dict.fromkeys([*staff, *sorted(extra)]))


def operator_text(line: Line, year: int) -> str | None:
    """What the station's operators hear at confirmation (None: nothing to tell)."""
    words = {"name": line.name, "year": year, "points": line.points, "rank": line.rank,
             "before": line.stars_before, "after": line.stars_after}
    if line.rank is None:
        kind = operator_texts.RATING_KIND_WORDS.get(line.kind, operator_texts.RATING_KIND_WORDS["home"])
        return operator_texts.RATING_NEW_SUBSIDY.format(kind=kind, amount=line.subsidy_cny, **words) \
            if line.subsidy_cny else None
    if line.delisted:
        return operator_texts.RATING_DELISTED.format(**words)
    if line.move == "down":
        demoted = operator_texts.RATING_DEMOTED if line.stars_after < line.stars_before \
            else operator_texts.RATING_DEMOTED_AT_ONE
        return demoted.format(**words)
    if line.move == "up":
        promoted = operator_texts.RATING_PROMOTED if line.stars_after > line.stars_before \
            else operator_texts.RATING_KEPT_TOP
        text = promoted.format(**words)
        if line.subsidy_cny:
            text += operator_texts.RATING_TOP_SUBSIDY.format(year=year, amount=line.subsidy_cny)
        return text
    return None


async def confirm(
    session: AsyncSession, year: int, actor: str, *, now: datetime | None = None, admin_openids: Collection[str] = ()
) -> Outcome | RatingRefused:
    """Apply the stored preview exactly once: stars, streaks, delistings, notifications."""
    now = now or utcnow()
    if (bad := _check_year(year)) is not None:
        return bad
    run = await _run(session, year)
    if run is None or run.status == "reversed":
        return RatingRefused(RatingRefusal.NO_PREVIEW, f"{year} has no current preview; run `rate {year}` first")
    if run.status == "confirmed":
        stored = await load(session, year)
        assert stored is not None
        return stored
    if (later := await _later_confirmed(session, year)) is not None:
        return later
    stored = await load(session, year)
    assert stored is not None
    stations = {st.id: st for st in (await session.scalars(select(Station).where(
        Station.id.in_([x.station_id for x in stored.lines])).with_for_update())).all()}
    changed = [x.code for x in stored.lines if x.rank is not None and (
        stations[x.station_id].stars, stations[x.station_id].demotion_streak, stations[x.station_id].status)
        != (x.stars_before, x.streak_before, "active")]
    if changed:
        return RatingRefused(RatingRefusal.STALE, f"stations changed since the preview ({', '.join(changed[:5])}); "
                                                  f"run `rate {year}` again, then confirm")
    for x in stored.lines:
        if x.rank is None:
            continue
        st = stations[x.station_id]
        st.stars, st.demotion_streak = x.stars_after, x.streak_after
        if x.delisted:
            st.status, st.delisted_at = "delisted", now
            st.delisted_code, st.delisted_params = Delisting.RATING, {"year": year}
    run.status, run.confirmed_at, run.confirmed_by = "confirmed", now, actor
    outcome = Outcome(year, "confirmed", run.revision, stored.lines)
    notified = 0
    ops = await operators(session, [x.station_id for x in stored.lines])
    for x in stored.lines:
        text = operator_text(x, year)
        if text is None:
            continue
        payload = {"text": text, "template": "rating", "data": {
            "year": year, "rank": x.rank, "points": x.points, "stars_before": x.stars_before,
            "stars_after": x.stars_after, "move": x.move, "delisted": x.delisted, "subsidy_cny": x.subsidy_cny}}
        for openid in ops.get(x.station_id, []):
            notified += await outbox.add(session, f"rating:{year}:r{run.revision}:{x.station_id}:{openid}",
                                         openid, payload)
    text = admin_texts.RATING_ADMIN_CONFIRMED.format(year=year, actor=actor, **outcome.summary())
    for openid in await admins(session, admin_openids):
        notified += await outbox.add(session, f"rating:{year}:r{run.revision}:admin:{openid}", openid,
                                     {"text": text, "template": "rating_admin", "data": outcome.summary()})
    await session.flush()
    return Outcome(year, "confirmed", run.revision, stored.lines, notified=notified)


async def rate(
    session: AsyncSession, year: int, settings: Settings, *, mode: Literal["preview", "confirm", "reverse"],
    actor: str, now: datetime | None = None
) -> Outcome | RatingRefused:
    """An admin's rating command (`评星`, `talenthome rate`), in the caller's transaction: `preview` stores
    and shows a preview unless the year is confirmed (then the confirmed outcome, `already`); `confirm`
    previews and confirms at once, so what is shown is what is applied (a confirmed year: `already`);
    `reverse` undoes a confirmed year."""
    admin_openids = settings.admin_openid_set
    if mode == "reverse":
        return await reverse_rating(session, year, actor, now=now, admin_openids=admin_openids)
    stored = await load(session, year)
    if stored is not None and stored.status == "confirmed":
        return stored
    result = await preview(session, year, settings, now=now)
    if mode == "confirm" and isinstance(result, Outcome):
        return await confirm(session, year, actor, now=now, admin_openids=admin_openids)
    return result


async def tell_admins_preview(session: AsyncSession, outcome: Outcome, admin_openids: Collection[str] = ()) -> int:
    """Tell every admin once (per revision) that the year's preview is ready."""
    text = admin_texts.RATING_ADMIN_PREVIEW.format(year=outcome.year, **outcome.summary())
    told = 0
    for openid in await admins(session, admin_openids):
        told += await outbox.add(session, f"rating-preview:{outcome.year}:r{outcome.revision}:{openid}", openid,
                                 {"text": text, "template": "rating_admin", "data": outcome.summary()})
    return told


async def reverse_rating(
    session: AsyncSession, year: int, actor: str, *, now: datetime | None = None,
    admin_openids: Collection[str] = ()
) -> Outcome | RatingRefused:
    """Undo a confirmed year: stars, streaks and status back to what the Rating rows recorded before.
    (`now` is accepted like confirm's; a reversal records no time of its own.)"""
    if (bad := _check_year(year)) is not None:
        return bad
    run = await _run(session, year)
    if run is None or run.status != "confirmed":
        return RatingRefused(RatingRefusal.NOT_CONFIRMED, f"{year} is not confirmed; there is nothing to reverse")
    if (later := await _later_confirmed(session, year)) is not None:
        return later
    stored = await load(session, year)
    assert stored is not None
    stations = {st.id: st for st in (await session.scalars(select(Station).where(
        Station.id.in_([x.station_id for x in stored.lines])).with_for_update())).all()}
    for x in stored.lines:
        if x.rank is None:
            continue
        st = stations[x.station_id]
        st.stars, st.demotion_streak = x.stars_before, x.streak_before
        if x.delisted:
            st.status, st.delisted_at, st.delisted_code, st.delisted_params = "active", None, None, None
    run.status, run.confirmed_at, run.confirmed_by = "reversed", None, None
    run.revision += 1
    notified = 0
    ops = await operators(session, [x.station_id for x in stored.lines])
    for x in stored.lines:
        if x.rank is None or (x.stars_after == x.stars_before and not x.delisted):
            continue
        text = operator_texts.RATING_REVERSED.format(name=x.name, year=year, stars=x.stars_before,
                                            status=operator_texts.RATING_REVERSED_RELISTED if x.delisted else "")
        for openid in ops.get(x.station_id, []):
            notified += await outbox.add(session, f"rating-reversed:{year}:r{run.revision}:{x.station_id}:{openid}",
                                         openid, {"text": text, "template": "rating", "data": {"year": year}})
    text = admin_texts.RATING_ADMIN_REVERSED.format(year=year, actor=actor)
    for openid in await admins(session, admin_openids):
        notified += await outbox.add(session, f"rating-reversed:{year}:r{run.revision}:admin:{openid}", openid,
                                     {"text": text, "template": "rating_admin", "data": {"year": year}})
    await session.flush()
    return Outcome(year, "reversed", run.revision, stored.lines, notified=notified)
