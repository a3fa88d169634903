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
    "绑定 <人才证号> <姓名>：绑定身份；解绑：解除本微信号的绑定\n"
    "活动：查看近期活动；报名 <编号>；取消 <编号>\n"
    "积分：查看积分；排名：查看排行榜\n"
    "礼品：查看礼品；兑换 <编号>\n"
    "我的码：出示个人签到码\n"
    "服务 [站点]：站点服务清单；预约 站点 日期 时间：预约到站；咨询 问题：向站点咨询\n"
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
RATE_LIMITED = "您的消息发送过于频繁，系统已暂停处理。请在{seconds}秒后再试，感谢理解。"

# -- operators -------------------------------------------------------------------------------------
OP_NO_STATION = "您的账号尚未关联站点，请联系管理员。"
OP_PUBLISH_USAGE = (
    "格式：发布活动 标题 | 开始时间 | 结束时间 | 名额(不限填0) | 主题\n"
    "例如：发布活动 人才沙龙 | 2026-12-05 14:00 | 2026-12-05 16:00 | 30 | 数字经济"
)
OP_TOO_LONG = "活动时长超过 {hours} 小时，需由管理员发布。请联系管理员代发，或把活动拆分为每场不超过 {hours} 小时。"
AD_PUBLISH_FOR_USAGE = (
    "格式：代发活动 站点编码 标题 | 开始时间 | 结束时间 | 名额(不限填0) | 主题\n"
    "例如：代发活动 QZ01 人才服务周 | 2026-12-05 09:00 | 2026-12-07 17:00 | 0 | 政策宣讲"
)
OP_PUBLISHED = "活动 #{id} 已发布：{title}，{start} 至 {end}。活动结束并上传宣传报道后可获积分。"
OP_PUBLISHED_SHORT_LEAD = (
    "活动 #{id} 已发布：{title}，{start} 至 {end}。\n"
    "请注意：发布时距开始已不足 {hours} 小时，本活动不计站点活动积分（{points} 分）。"
    "按积分规则，活动须至少提前 {hours} 小时在平台发布才能计分；人才到场签到的积分不受影响。"
)
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

# -- admins ----------------------------------------------------------------------------------------
AD_BAD_ARGS = "参数不正确。格式：{usage}"
AD_NO_STATION = "没有找到站点 {code}，请检查站点编码。"
AD_EXISTS = "站点 {code} 已存在，无需重复新增。"
AD_STATION_ADDED = "站点 {code}（{name}）已新增，初始三星，自 {eligible} 起参与积分排名。"
AD_DELISTED = "站点 {code} 已摘牌，不再参与排名，签到码同时失效。"
AD_ALREADY_DELISTED = "站点 {code} 此前已摘牌，未做改动。"
AD_REINSTATED = "站点 {code} 已恢复，重新参与排名。"
AD_ALREADY_ACTIVE = "站点 {code} 状态正常，无需恢复。"
AD_STAFF_ADDED = "已设置 {openid} 为{role}{station}。"
AD_STAFF_REMOVED = "已移除工作人员 {openid}。"
AD_STAFF_MISSING = "没有找到工作人员 {openid}，未做改动。"
AD_VOID_OK = "作废申请 #{id} 已登记（{kind} #{target}），系统将生成冲正记录，稍后可在积分流水中查看。"
AD_VOID_MISSING = "没有找到要作废的{kind} #{target}，请检查编号。"
AD_VOID_ALREADY = "{kind} #{target} 已作废过，未做改动。"
AD_SURVEY_OK = "站点 {code} {year} 年调查结果 {amount:+d} 分已登记 (#{id})，稍后计入积分。"
AD_SURVEY_CAP = "站点 {code} {year} 年调查加减分合计将超出 ±50 分，未登记。当前合计 {total:+d} 分。"
AD_EXTEND_OK = "站点 {code} {year} 年度积分计算时间已延长 {days} 天 (#{id})。"
AD_EXTEND_RANGE = "延长天数须在 1 到 366 天之间。"
AD_WARN_OK = "已记录对站点 {code} 的提醒谈话 (#{id})，并通知该站运营人员。"
AD_WARN_MESSAGE = "【提醒谈话】市人才发展促进会对本站提出提醒：{note}。请及时整改，如有疑问请联系管理员。"
AD_NO_FLAGS = "目前没有待处理的风险提示。"
AD_FLAG_LINE = "风险 #{id} {rule}{hold}｜站点 {station}｜人才 {talent}｜打卡 {visit}｜{detail}"
AD_NO_FLAG = "没有找到风险提示 #{id}，或已处理。"
AD_RELEASE_OK = "风险 #{id} 已释放，暂扣的积分将稍后到账。"
AD_NO_DEAD = "目前没有处理失败的任务。"
AD_DEAD_LINE = "失败 #{id} {task} #{fact}｜{reason}｜{at}"
AD_DEAD_MISSING = "没有找到失败任务 #{id}，或已重试。"
AD_RETRY_OK = "失败任务 #{id} 已重新排队处理。"
AD_AUDIT_LINE = "{at} {actor}（{role}）：{command} → {outcome}"
AD_NO_AUDIT = "暂无操作记录。"
AD_NO_REFUSALS = "暂无被拒绝的指令。"
AD_AUDIT_REFUSALS = "另有 {n} 条被拒绝的指令（无权限或未加密），发送“审计 拒绝”查看。"
ROLE_NAMES = {"operator": "运营人员", "admin": "管理员"}
VOID_KIND_NAMES = {"entry": "积分流水", "visit": "打卡", "activity": "活动", "media": "媒体报道"}

# admins: the gift catalogue (礼品 新增|修改|补货|下架|恢复|列表) and unbinding (解绑 <人才证号>)
AD_GIFT_ADDED = "礼品 #{id}「{name}」已上架：{cost} 分，库存 {stock}，{where}。"
AD_GIFT_EDITED = "礼品 #{id}「{name}」已修改：{changes}。"
AD_GIFT_UNCHANGED = "礼品 #{id}「{name}」的{field}已是该值，未做改动。"
AD_GIFT_RESTOCKED = "礼品 #{id}「{name}」已补货 {added} 件，现有库存 {stock}。"
AD_GIFT_RETIRED = (
    "礼品 #{id}「{name}」已下架，人才将看不到它；尚未处理的兑换申请将不予兑换。如需恢复，发送：礼品 恢复 {id}"
)
AD_GIFT_RESTORED = "礼品 #{id}「{name}」已恢复上架，库存 {stock}。"
AD_GIFT_NONE = "还没有礼品。新增请发送：礼品 新增 名称 积分 库存 [站点编码]"
AD_GIFT_LINE = "#{id} {name}｜{cost} 分｜库存 {stock}｜已兑 {redeemed}{pending}｜{where}{retired}"
AD_GIFT_PENDING = "（待处理 {pending}）"
AD_GIFT_MORE = (
    "共 {n} 件礼品，此处只列出前 {shown} 件。完整列表请用命令行 talenthome gift list 或 talenthome export gifts。"
)
AD_GIFT_RETIRED_MARK = "｜已下架"
AD_GIFT_CITY = "全市通用"
AD_GIFT_AT = "{name}（{code}）"
AD_GIFT_FIELD_NAMES = {"name": "名称", "cost": "积分", "stock": "库存", "station_id": "站点", "description": "说明"}
AD_GIFT_REFUSED = {
    "bad_name": "礼品名称不能为空，且不超过 100 字。",
    "bad_cost": "所需积分须为 1 到 1000000 之间的整数。",
    "bad_stock": "库存须为 0 到 1000000 之间的整数，补货数量至少为 1。",
    "bad_description": "礼品说明不超过 500 字。",
    "no_gift": "没有找到礼品 #{id}，请发送“礼品 列表”查看编号。",
    "retired": "礼品 #{id}「{name}」已下架，未做改动。如需恢复，发送：礼品 恢复 {id}",
    "active": "礼品 #{id}「{name}」正在上架中，无需恢复。",
    "exists": "{where}已有礼品「{name}」（#{id}{retired}），未重复新增。如需调整，发送：礼品 修改 {id} 字段 值",
}
AD_UNBIND_OK = "已解除人才 {cert_no}（{name}）与微信号的绑定，积分保留。本人可重新发送“绑定 人才证号 姓名”绑定。"
AD_UNBIND_NOT_BOUND = "人才 {cert_no}（{name}）目前没有绑定微信号，未做改动。"
AD_UNBIND_NO_TALENT = "没有找到人才证号 {cert_no}，请核对后重试。"

# -- talent flows: bind, scans, activities, satisfaction, points, gifts (handlers/account, visit, signup,
# survey). Fields in braces are filled by the handler.
NEED_BIND = "您还未绑定身份。请发送“绑定 人才证号 姓名”，例如：绑定 QZ2026001 张三。"

BIND_USAGE = "请按格式发送：绑定 人才证号 姓名，例如：绑定 QZ2026001 张三。"
BIND_OK = (
    "绑定成功！{name}，欢迎您。\n"
    "到人才之家扫描站点二维码即可打卡积分；发送“活动”查看近期活动，发送“帮助”查看全部功能。"
)
BIND_ALREADY = "您已绑定（{name}），无需重复绑定。发送“帮助”查看全部功能。"
BIND_NO_MATCH = (
    "未找到与该人才证号和姓名相符的登记信息，请核对后重试（本小时内还可尝试 {left} 次）。"
    "如登记信息有误，请联系市人才发展促进会。"
)
BIND_NO_MATCH_LAST = "未找到与该人才证号和姓名相符的登记信息。本小时内的尝试次数已用完，请一小时后核对再试。"
BIND_TOO_MANY = "绑定尝试次数过多，请一小时后再试。如需帮助，请联系市人才发展促进会。"
BIND_TALENT_TAKEN = "该人才证号已绑定其他微信号。如需更换绑定，请联系市人才发展促进会。"
BIND_OPENID_TAKEN = "此微信号已绑定其他人才身份（{name}）。如需更换，请联系市人才发展促进会。"
UNBIND_OK = (
    "已解除本微信号与 {name}（{cert_no}）的绑定，您的积分仍保留在该人才证号下。"
    "如需重新绑定，请发送“绑定 人才证号 姓名”。"
)
UNBIND_NOT_BOUND = "此微信号尚未绑定人才身份，无需解绑。如需绑定，请发送“绑定 人才证号 姓名”。"

VISIT_OK = "打卡成功！{station}：站点和您各得 {points} 积分，稍后到账。发送“积分”可查看。"
VISIT_OK_UNEVEN = "打卡成功！{station}：站点得 {station_points} 积分，您得 {talent_points} 积分，稍后到账。"
VISIT_REJECTED = {
    "forged_code": "无法识别该二维码，本次未打卡。请扫描站点现场展示的最新二维码。",
    "expired_code": "该二维码已过期（站点码每 {minutes} 分钟更新），本次未打卡。请扫描现场最新的二维码。",
    "unknown_station": "未找到该站点，本次未打卡。请确认扫描的是泉州人才之家的站点码，或咨询现场工作人员。",
    "station_delisted": "{station}已摘牌，暂不能打卡积分。欢迎前往其他人才之家，发送“活动”查看近期活动。",
    "not_bound": "您还未绑定身份，本次扫码未积分。请先发送“绑定 人才证号 姓名”，绑定后再扫码打卡。",
    "staff_own_station": "您是{station}的工作人员，在本站打卡不计积分。感谢您的服务！",
    "already_today": "您今天已在{station}打卡，积分已计入（同一站点每天计 1 次），明天再来或到其他站点打卡吧。",
    "unknown_activity": "未找到该活动，或活动已取消。请咨询现场工作人员，发送“活动”查看近期活动。",
    "activity_not_started": "「{title}」尚未开始签到，请在活动开始前 30 分钟内扫码（开始时间 {start}）。",
    "activity_ended": "「{title}」已结束，无法签到。发送“活动”查看近期活动。",
    "activity_full": "「{title}」名额已满，无法现场签到。发送“活动”查看其他活动。",
}
ATTEND_OK = "签到成功！已记录您参加「{title}」。{credit}\n活动结束后请回复 1-5 为活动打分。"
ATTEND_AGAIN = "您已签到过「{title}」，无需重复签到。{credit}"
ATTEND_CREDIT = "站点和您各得 {points} 积分，稍后到账。"
ATTEND_NO_CREDIT = "今天已在本站点计过打卡积分，本次不重复计分。"
ATTEND_STAFF = "您是本站点工作人员，签到不计积分。"

MYCODE = (
    "您的个人签到码（{minutes} 分钟内有效）：\n{scene}\n"
    "请在站点出示给工作人员，工作人员用公众号菜单中的“扫一扫”扫描后即为您打卡。过期后请重新发送“我的码”。"
)

ACTIVITIES_HEAD = "近期活动（第 {page}/{pages} 页，共 {total} 个）："
ACTIVITY_LINE = "#{id} {title}\n  {station}｜{when}｜{seats}"
SEATS_UNLIMITED = "不限名额"
SEATS_LEFT = "余 {left} 个名额"
SEATS_FULL = "名额已满"
ACTIVITIES_FOOT = "报名请发送“报名 编号”，例如：报名 {example}。"
ACTIVITIES_NEXT = "发送“活动 {page}”查看下一页。"
ACTIVITIES_NONE = "近期暂无可报名的活动，请过几天再来看看。"
ACTIVITIES_MINE = "您已报名：{ids}。如需取消，发送“取消 编号”。"

SIGNUP_USAGE = "请发送“报名 活动编号”，例如：报名 12。发送“活动”查看活动编号。"
SIGNUP_OK = (
    "报名成功！「{title}」\n时间：{when}\n地点：{station}\n"
    "活动开始前会提醒您；到场后请扫描活动码签到。如需取消，发送“取消 {id}”。"
)
SIGNUP_FULL = "很抱歉，「{title}」名额已满。发送“活动”查看其他活动。"
SIGNUP_CLOSED = "「{title}」已开始，报名已截止。发送“活动”查看其他活动。"
SIGNUP_ALREADY = "您已报名「{title}」，无需重复报名。如需取消，发送“取消 {id}”。"
SIGNUP_NOT_FOUND = "未找到编号为 {id} 的活动。请发送“活动”查看可报名的活动。"
CANCEL_USAGE = "请发送“取消 活动编号”，例如：取消 12。"
CANCEL_OK = "已取消「{title}」的报名。如改变主意，可再次发送“报名 {id}”。"
CANCEL_NOT_SIGNED = "您没有报名「{title}」，无需取消。"
CANCEL_CLOSED = "「{title}」已开始，无法取消报名。"

SAT_OK = "感谢您为「{title}」打 {score} 分！您的评价将帮助站点把活动办得更好。"
SAT_OK_LOW = "感谢您的反馈！已将您对「{title}」的评价（{score} 分）转告站点，他们会尽快了解情况并改进。"
SAT_ALREADY = "您已为「{title}」评过分，每个活动只记录一次。感谢您的参与！"
SAT_NONE = "目前没有待评价的活动。活动结束后收到邀请时，回复 1-5 即可评分；发送“帮助”查看全部功能。"
SAT_MORE = "您还有 {n} 个活动待评价，请继续回复 1-5。"
SAT_BUSY = "正在记录您的上一条评价，请稍后再试。"
# The station's operators are not told who gave the score; admins are (LOW_SCORE_ALERT_ADMIN, 低分).
LOW_SCORE_ALERT = (
    "【低分评价提醒】{station}的活动「{title}」收到 {score} 分评价，意见：{comment}。"
    "请及时了解情况并改进。"
)
LOW_SCORE_ALERT_ADMIN = (
    "【低分评价提醒】{station}的活动「{title}」收到 {score} 分评价（人才：{name}，{cert_no}），意见：{comment}。"
    "该站点暂无运营人员，请跟进。"
)
AD_NO_LOW_SCORES = "暂无低分评价。"
AD_LOW_SCORE_LINE = "{at} {station} 活动 #{activity}「{title}」{score} 分｜{name}（{cert_no}）｜{comment}"

POINTS = "您的可用积分：{balance} 分\n今年获得 {year} 分，本月 {month} 分，累计 {total} 分。"
# A void took back points already spent (scoring/facts/void.py): the balance is owed, redemptions wait.
POINTS_OWED = ("当前积分为 {balance} 分（作废的积分已扣回），再获得 {owed} 分即可补足，之后的积分可兑换礼品。\n"
               "今年获得 {year} 分，本月 {month} 分，累计 {total} 分。")
POINTS_RECENT = "最近记录："
POINTS_LINE = "{date} {amount:+d} {what}"
POINTS_EMPTY = "暂无积分记录。到人才之家扫码打卡、参加活动即可获得积分。"
POINTS_FOOT = "发送“礼品”查看可兑换的礼品，发送“排名”查看排行榜。"
ME_LINK = "每一笔积分的明细和您的专属二维码：{url}"
ENTRY_WORDS = {
    "R3": "到{subject}打卡",
    "R3:activity": "参加活动「{subject}」",
    "G": "兑换礼品「{subject}」",
    "G:unknown": "兑换礼品",
    "V": "撤销：{subject}",
    "other": "积分调整",
    "station": "站点",
}

RANK_HEAD = "本月站点排行榜（前 5 名）："
RANK_LINE = "第 {rank} 名 {name} {points} 分"
RANK_NONE = "本月暂无站点排名。"
RANK_MINE = "您今年的积分排名：第 {rank} 名（{points} 分）。"
RANK_MINE_NONE = "您今年还没有积分，到站点打卡即可上榜。"

GIFTS_HEAD = "可兑换礼品："
GIFTS_BALANCE = "您的可用积分：{balance} 分。"
GIFT_LINE = "#{id} {name}｜{cost} 分｜{stock}{where}{description}"
GIFT_WHERE = "｜在{station}领取"
GIFT_DESCRIPTION = "\n  {description}"
GIFT_STOCK = "库存 {stock}"
GIFT_OUT = "已兑完"
GIFTS_FOOT = "兑换请发送“兑换 编号”，例如：兑换 {example}。"
GIFTS_NONE = "暂无可兑换的礼品，敬请期待。"
REDEEM_USAGE = "请发送“兑换 礼品编号”，例如：兑换 3。发送“礼品”查看礼品编号。"
REDEEM_OK = "已收到您兑换「{gift}」（{cost} 分）的申请，正在处理。完成后将发消息告知取货码，请留意。"
REDEEM_BALANCE = "积分不足：「{gift}」需要 {cost} 分，您当前可用 {available} 分。多打卡、参加活动可获得更多积分。"
REDEEM_STOCK = "很抱歉，「{gift}」已兑完。发送“礼品”查看其他礼品。"
REDEEM_NOT_FOUND = "未找到编号为 {id} 的礼品。请发送“礼品”查看可兑换的礼品。"
AD_CLOSE_USAGE = "月结 YYYY-MM，例如：月结 2026-11"
AD_CLOSED = "{month} 月结完成：{top}。已向 {n} 个站点发送月报。"
AD_CLOSED_ALREADY = "{month} 此前已月结，未做改动：{top}。"
AD_CLOSE_TOP = "第一名 {code} {name}（{points} 分），{featured} 首屏轮播"
AD_CLOSE_NO_TOP = "本月无站点得分，无首屏轮播站点"
AD_CLOSE_REFUSED = "{month} 尚未结束或格式不对，暂不能月结。"
AD_RATE_USAGE = "评星 年份 [确认]，例如：评星 2026（预览）或 评星 2026 确认"
AD_RATE_PREVIEW = (
    "{year} 年度评星预览（第 {rev} 版）：晋升 {up} 家，降星 {down} 家，摘牌 {delisted} 家，"
    "补助 {subsidies} 家共 {total} 元。{detail}确认请发送：评星 {year} 确认"
)
AD_RATE_CONFIRMED = "{year} 年度评星已确认：晋升 {up} 家，降星 {down} 家，摘牌 {delisted} 家，已通知相关站点。"
AD_RATE_ALREADY = "{year} 年度评星此前已确认，未做改动。"
AD_RATE_REFUSED = "暂不能评星：{detail}"
OP_SCAN_OK = "已为人才 {name} 在本站签到，站点和人才各得 {points} 积分，稍后到账。"
OP_SCAN_REJECTED = {
    "forged_code": "该个人码无效，请让人才重新打开“我的码”后再扫。",
    "expired_code": "该个人码已过期，请让人才重新打开“我的码”后再扫。",
    "not_bound": "该人才尚未绑定身份，请提醒其先发送“绑定 人才证号 姓名”。",
    "already_today": "该人才今天已在本站签到，不重复计分。",
    "staff_own_station": "本站工作人员在本站签到不计积分。",
    "station_delisted": "本站已摘牌，无法签到。如有疑问请联系管理员。",
}
OP_SCAN_REJECTED_OTHER = "未能签到，请稍后重试或联系管理员。"
OP_NEW_SIGNUP = "【新报名】{name} 报名了活动 #{id} {title}，当前报名 {taken}{cap} 人。"
OP_ACTIVITY_FULL = "【名额已满】活动 #{id} {title} 的 {cap} 个名额已全部报满。"

# The station kiosk (web/pages.py /kiosk): the link an operator puts on the tablet at the door; admins reset it.
KIOSK_LINK = ("{name}（{code}）的打卡屏链接：\n{url}\n"
              "请在站点门口的平板或电脑上打开，页面会显示每 {minutes} 分钟自动更换的打卡二维码和今日打卡人数。"
              "链接相当于密码，请勿外传；如已泄露，请联系管理员发送“站点码 重置 {code}”。")
KIOSK_USAGE_ADMIN = "格式：站点码 站点编码，例如：站点码 QZ001（重置链接：站点码 重置 站点编码）"
KIOSK_RESET_USAGE = "格式：站点码 重置 站点编码"
KIOSK_RESET = "站点 {code} 的打卡屏链接已重置，旧链接立即失效。请运营人员发送“站点码”获取新链接。"

# -- services, bookings and consultations (bot/handlers/services.py; policy measures 1, 7, 8, 9) --------------
CATEGORY_NAMES = {"lecture": "人才讲堂", "seminar": "研修班", "culture": "在地文化讲解", "salon": "交流沙龙",
                  "other": "其他"}
SERVICES_WHICH = ("请发送“服务 站点名称或编码”查看该站点的服务清单，例如：服务 QZ001。"
                  "到站打卡后，发送“服务”即可查看最近到访站点的清单。")
SERVICES_NO_STATION = "没有找到站点“{text}”，请核对站点名称或编码。"
SERVICES_HEAD = "{name}（{code}）服务清单"
SERVICES_DUTIES = "服务职责：{duties}"
SERVICES_COMMON = "【共性服务】"
SERVICES_OWN = "【本站特色服务】"
SERVICES_NONE_OWN = "本站暂未发布特色服务。"
SERVICE_LINE = "#{id} {name}{schedule}{bookable}{description}"
SERVICE_BOOKABLE = "（可预约，每时段 {cap} 人）"
SERVICES_FOOT = "预约到站：预约 {code} 日期 时间 [服务编号]，例如：预约 {code} 明天 10:00"
SERVICES_DELISTED = "{name} 已摘牌，暂停提供服务。"

BOOK_USAGE = ("格式：预约 站点 日期 时间 [服务编号]\n"
              "例如：预约 QZ001 明天 10:00，或 预约 QZ001 12-05 14:00 #3\n"
              "日期可写 今天/明天/后天、12-05 或 2026-12-05；时间为整点，{first}:00 至 {last}:00，每个时段 1 小时。")
BOOK_MINE = "您的预约：\n{lines}\n如需取消，请发送“取消预约 编号”。"
BOOK_LINE = "#{id} {when} {station}{service}"
BOOK_OK = ("预约成功！预约号 #{id}：{when} {station}{service}。\n"
           "到站后扫描站点码打卡即可；开始前会提醒您。如需取消，请发送“取消预约 {id}”。")
BOOK_REFUSED = {
    "no_station": "没有找到这个站点，请核对站点名称或编码。",
    "delisted": "该站点已摘牌，暂不接受预约。",
    "no_service": "该站点没有这个服务项目，请发送“服务 站点”查看可预约的服务。",
    "not_bookable": "这个服务项目不需要预约，可直接到站办理。",
    "bad_slot": "请选择整点时段，{first}:00 至 {last}:00，例如 10:00。",
    "past": "这个时段已过，请选择之后的时段。",
    "too_far": "最多可预约 {limit} 天内的时段，请重新选择日期。",
    "full": "这个时段已约满，请换一个时段。",
    "already": "您已预约了这个时段，无需重复预约。",
    "too_many": "您已有 {limit} 个未完成的预约，请先完成或取消后再预约。",
}
BOOK_BAD_DATE = "没有看懂日期或时间。" + "\n" + "例如：预约 QZ001 明天 10:00"
UNBOOK_USAGE = "格式：取消预约 预约号，例如：取消预约 12"
UNBOOK_OK = "已取消预约 #{id}（{when} {station}）。"
UNBOOK_REFUSED = {
    "not_found": "没有找到您的预约 #{id}，请发送“预约”查看您的预约。",
    "not_open": "预约 #{id} 已取消或已结束，无需再取消。",
    "started": "预约 #{id} 的时段已开始，无法取消。",
}
OP_NEW_BOOKING = "【新预约】{name} 预约了 {time} 到站{service}（预约号 #{id}），该时段已约 {taken}/{cap} 人。"

ASK_USAGE = ("格式：咨询 问题内容（发给您最近到访的站点）\n"
             "或：咨询 站点编码 问题内容；咨询 全市 问题内容（发给市级“人才之家”）；\n"
             "补充已提交的咨询：咨询 #编号 补充内容。")
ASK_OK = "您的咨询已提交（编号 #{id}），已转给{station}的工作人员，答复会通过公众号发给您。"
ASK_REFUSED = {
    "empty": ASK_USAGE,
    "too_long": "咨询内容请不要超过 {max} 字。",
    "too_many": "您已有 {limit} 个咨询尚未办结，请等待答复后再提新问题。",
    "no_station": "没有找到这个站点，请核对站点编码。",
    "delisted": "抱歉，{station}已摘牌，暂不受理咨询。您可以发送“咨询 全市 问题内容”向市级咨询。",
}
CITY_NAME = "市级“人才之家”"
STAFF_ASKED = "【新咨询 #{id}】{station}：{question}\n发送“接单 #{id}”认领，或“答复 #{id} 内容”直接答复。"
TALENT_ANSWER = "【咨询答复 #{id}】{answer}\n如还有疑问可继续咨询；满意度评价请发送“评价咨询 #{id} 1-5”。"
TALENT_CLOSED = "您的咨询 #{id} 已办结。欢迎发送“评价咨询 #{id} 1-5”评价本次服务。"
STAFF_TRANSFERRED = "【咨询转交 #{id}】以下咨询已转交给您负责：{question}\n请发送“答复 #{id} 内容”答复。"
STAFF_FOLLOW_UP = "【咨询追问 #{id}】{text}\n请发送“答复 #{id} 内容”答复。"
FOLLOW_UP_OK = "已补充到咨询 #{id}，工作人员会一并答复。"
FOLLOW_UP_REFUSED = {
    "not_found": "没有找到您的咨询 #{id}。发送“咨询 问题内容”提出新的咨询。",
    "closed": "咨询 #{id} 已办结。如还有问题，请发送“咨询 问题内容”重新咨询。",
    "empty": "格式：咨询 #编号 补充内容",
    "too_long": "补充内容请不要超过 {max} 字。",
}
RATE_USAGE = "格式：评价咨询 编号 分数(1-5)，例如：评价咨询 #12 5"
RATE_OK = "感谢您的评价！咨询 #{id}：{score} 分。"
RATE_REFUSED = {
    "not_found": "没有找到您的咨询 #{id}。",
    "not_answered": "咨询 #{id} 还没有答复，答复后再评价吧。",
    "rated": "您已评价过咨询 #{id}，感谢！",
    "bad_score": RATE_USAGE,
}

ANSWER_USAGE = "格式：答复 #编号 内容，例如：答复 #12 您好，政策申报材料请见……"
CLAIM_USAGE = "格式：接单 #编号"
CLOSE_USAGE = "格式：结单 #编号"
TRANSFER_USAGE = "格式：转交 #编号 同事编号。本站同事：{colleagues}"
ANSWER_OK = "已答复咨询 #{id}，答复已发送给人才。{claimed}如已办结，请发送“结单 #{id}”。"
ANSWER_CLAIMED = "您已成为该咨询的首问责任人。"
CLAIM_OK = "已接单：咨询 #{id} 由您负责（首问责任）。请发送“答复 #{id} 内容”答复。"
TRANSFER_OK = "咨询 #{id} 已转交给工作人员 #{to}，转交已记录。"
CLOSE_OK = "咨询 #{id} 已结单，已通知人才。"
CONSULT_REFUSED = {
    "not_found": "没有找到咨询 #{id}（只能处理本站的咨询）。",
    "closed": "咨询 #{id} 已结单。",
    "owned": "咨询 #{id} 已由{owner}负责，请与其联系；如需转交，请由负责人发送“转交”。",
    "bad_target": "转交对象须为本站在岗工作人员或管理员，请核对编号。本站同事：{colleagues}",
    "empty": ANSWER_USAGE,
    "too_long": "答复内容请不要超过 {max} 字。",
}
OWNER_STAFF = "工作人员 #{id}"
OWNER_ADMIN = "管理员"
TODO_NONE = "暂无待办咨询。"
TODO_HEAD = "待办咨询（{n} 条）："
TODO_LINE = "#{id} [{state}] {station}{when}：{question}"
TODO_MINE = "我负责"
TODO_UNOWNED = "待接单"
TODO_FOOT = "接单 #编号 认领；答复 #编号 内容；转交 #编号 同事编号；结单 #编号"

SVC_ADD_USAGE = ("格式：服务 新增 名称 | 说明 | 提供时间 | 可预约(是/否) | 每时段名额\n"
                 "例如：服务 新增 创业辅导 | 一对一创业咨询 | 每周三下午 | 是 | 3\n"
                 "管理员在名称前写站点编码或“全市”：服务 新增 QZ001 创业辅导 | ...")
SVC_EDIT_USAGE = "格式：服务 修改 编号 名称 | 说明 | 提供时间 | 可预约(是/否) | 每时段名额"
SVC_REMOVE_USAGE = "格式：服务 下架 编号"
SVC_ADDED = "已新增服务 #{id} {name}。"
SVC_EDITED = "已修改服务 #{id} {name}。"
SVC_REMOVED = "已下架服务 #{id} {name}。"
SVC_REFUSED = {
    "no_station": "没有找到这个站点，请核对站点编码。",
    "not_found": "没有找到服务 #{id}。",
    "other_station": "只能修改本站的服务清单（共性服务清单由管理员维护）。",
    "bad_name": "请填写服务名称。",
    "too_long": "内容过长：名称不超过 60 字，说明不超过 300 字，提供时间不超过 100 字。",
    "bad_capacity": "可预约的服务请填写每时段名额（1-1000 的整数）。",
    "duplicate": "清单里已有同名服务，请换一个名称或修改原服务。",
    "bad_category": "分类须为：人才讲堂、研修班、在地文化讲解、交流沙龙、其他。",
}
DUTIES_USAGE = "格式：服务职责 内容（管理员：服务职责 站点编码 内容），不超过 2000 字。"
DUTIES_OK = "已更新{name}的服务职责。"
CATEGORY_USAGE = "格式：活动分类 活动编号 分类（人才讲堂、研修班、在地文化讲解、交流沙龙、其他）"
CATEGORY_OK = "活动 #{id} {title} 的分类已设为“{category}”。"
ACTIVITIES_CATEGORY_NONE = "近期没有“{category}”类活动。发送“活动”查看全部活动。"


# -- words of bot/handlers/operator.py and bot/handlers/admin.py (moved here in issue 10) -----------------------
LIST_SEP = "、"
CLAUSE_SEP = "，"
# 我的活动: an activity's R1 status
OP_STATUS_SCORED = "已计分"
OP_STATUS_NOT_ENDED = "待结束"
OP_STATUS_NO_PUBLICITY = "缺宣传报道"
OP_STATUS_UNMET = "未达计分条件"
OP_STATUS_SCORING = "计分中"
# 本站
OP_UNRANKED = "未参与"
OP_STATION_ACTIVE = "正常"
OP_STATION_DELISTED_STATUS = "已摘牌"
OP_RATE = "{rate}（{n} 份评价）"
OP_NO_RATINGS = "暂无评价"
OP_PLAN_UPLOADED = "已上传"
OP_PLAN_MISSING = "尚未上传，请在本月底前发布下月活动"
# admins: usage lines per command, and the words an admin may type
AD_USAGE = {
    "station add": "站点 新增 编码 名称 home|community 类型 县市区 认定日期(YYYY-MM-DD)",
    "station delist": "站点 摘牌 编码 原因",
    "station reinstate": "站点 恢复 编码",
    "staff add": "人员 新增 openid operator|admin [站点编码]",
    "staff remove": "人员 移除 openid",
    "void": "作废 entry|visit|activity|media 编号 原因",
    "survey": "调查 站点编码 年份 +N|-N 原因",
    "extend": "延期 站点编码 年份 天数 原因",
    "warn": "提醒 站点编码 内容",
    "release": "释放 风险编号",
    "retry": "重试 失败任务编号",
    "gift add": "礼品 新增 名称 积分 库存 [站点编码]（不填站点即全市通用）",
    "gift edit": "礼品 修改 编号 名称|积分|库存|站点|说明 新值（站点填“全市”即全市通用）",
    "gift restock": "礼品 补货 编号 数量",
    "gift retire": "礼品 下架 编号",
    "gift restore": "礼品 恢复 编号",
    "unbind": "解绑 人才证号",
}
AD_GIFT_FIELD_WORDS = {"名称": "name", "name": "name", "积分": "cost", "cost": "cost", "库存": "stock",
                       "stock": "stock", "站点": "station", "station": "station", "说明": "description",
                       "description": "description"}
AD_CITY_WIDE_WORDS = ("全市", "全市通用", "-", "city", "none")
AD_AUDIT_REFUSED_WORDS = ("拒绝", "refused", "refusals")
AD_CONFIRM_WORDS = ("确认", "confirm")
AD_EMPTY_WORDS = ("-", "无")
AD_STAFF_STATION = "（站点 {code}）"
AD_FLAG_HOLD = "（暂扣）"
AD_NONE = "无"
AD_EMPTY = "（空）"
AD_RATE_DELISTED = "摘牌：{codes}。"
AD_GIFT_RETIRED_SUFFIX = "，已下架"
# dates as people read them (bot/handlers/account.py, signup.py), and a scan's station when it has no name
DAY_LABEL = "{month}月{day}日"
DAY_TIME_LABEL = "{month}月{day}日 {time}"
UNTIL_LABEL = " 至 {when}"
VISIT_THIS_STATION = "该站点"
# bot/handlers/services.py: the words for "city-wide", the number signs people type, and small fragments
CITY_WORDS = frozenset({"全市", "市级", "city"})
NUMBER_SIGNS = ("#", "＃")
IN_BRACKETS = "（{}）"
AFTER_COLON = "：{}"
