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

# -- operators -------------------------------------------------------------------------------------
OP_NO_STATION = "您的账号尚未关联站点，请联系管理员。"
OP_PUBLISH_USAGE = (
    "格式：发布活动 标题 | 开始时间 | 结束时间 | 名额(不限填0) | 主题\n"
    "例如：发布活动 人才沙龙 | 2026-12-05 14:00 | 2026-12-05 16:00 | 30 | 数字经济"
)
OP_PUBLISHED = "活动 #{id} 已发布：{title}，{start} 至 {end}。活动结束并上传宣传报道后可获积分。"
OP_BAD_TIME = "时间格式不对，请写成 2026-12-05 14:00 这样的格式。"
OP_START_IN_PAST = "开始时间已过，请填写将来的时间。"
OP_END_BEFORE_START = "结束时间须晚于开始时间，请检查后重新发布。"
OP_BAD_CAPACITY = "名额须为不小于 0 的整数（0 表示不限）。"
OP_BAD_TITLE = "标题不能为空，且不超过 100 字。"
OP_NOT_FOUND = "没有找到活动 #{id}，请检查编号。"
OP_OTHER_STATION = "活动 #{id} 不属于本站，无法操作。"
OP_VOIDED = "活动 #{id} 已作废，无法操作。"
OP_BAD_URL = "链接须以 http:// 或 https:// 开头，请检查后重试。"
OP_BAD_LEVEL = "媒体级别须为：中央、省、市、县（或 central、provincial、municipal、county）。"
OP_STATION_DELISTED = "本站已摘牌，无法发布活动。如有疑问请联系管理员。"
OP_PUBLICITY_USAGE = "格式：宣传 活动编号 链接，例如：宣传 #12 https://example.com/news/1"
OP_PUBLICITY_OK = "已收到活动 #{id} 的宣传报道。活动满足条件后将自动计分。"
OP_MEDIA_USAGE = "格式：报道 活动编号 级别 媒体名称 链接，例如：报道 #12 市 泉州晚报 https://example.com/a"
OP_MEDIA_OK = "已收到活动 #{id} 的{level}媒体报道（{outlet}），将按最高级别自动计分。"
OP_NO_ACTIVITIES = "本站还没有活动。发送“发布活动”查看格式。"
OP_ACTIVITY_LINE = "#{id} {title} {start}｜报名{signups}{cap}｜到场{attendees}｜满意度{rate}｜积分{points}｜{status}"
OP_CODE_USAGE = "格式：活动码 活动编号，例如：活动码 #12"
OP_CODE = "活动 #{id} 的签到码内容：\n{scene}\n请生成二维码供参会人才扫码签到（有效至活动结束）。"
OP_STATION = (
    "{name}（{code}）{stars}星，{status}\n"
    "本月积分 {month}（排名 {rank_month}）\n本年积分 {year}（排名 {rank_year}）\n"
    "累计积分 {total}（排名 {rank_total}）\n"
    "满意度 {rate}；待处理风险 {flags} 条；下月计划：{plan}"
)
MEDIA_LEVEL_NAMES = {"central": "中央", "provincial": "省级", "municipal": "市级", "county": "县级"}
