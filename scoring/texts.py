"""The domain's words: every Chinese sentence the scoring core renders into an outbox row, by audience.

The domain decides and counts; the sentences a person reads are written here once, so the voice stays one
voice and `tests/test_architecture.py` can hold CJK strings to the texts modules. Labels (`month_label`,
`local_label`) render a period or a time the way every message names it.
"""

from __future__ import annotations

from datetime import datetime

from scoring.periods import to_local


def month_label(key: str) -> str:
    """'2026-03' -> '2026年3月'."""
    y, m = key.split("-")
    return f"{y}年{int(m)}月"


def local_label(at: datetime) -> str:
    """A naive UTC time as Asia/Shanghai '3月5日 14:00'."""
    loc = to_local(at)
    return f"{loc.month}月{loc.day}日 {loc:%H:%M}"


# -- operators: the calendar (scoring/calendar.py): month report, plan reminder -------------------------------
MONTH_REPORT = ("【月度积分报告】{name}{month}积分{points}分,排名第{rank}名({change})。"
                "{next_month}首屏轮播站点:{featured}。请继续组织好活动,欢迎人才常来打卡。")
MONTH_REPORT_FEATURED = ("【月度积分报告】恭喜!{name}{month}积分{points}分,排名第1名({change}),"
                         "将在{next_month}登上首屏轮播。请继续保持。")
NO_FEATURE = "暂无(本月无站点获得积分)"
CHANGE_NEW = "上月未参与排名"
CHANGE = "上月第{rank}名,积分{delta}"
PLAN_REMINDER = ("【活动计划提醒】{name}尚未发布{month}的活动。请在{month}1日前通过平台发布下月活动计划,"
                 "发布后人才即可报名。")

# -- talents: the calendar (scoring/calendar.py): activity reminder, satisfaction invitation -------------------
ACTIVITY_REMINDER = "【活动提醒】您报名的活动「{title}」将于{time}开始,请准时参加,到场后扫描活动码签到。"
INVITATION = ("感谢您参加「{title}」!请直接回复数字1–5为本次活动打分(5分为非常满意),"
              "也可在数字后附上意见。请在{deadline}前回复。")


# -- admins: what a fraud flag says (scoring/fraud.py; stored in Flag.detail, listed by 风险) -----------------
FLAG_MULTI_STATION = "{minutes}分钟内在{n}个不同站点打卡：{codes}"
FLAG_DAILY_VOLUME = "{day}打卡{count}次，超过阈值{limit:g}（近30日中位数的{factor}倍，至少{floor}次）"
LIST_SEP = "、"
