"""Excel exports (openpyxl): a title row naming the period, Chinese column headers, numbers as numbers.

Kinds: month-board, year-board (with stars and eligibility), rating (moves, delistings, subsidy list),
activities (sign-ups, attendance, satisfaction rate, points), audit, gifts (the catalogue as it is now:
where each gift is offered, cost, stock, how many were redeemed, on offer or retired; no period).

Every text is written as text: titles, names, comments and audit arguments come from people, and openpyxl
would store a string starting with `=` as a live formula (a `=HYPERLINK(...)` title in the file officials
open). `_sheet` marks every string cell as a string (`data_type "s"`), so `=`, `+`, `-`, `@`, a tab or a
carriage return at the start stays exactly what was typed. (XML reads a carriage return back as a line
feed, so `_sheet` writes line ends as line feeds: what a reader gets is what was written.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import gifts, periods, services
from scoring.boards import station_board
from scoring.clock import utcnow
from scoring.models import Activity, AuditLog, Rating, RatingRun, Station
from scoring.operations import format_local, summarise_activity
from scoring.texts import month_label

KINDS = ("month-board", "year-board", "rating", "activities", "audit", "gifts", "services")
TYPE_NAMES = {"comprehensive": "综合型", "industry": "行业型", "professional": "专业型", "service": "服务型"}
KIND_NAMES = {"home": "人才之家", "community": "人才社区"}
MOVE_NAMES = {"up": "晋升一星", "down": "降低一星", "same": "不变"}
HEADERS = {
    "month-board": ["排名", "站点编码", "站点名称", "类型", "县市区", "月积分"],
    "year-board": ["排名", "站点编码", "站点名称", "类别", "类型", "县市区", "星级", "参与排名", "年度积分",
                   "状态"],
    "rating": ["排名", "站点编码", "站点名称", "类别", "年度积分", "原星级", "新星级", "变动", "摘牌",
               "补助金额(元)"],
    "activities": ["编号", "站点编码", "活动名称", "开始时间", "结束时间", "名额", "报名人数", "到场人数", "评价数",
                   "满意率", "活动积分"],
    "audit": ["序号", "时间", "操作人", "角色", "指令", "结果"],
    "gifts": ["编号", "礼品名称", "站点编码", "领取站点", "所需积分", "库存", "已兑换", "待处理", "状态", "说明"],
    "services": ["站点编码", "站点名称", "咨询数", "已答复", "首次答复用时中位数(分钟)", "首次答复用时90%(分钟)",
                 "超时升级", "评价数", "平均评分", "已结束预约", "爽约", "爽约率"],
}
Rows = list[tuple[Any, ...]]


class ExportError(ValueError):
    pass


def _sheet(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> Workbook:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "导出"
    ws.append([title])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append(list(headers))
    for cell in ws[2]:
        cell.font = Font(bold=True)
    # Count the rows here: openpyxl's max_row (and ws[n]) scan every cell, which made an export quadratic
    # (10,000 rows: 21 s of CPU; found by bench/scale.py).
    n = 2
    for row in rows:
        ws.append(list(row))
        n += 1
        for col, value in enumerate(row, 1):
            if isinstance(value, str):
                cell = ws.cell(row=n, column=col)
                if "\r" in value:
                    cell.value = value.replace("\r\n", "\n").replace("\r", "\n")
                cell.data_type = "s"  # text, never a formula (see the module's docstring)
    for i, h in enumerate(headers):
        ws.column_dimensions[ws.cell(row=2, column=i + 1).column_letter].width = max(10, len(h) * 2 + 4)
    return wb


def default_period(kind: str, now: datetime) -> str:
    if kind == "gifts":  # a snapshot: the local date it was taken
        return periods.local_day(now).isoformat()
    if kind in ("month-board", "activities", "audit", "services"):
        return periods.month_key(now)
    return str(periods.year_of(now) - (1 if kind == "rating" else 0))


def _period(kind: str, key: str) -> periods.Period:
    try:
        return periods.Period.parse("month" if len(key) == 7 else "year", key)
    except ValueError as err:
        raise ExportError(str(err)) from None


async def build(session: AsyncSession, kind: str, period: str | None = None, *, now: datetime | None = None
                ) -> tuple[Workbook, str]:
    """The workbook and the period it covers."""
    now = now or utcnow()
    if kind not in KINDS:
        raise ExportError(f"unknown export {kind!r}; one of: {', '.join(KINDS)}")
    if kind == "gifts":
        if period:
            raise ExportError("gifts takes no period: it lists the catalogue as it is now")
        key = default_period(kind, now)
        catalogue: Rows = [
            (v.id, v.name, v.station_code, v.station_name or "全市通用", v.cost, v.stock, v.redeemed, v.pending,
             "上架" if v.active else "已下架", v.description or None) for v in await gifts.gift_views(session)]
        return _sheet(f"礼品目录（截至 {key}）", HEADERS[kind], catalogue), key
    key = period or default_period(kind, now)
    if kind == "month-board":
        p = _period(kind, key)
        if p.kind != "month":
            raise ExportError("month-board needs a month period like 2026-11")
        board = await station_board(session, p, now=now)
        stations = {s.id: s for s in (await session.scalars(select(Station))).all()}
        rows: Rows = [(r.rank, r.code, r.standing.name, TYPE_NAMES[stations[r.standing.id].type],
                 stations[r.standing.id].county, r.points) for r in board]
        return _sheet(f"市级人才之家积分月榜（{month_label(key)}）", HEADERS[kind], rows), key
    if kind == "year-board":
        p = _period(kind, key)
        if p.kind != "year":
            raise ExportError("year-board needs a year period like 2026")
        board = await station_board(session, p, now=now)
        ranked = {r.standing.id: r for r in board}
        rows = []  # reuses the name: one kind per call
        for st in (await session.scalars(select(Station).order_by(Station.code))).all():
            r = ranked.get(st.id)
            rows.append((r.rank if r else None, st.code, st.name, KIND_NAMES[st.kind], TYPE_NAMES[st.type],
                         st.county, st.stars, "是" if r else "否", r.points if r else None,
                         "正常" if st.status == "active" else "已摘牌"))
        rows.sort(key=lambda row: (row[0] is None, row[0] or 0, row[1]))
        return _sheet(f"市级人才之家积分年榜（{key}年度）", HEADERS[kind], rows), key
    if kind == "rating":
        if not (len(key) == 4 and key.isdigit()):
            raise ExportError("rating needs a year like 2026")
        run = await session.get(RatingRun, int(key))
        if run is None:
            raise ExportError(f"no rating for {key} yet (run: talenthome rate {key})")
        result = (await session.execute(select(Rating, Station).join(Station, Station.id == Rating.station_id)
                                        .where(Rating.year == int(key)).order_by(Rating.rank, Station.code))).all()
        rows = [(r.rank, st.code, st.name, KIND_NAMES[st.kind], r.points, r.stars_before, r.stars_after,
                 MOVE_NAMES.get(r.move, r.move), "是" if r.delisted else "否", r.subsidy_cny) for r, st in result]
        status = {"preview": "预览", "confirmed": "已确认", "reversed": "已撤销"}.get(run.status, run.status)
        return _sheet(f"市级人才之家 {key} 年度星级评定（{status}）", HEADERS[kind], rows), key
    if kind == "activities":
        p = _period(kind, key)
        start, end = p.bounds()
        acts = (await session.execute(select(Activity, Station.code).join(Station, Station.id == Activity.station_id)
                                      .where(Activity.starts_at >= start, Activity.starts_at < end)
                                      .order_by(Activity.starts_at, Activity.id))).all()
        rows = []
        for a, code in acts:
            s = await summarise_activity(session, a, now=now)
            rows.append((a.id, code, a.title, format_local(a.starts_at), format_local(a.ends_at), a.capacity,
                         s.signups, s.attendees, s.replies,
                         round(s.satisfaction_rate, 4) if s.satisfaction_rate is not None else None, s.points))
        return _sheet(f"市级人才之家活动统计（{key}）", HEADERS[kind], rows), key
    p = _period(kind, key)
    start, end = p.bounds()
    if kind == "services":  # consultations asked and bookings' slots in the period, per station
        figures = await services.overview(session, start, end)
        rows = [(r.code or "-", r.name or "市级咨询", r.questions, r.answered,
                 None if r.median_minutes is None else round(r.median_minutes, 1),
                 None if r.p90_minutes is None else round(r.p90_minutes, 1), r.escalated, r.ratings,
                 None if r.rating_avg is None else round(r.rating_avg, 2), r.settled, r.no_shows,
                 None if r.no_show_rate is None else round(r.no_show_rate, 4)) for r in figures]
        return _sheet(f"咨询与预约统计（{key}）", HEADERS[kind], rows), key
    logs = (await session.scalars(select(AuditLog).where(AuditLog.at >= start, AuditLog.at < end)
                                  .order_by(AuditLog.id))).all()
    rows = [(a.id, format_local(a.at), a.actor, a.role, a.command, a.outcome) for a in logs]
    return _sheet(f"操作审计记录（{key}）", HEADERS[kind], rows), key
