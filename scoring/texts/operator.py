"""What a station's operators read from the scoring core (outbox rows): rank changes, holds, the hourly digest
of the station's entries (scoring/notify.py), the month report and plan reminder (scoring/calendar.py), the
rating's outcome (scoring/rating.py), consultations waiting (scoring/consultations.py)."""

from __future__ import annotations

# -- rank changes on the month board (scoring/notify.py `check_ranks`) -------------------------------------------
RANK_TEXTS = {
    "enter_top3": "您好！{name}在{month}月度排行榜升至第{new}名，进入前三（{points}分）。感谢用心运营，"
                  "请继续保持。发送「排名」可查看榜单。",
    "leave_top3": "您好，{name}在{month}月度排行榜由第{old}名降至第{new}名，暂时离开前三（{points}分）。"
                  "可多组织活动、邀请人才打卡。发送「排名」可查看榜单。",
    "up": "您好！{name}在{month}月度排行榜由第{old}名升至第{new}名（{points}分）。请继续加油，"
          "发送「排名」可查看榜单。",
    "down": "您好，{name}在{month}月度排行榜由第{old}名降至第{new}名（{points}分）。可多组织活动、"
            "邀请人才打卡。发送「排名」可查看榜单。",
}

# -- a hold on one of the station's visits (scoring/notify.py) ---------------------------------------------------
HOLD_OPERATOR = ("提醒：{station}有一次打卡（人才{talent}）因30分钟内在{n}个站点打卡，积分暂缓计入，"
                 "待管理员审核。您无需操作，如有疑问请联系管理员。")

# -- the hourly digest of the station's entries (scoring/notify.py `send_digests`) --------------------------------
DIGEST = "本站（{station}）过去一小时积分变动：{lines}；合计{total:+d}分。发送「排名」可查看榜单。"
DIGEST_SEP = "；"
DIGEST_LINES = {
    "R1": "活动「{title}」{amount:+d}（R1）",
    "R2": "媒体报道「{title}」{amount:+d}（R2）",
    "R4": "满意度调查 {amount:+d}（R4）",
}
DIGEST_VOID = "作废 {amount:+d}（{what}，原因：{reason}）"
DIGEST_VOID_WHAT = {
    "visit": "打卡 #{id}",
    "activity": "活动「{title}」",
    "media": "媒体报道「{title}」",
    "survey": "满意度调查 #{id}",
}
DIGEST_OTHER = "{rule} {amount:+d}"

# -- the calendar (scoring/calendar.py): month report, plan reminder -----------------------------------------------
MONTH_REPORT = ("【月度积分报告】{name}{month}积分{points}分,排名第{rank}名({change})。"
                "{next_month}首屏轮播站点:{featured}。请继续组织好活动,欢迎人才常来打卡。")
MONTH_REPORT_FEATURED = ("【月度积分报告】恭喜!{name}{month}积分{points}分,排名第1名({change}),"
                         "将在{next_month}登上首屏轮播。请继续保持。")
NO_FEATURE = "暂无(本月无站点获得积分)"
CHANGE_NEW = "上月未参与排名"
CHANGE = "上月第{rank}名,积分{delta}"
PLAN_REMINDER = ("【活动计划提醒】{name}尚未发布{month}的活动。请在{month}1日前通过平台发布下月活动计划,"
                 "发布后人才即可报名。")

# -- the annual rating (scoring/rating.py) --------------------------------------------------------------------------
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
RATING_REVERSED = "【年度评星】{name}{year}年度评星结果已撤销,星级恢复为{stars}星{status}。重新评定后将另行通知。"
RATING_REVERSED_RELISTED = ",站点恢复运营"

# -- consultations (scoring/consultations.py): a question waiting for the station's staff ---------------------------
CONSULT_ESCALATED_STAFF = ("【咨询待处理】咨询 #{id} 已超过 {hours} 个工作小时无人接单：{question}\n"
                           "请发送“接单 #{id}”认领，或“答复 #{id} 内容”直接答复。")
