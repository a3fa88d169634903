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
}


def error_message(code: str, **fields: object) -> str:
    template = ERRORS.get(code, "请求无法完成。")
    try:
        return template.format(**fields)
    except (KeyError, IndexError):
        return template
