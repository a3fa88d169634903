"""Every word the window shows people (Chinese): JSON error messages and the pages' texts. One module, shared
by web/api.py, web/auth.py and web/pages.py: add, don't reorganise."""

from __future__ import annotations

# JSON API errors, by error code (the domain's reason where there is one).
ERRORS: dict[str, str] = {
    "unknown_parameter": "不支持的参数：{name}。",
    "bad_parameter": "参数 {name} 的值不正确。",
    "not_found": "没有找到您要的内容。",
    "station_not_found": "没有这个站点。",
    "activity_not_found": "没有这个活动。",
    "signup_not_found": "没有这条报名记录。",
    "bad_body": "请求内容不是有效的 JSON。",
    "unauthenticated": "请先登录（微信授权）。",
    "bad_code": "微信登录失败：登录凭证无效或已过期，请重试。",
    "wechat_unavailable": "微信服务暂时不可用，请稍后再试。",
    "not_bound": "您还没有绑定人才身份：请在公众号发送“绑定 证书编号 姓名”。",
    "bad_state": "登录已失效，请重新打开页面。",
    "method_not_allowed": "不支持这种请求方式。",
    "too_large": "请求内容太大。",
    "internal": "服务暂时不可用，请稍后再试。",
    "bad_content_type": "请求内容须为 JSON（Content-Type: application/json）。",
    # Sign-up refusals (scoring.signups.SignupRefusal), as the bot words them.
    "closed": "活动 #{id} 已开始或已结束，报名和取消都已截止。",
    "full": "活动 #{id} 名额已满。",
    "already": "您已报名活动 #{id}，无需重复报名。",
    "not_signed_up": "您没有报名活动 #{id}。",
}

# Operators hear of a sign-up made in the window as they do of one made in the bot (scoring.signups).
OP_NEW_SIGNUP = "【新报名】{name} 报名了活动 #{id} {title}，当前报名 {taken}{cap} 人。"
OP_ACTIVITY_FULL = "【名额已满】活动 #{id} {title} 的 {cap} 个名额已全部报满。"

# A ledger line in words (`/api/v1/me`, the /me page), by rule id; {station} {activity} {gift} {reason}.
LINE_VISIT = "在{station}打卡"
LINE_VISIT_ACTIVITY = "参加活动“{activity}”（{station}）"
LINE_REDEMPTION = "兑换礼品“{gift}”"
LINE_VOID = "撤销：{what}（原因：{reason}）"
LINE_OTHER = "积分变动（规则 {rule}）"
NO_REASON = "未注明"

# The H5 login's pages (text/html, shown by WeChat's browser when something went wrong).
LOGIN_FAILED_TITLE = "登录失败"
LOGIN_AGAIN = "返回首页"


def error_message(code: str, **fields: object) -> str:
    template = ERRORS.get(code, "请求无法完成。")
    try:
        return template.format(**fields)
    except (KeyError, IndexError):
        return template


# -- the pages (web/pages.py, web/templates/) ---------------------------------------------------------
# Templates read these as `t.PAGE[...]`, `t.TYPE_NAMES[...]`, ...; nothing Chinese is written in Python views.

PAGE: dict[str, str] = {
    "site": "泉州人才之家",
    "nav_home": "排行榜",
    "nav_me": "我的积分",
    "nav_admin": "管理",
    "footer": "泉州市人才之家积分平台",
    "home_title": "人才之家积分排行榜",
    "tab_total": "总积分",
    "tab_year": "年度",
    "tab_month": "本月",
    "col_rank": "排名",
    "col_station": "站点",
    "col_points": "积分",
    "board_empty": "暂无上榜站点。",
    "updated": "更新于 ",
    "live": "实时更新",
    "featured_title": "首屏推荐",
    "featured_now": "{month} 月度之星",
    "featured_past": "{month} 推荐（{closed} 月第一名）",
    "featured_none": "{month} 暂无推荐站点",
    "featured_empty": "本月还没有推荐站点：每月积分第一的站点在次月首屏展示。",
    "featured_badge": "本月推荐",
    "all_districts": "全部县市区",
    "all_types": "全部类型",
    "filter": "筛选",
    "stars": "{n} 星",
    "points_unit": "{n} 分",
    "station_kind": "类别",
    "station_type": "类型",
    "station_district": "县市区",
    "station_address": "地址",
    "station_hours": "开放时间",
    "station_stars": "星级",
    "not_given": "未填写",
    "rank_total": "总榜",
    "rank_year": "年度榜",
    "rank_month": "本月榜",
    "rank_of": "第 {rank} 名",
    "not_ranked": "未排名",
    "not_eligible": "该站点认定次年起参与排名，积分照常记录。",
    "featured_months": "首屏推荐月份：{months}",
    "history_title": "近 12 个月积分",
    "history_desc": "每月积分柱状图，单位：分",
    "activities_title": "近期活动",
    "activities_empty": "暂无即将开始的活动。",
    "services_title": "服务清单",
    "services_duties": "服务职责：",
    "services_common": "共性服务",
    "services_bookable": "可预约，每时段 {cap} 人",
    "book": "预约到站",
    "book_day": "日期",
    "book_hour": "时段",
    "book_service": "服务",
    "book_visit": "到站交流",
    "book_login": "登录后预约",
    "book_ok": "预约成功（预约号 #{id}），开始前会在公众号提醒您；到站扫码打卡即可。",
    "services_book_hint": "预约到站：在公众号发送“预约 {code} 日期 时间 [服务编号]”，例如：预约 {code} 明天 10:00",
    "seats_free": "剩余 {n} 个名额",
    "seats_unlimited": "不限名额",
    "seats_full": "名额已满",
    "signup": "报名",
    "signed_up": "报名成功，活动开始前会提醒您。",
    "signed_up_button": "已报名",
    "signup_failed": "报名没有成功，请稍后再试。",
    "signup_login": "登录后报名",
    "not_found_title": "没有找到",
    "not_found": "没有这个站点，或它已不再开放。",
    "back_home": "返回排行榜",
    "me_title": "我的积分",
    "balance": "可用积分",
    "points_summary": "今年 {year} 分 · 本月 {month} 分 · 累计 {total} 分",
    "ledger_title": "积分明细",
    "ledger_empty": "暂无积分记录。到人才之家扫码打卡、参加活动即可获得积分。",
    "ledger_more": "仅显示最近 {n} 条。",
    "my_signups": "我的报名",
    "my_signups_empty": "您还没有报名活动。",
    "my_code": "我的专属码",
    "my_code_hint": "到站时请工作人员扫码即可打卡，二维码会自动更新。",
    "my_code_alt": "我的专属二维码",
    "not_bound_title": "尚未绑定",
    "not_bound": "请在“泉州人才之家”公众号发送“绑定 证书编号 姓名”，完成绑定后再打开本页。",
    "kiosk_title": "扫码打卡",
    "kiosk_hint": "微信扫一扫，到站打卡",
    "kiosk_today": "今日打卡",
    "kiosk_wait": "二维码准备中，请稍候……",
    "kiosk_alt": "打卡二维码",
    "admin_title": "全市概览",
    "admin_forbidden_title": "无权访问",
    "admin_forbidden": "此页面仅限管理员访问。",
    "coverage_title": "人才绑定覆盖率",
    "coverage_district": "县市区",
    "coverage_bound": "已绑定",
    "coverage_registered": "已登记",
    "coverage_rate": "覆盖率",
    "coverage_total": "合计",
    "checkins_title": "各县市区月度打卡",
    "checkins_desc": "近 6 个月各县市区的打卡次数",
    "no_plan_title": "未报下月计划的站点（{month}）",
    "no_plan_empty": "所有站点都已发布下月活动计划。",
    "waiting_title": "待处理",
    "held_visits": "暂扣的打卡",
    "dead_letters": "失败任务",
    "exports_title": "报表下载（Excel）",
    "services_overview_title": "咨询与预约",
    "services_overview_empty": "暂无咨询或已结束的预约。",
    "services_overview_line": "咨询 {questions} 条，已答复 {answered}，首次答复用时中位数 {median}、90% {p90}，"
                              "超时升级 {escalated}，评价 {ratings} 条（平均 {avg}）；预约 {settled} 次，爽约率 {rate}",
    "services_city": "市级咨询",
    "minutes": "{n} 分钟",
    "none": "—",
    "export_month-board": "本月站点排行",
    "export_year-board": "年度站点排行",
    "export_rating": "年度评星结果",
    "export_activities": "本月活动汇总",
    "export_audit": "操作日志",
    "export_gifts": "礼品目录",
    "export_services": "本月咨询与预约",
}

# Activity categories (policy measure 9; scoring.services.CATEGORIES), as the bot names them.
CATEGORY_NAMES: dict[str, str] = {"lecture": "人才讲堂", "seminar": "研修班", "culture": "在地文化讲解",
                                  "salon": "交流沙龙", "other": "其他"}
TYPE_NAMES: dict[str, str] = {"comprehensive": "综合型", "industry": "行业型", "professional": "专业型",
                              "service": "服务型"}
KIND_NAMES: dict[str, str] = {"home": "人才之家", "community": "人才社区"}

RULE_NAMES: dict[str, str] = {"R1": "活动积分", "R2": "媒体报道", "R3": "打卡积分", "R4": "满意度调查",
                              "V": "撤销冲正", "G": "礼品兑换"}

# Booking errors of web/api_services.py (the bot's words for the same refusals are in bot/texts.py).
BOOKING_ERRORS: dict[str, str] = {
    "service_not_found": "该站点没有这个服务项目。",
    "booking_not_found": "没有找到您的预约 #{id}。",
    "delisted": "该站点已摘牌，暂不接受预约。",
    "not_bookable": "这个服务项目不需要预约，可直接到站办理。",
    "bad_slot": "请选择整点时段，{first}:00 至 {last}:00。",
    "past": "这个时段已过，请选择之后的时段。",
    "too_far": "最多可预约 {limit} 天内的时段。",
    "full": "这个时段已约满，请换一个时段。",
    "already": "您已预约了这个时段。",
    "too_many": "您已有 {limit} 个未完成的预约，请先完成或取消后再预约。",
    "started": "预约 #{id} 的时段已开始，无法取消。",
    "not_open": "预约 #{id} 已取消或已结束。",
}
# The operators' alert of a booking made in the window, as the bot's (bot/texts.py OP_NEW_BOOKING; web/ may not
# import bot/).
OP_NEW_BOOKING = "【新预约】{name} 预约了 {time} 到站{service}（预约号 #{id}），该时段已约 {taken}/{cap} 人。"
