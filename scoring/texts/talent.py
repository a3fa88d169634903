"""What a talent reads from the scoring core (outbox rows): reminders, invitations, a redemption's pickup
code or refusal, a hold or a void of their points (scoring/calendar.py, scoring/bookings.py,
scoring/notify.py)."""

from __future__ import annotations

# -- the calendar (scoring/calendar.py): activity reminder, satisfaction invitation -----------------------------
ACTIVITY_REMINDER = "【活动提醒】您报名的活动「{title}」将于{time}开始,请准时参加,到场后扫描活动码签到。"
INVITATION = ("感谢您参加「{title}」!请直接回复数字1–5为本次活动打分(5分为非常满意),"
              "也可在数字后附上意见。请在{deadline}前回复。")

# -- bookings (scoring/bookings.py): the reminder before a slot -------------------------------------------------
BOOKING_REMINDER = ("【预约提醒】您预约的{station}{service}将于{time}开始（预约号 #{id}）。"
                    "到站后扫描站点码打卡即可；如不能前往，请发送“取消预约 {id}”。")
BOOKING_SERVICE = "（{service}）"
BOOKING_VISIT_WORD = "到站交流"

# -- redemptions (scoring/notify.py): the pickup code, or why not ------------------------------------------------
REDEEMED = "兑换成功：{gift}（{cost}积分）。提货码：{code}，请凭提货码到{place}领取。发送「积分」可查看余额。"
REDEEMED_ANYWHERE = "人才之家"  # {place} of a city-wide gift; a station gift names its station
REFUSED_BALANCE = ("兑换未成功：积分余额不足（{gift}需{cost}分，您当前可用{balance}分），本次未扣积分。"
                   "多打卡、多参加活动即可累积积分。")
REFUSED_STOCK = "兑换未成功：{gift}已兑完，本次未扣积分。发送「礼品」可查看其他可兑换的礼品。"

# -- holds and voids of their points (scoring/notify.py): no fraud details, only where, why and what to do -------
HOLD_TALENT = "您好，您在{station}的打卡正在核实中，核实后积分会自动到账，如有疑问请联系站点工作人员。"
VOIDED_TALENT_VISIT = ("您好，您{day}在{station}的打卡经管理员核实已作废（原因：{reason}），已扣回{points}积分，"
                       "当前积分为{balance}分。如有疑问请联系{station}工作人员。")
VOIDED_TALENT = ("您好，您的{n}笔积分经管理员核实已作废（原因：{reason}），已扣回{points}积分，"
                 "当前积分为{balance}分。如有疑问请联系站点工作人员。")
