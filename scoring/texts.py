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


# -- the annual rating (scoring/rating.py): stations (operators) and admins -------------------------------------
RATING_PROMOTED = ("【年度评星】{name}{year}年度积分{points}分,排名第{rank}名,位列前20%,"
            "星级由{before}星晋升为{after}星。祝贺!请继续保持。")
RATING_KEPT_TOP = "【年度评星】{name}{year}年度积分{points}分,排名第{rank}名,位列前20%,继续保持五星。祝贺!请继续保持。"
RATING_DEMOTED = ("【年度评星】{name}{year}年度积分{points}分,排名第{rank}名,位列后10%,星级由{before}星降为{after}星。"
           "请分析原因、抓好整改。如明年再次降星,将予以摘牌。")
RATING_DEMOTED_AT_ONE = ("【年度评星】{name}{year}年度积分{points}分,排名第{rank}名,位列后10%,星级保持一星,"
                  "但计为一次降星。请分析原因、抓好整改。如明年再次降星,将予以摘牌。")
RATING_DELISTED = ("【年度评星】{name}{year}年度积分{points}分,排名第{rank}名,位列后10%,连续两年降星,依规予以摘牌。"
            "站点码已停用,如有疑问请联系市人才发展促进会。")
RATING_TOP_SUBSIDY = "已列入{year}年度补助名单(每家不超过{amount}元),请留意主管部门通知。"
RATING_NEW_SUBSIDY = ("【运作经费补助】{name}为{year}年度新认定的市级{kind},已列入运作经费补助名单({amount}元),"
               "请留意主管部门通知。")
RATING_KIND_WORDS = {"home": "人才之家", "community": "人才社区"}
RATING_ADMIN_CONFIRMED = ("【年度评星】{year}年度评星已由{actor}确认:晋升{up}家、降星{down}家、摘牌{delisted}家;"
                   "补助名单{subsidies}家,合计{total}元。详情请用命令 talenthome rate {year} 查看。")
RATING_ADMIN_PREVIEW = ("【年度评星】{year}年度评星预览已生成:晋升{up}家、降星{down}家、摘牌{delisted}家;"
                 "补助名单{subsidies}家,合计{total}元。请核对后用命令 talenthome rate {year} --confirm 确认。")
RATING_REVERSED = "【年度评星】{name}{year}年度评星结果已撤销,星级恢复为{stars}星{status}。重新评定后将另行通知。"
RATING_REVERSED_RELISTED = ",站点恢复运营"
RATING_ADMIN_REVERSED = ("【年度评星】{year}年度评星已由{actor}撤销,站点星级与状态已恢复。"
                         "如需重新评定,请再次预览并确认。")
RATING_DELISTED_REASON = "{year}年度评星位列后10%,连续两年降星(摘牌)"  # stored on the station


# -- consultations (scoring/consultations.py): escalation to the station's staff and to admins ------------------
CONSULT_ESCALATED_STAFF = ("【咨询待处理】咨询 #{id} 已超过 {hours} 个工作小时无人接单：{question}\n"
                           "请发送“接单 #{id}”认领，或“答复 #{id} 内容”直接答复。")
CONSULT_ESCALATED_ADMIN = ("【咨询超时】{station}的咨询 #{id} 已超过 {hours} 个工作小时无人接单：{question}\n"
                           "请督促站点处理，或发送“答复 #{id} 内容”直接答复。")
CONSULT_CITY = "市级"


# -- talents: bookings (scoring/bookings.py): the reminder before a slot --------------------------------------
BOOKING_REMINDER = ("【预约提醒】您预约的{station}{service}将于{time}开始（预约号 #{id}）。"
                    "到站后扫描站点码打卡即可；如不能前往，请发送“取消预约 {id}”。")
BOOKING_SERVICE = "（{service}）"
BOOKING_VISIT_WORD = "到站交流"
