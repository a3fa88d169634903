"""reason codes (issue 10): a flag's numbers and a delisting's code instead of rendered Chinese

Flag.detail (a sentence) becomes Flag.params (JSON: the rule's numbers); Station.delisted_reason (a
sentence) becomes Station.delisted_code + delisted_params (JSON). Existing rows are read back: a sentence
the code wrote (the two fraud rules, the rating's delisting) becomes its numbers; any other text (an
admin's typed reason, an unknown sentence) is kept whole as {"text": ...}. The downgrade renders them again.

The sentences are copied here as they were written (scoring/texts/admin.py may change later; a migration
must not).

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-02 15:30:00
"""
from __future__ import annotations

import json
import re
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0008'
branch_labels = None
depends_on = None

MULTI_STATION = re.compile(r"^(\d+)分钟内在(\d+)个不同站点打卡：(.*)$", re.S)
DAILY_VOLUME = re.compile(r"^(\d{4}-\d{2}-\d{2})打卡(\d+)次，超过阈值([0-9.e+]+)（近30日中位数的(\d+)倍，至少(\d+)次）$")
RATING_DELISTED = re.compile(r"^(\d{4})年度评星位列后10%,连续两年降星\(摘牌\)$")


def flag_params(rule: str, detail: str | None) -> dict[str, Any]:
    """The numbers of a flag's stored sentence, or {"text": sentence} when it is not one the code wrote."""
    detail = detail or ""
    if rule == "multi_station" and (m := MULTI_STATION.match(detail)):
        codes = m.group(3).split("、") if m.group(3) else []
        if len(codes) == int(m.group(2)):
            return {"minutes": int(m.group(1)), "n": int(m.group(2)), "codes": codes}
    if rule == "daily_volume" and (m := DAILY_VOLUME.match(detail)):
        limit = float(m.group(3))
        return {"day": m.group(1), "count": int(m.group(2)), "limit": int(limit) if limit.is_integer() else limit,
                "factor": int(m.group(4)), "floor": int(m.group(5))}
    return {"text": detail} if detail else {}


def flag_detail(rule: str, params: dict[str, Any]) -> str:
    if "text" in params:
        return str(params["text"])
    if rule == "multi_station" and "codes" in params:
        return f"{params['minutes']}分钟内在{params['n']}个不同站点打卡：{'、'.join(params['codes'])}"
    if rule == "daily_volume" and "day" in params:
        return (f"{params['day']}打卡{params['count']}次，超过阈值{params['limit']:g}"
                f"（近30日中位数的{params['factor']}倍，至少{params['floor']}次）")
    return ""


def delisting(reason: str | None) -> tuple[str | None, dict[str, Any] | None]:
    if reason is None:
        return None, None
    if m := RATING_DELISTED.match(reason):
        return "rating", {"year": int(m.group(1))}
    return "admin", {"text": reason}


def delisted_reason(code: str | None, params: dict[str, Any] | None) -> str | None:
    if code is None:
        return None
    params = params or {}
    if code == "rating" and "year" in params:
        return f"{params['year']}年度评星位列后10%,连续两年降星(摘牌)"
    return str(params.get("text", ""))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column('flags', sa.Column('params', sa.JSON(), server_default='{}', nullable=False))
    op.add_column('stations', sa.Column('delisted_code', sa.String(length=32), nullable=True))
    op.add_column('stations', sa.Column('delisted_params', sa.JSON(), nullable=True))
    flags = sa.table('flags', sa.column('id', sa.Integer), sa.column('rule', sa.String),
                     sa.column('detail', sa.Text), sa.column('params', sa.JSON))
    for fid, rule, detail in bind.execute(sa.select(flags.c.id, flags.c.rule, flags.c.detail)).all():
        bind.execute(flags.update().where(flags.c.id == fid).values(params=flag_params(rule, detail)))
    stations = sa.table('stations', sa.column('id', sa.Integer), sa.column('delisted_reason', sa.Text),
                        sa.column('delisted_code', sa.String), sa.column('delisted_params', sa.JSON))
    for sid, reason in bind.execute(sa.select(stations.c.id, stations.c.delisted_reason).where(
            stations.c.delisted_reason.is_not(None))).all():
        code, params = delisting(reason)
        bind.execute(stations.update().where(stations.c.id == sid).values(delisted_code=code,
                                                                          delisted_params=params))
    # plain ALTER TABLE .. DROP COLUMN (SQLite 3.35+): a batch copy of the table would lose its CHECKs
    op.drop_column('flags', 'detail')
    op.drop_column('stations', 'delisted_reason')


def downgrade() -> None:
    bind = op.get_bind()
    op.add_column('flags', sa.Column('detail', sa.Text(), server_default='', nullable=False))
    op.add_column('stations', sa.Column('delisted_reason', sa.Text(), nullable=True))
    flags = sa.table('flags', sa.column('id', sa.Integer), sa.column('rule', sa.String),
                     sa.column('detail', sa.Text), sa.column('params', sa.JSON))
    for fid, rule, params in bind.execute(sa.select(flags.c.id, flags.c.rule, flags.c.params)).all():
        bind.execute(flags.update().where(flags.c.id == fid).values(detail=flag_detail(rule, _json(params) or {})))
    stations = sa.table('stations', sa.column('id', sa.Integer), sa.column('delisted_reason', sa.Text),
                        sa.column('delisted_code', sa.String), sa.column('delisted_params', sa.JSON))
    for sid, code, params in bind.execute(sa.select(stations.c.id, stations.c.delisted_code,
                                                    stations.c.delisted_params).where(
            stations.c.delisted_code.is_not(None))).all():
        bind.execute(stations.update().where(stations.c.id == sid).values(
            delisted_reason=delisted_reason(code, _json(params))))
    op.drop_column('stations', 'delisted_params')
    op.drop_column('stations', 'delisted_code')
    op.drop_column('flags', 'params')
