"""Every sentence a talent, operator or admin reads. One voice: short, polite, says what happened and what
to do next. Placeholders are str.format fields."""

from __future__ import annotations

WELCOME = (
    "欢迎关注泉州市高层次人才“人才之家”！\n"
    "请先绑定身份：发送“绑定 人才证号 姓名”，例如：绑定 QZ2026001 张三。\n"
    "发送“帮助”查看全部功能。"
)

HELP = (
    "可用指令：\n"
    "绑定 <人才证号> <姓名>：绑定身份\n"
    "活动：查看近期活动；报名 <编号>；取消 <编号>\n"
    "积分：查看积分；排名：查看排行榜\n"
    "礼品：查看礼品；兑换 <编号>\n"
    "我的码：出示个人签到码\n"
    "到站扫码即可打卡，活动结束后回复 1-5 评价活动。"
)

UNKNOWN = "抱歉，没有看懂“{word}”。发送“帮助”查看可用指令。"
EMPTY_TEXT = "请输入指令，发送“帮助”查看可用指令。"
NOT_ALLOWED = "抱歉，您没有使用“{word}”的权限。如需开通，请联系市人才发展促进会。"
PLAIN_MODE_REFUSED = (
    "为保障安全，工作人员指令仅在公众号安全模式（消息加密）下受理。请联系管理员开启安全模式后再试。"
)
BUSY = "系统繁忙，请稍后再试。"
UNSUPPORTED = "暂不支持此类消息，请发送文字指令，发送“帮助”查看。"
