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
