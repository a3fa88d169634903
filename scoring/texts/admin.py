"""What an admin reads from the scoring core: a hold to review (scoring/notify.py), what a fraud flag says
and why a station was delisted (rendered from their codes and parameters when read), the rating
(scoring/rating.py), consultations overdue (scoring/consultations.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scoring.texts.labels import LIST_SEP

# -- a hold to review (scoring/notify.py) ---------------------------------------------------------------------------
HOLD_ADMIN = ("待审核：人才{talent}（{cert_no}）{minutes}分钟内在{n}个站点打卡，该次积分已暂缓"
              "（标记编号{flag_id}）。请核实后放行或作废。")

# -- what a fraud flag says (scoring/fraud.py; listed by 风险) --------------------------------------------------------
FLAG_MULTI_STATION = "{minutes}分钟内在{n}个不同站点打卡：{codes}"
FLAG_DAILY_VOLUME = "{day}打卡{count}次，超过阈值{limit:g}（近30日中位数的{factor}倍，至少{floor}次）"


def flag_detail(rule: str, params: Mapping[str, Any]) -> str:
    """What a flag says, from its rule (the code) and its numbers (Flag.params); a detail kept as text
    (an old row migration 0010 could not read back) is shown as it was."""
    if "text" in params:
        return str(params["text"])
    if rule == "multi_station" and "codes" in params:
        return FLAG_MULTI_STATION.format(minutes=params["minutes"], n=params["n"],
                                         codes=LIST_SEP.join(params["codes"]))
    if rule == "daily_volume" and "day" in params:
        return FLAG_DAILY_VOLUME.format(day=params["day"], count=params["count"], limit=params["limit"],
                                        factor=params["factor"], floor=params["floor"])
    return ""

# -- the annual rating (scoring/rating.py) --------------------------------------------------------------------------
RATING_ADMIN_CONFIRMED = ("【年度评星】{year}年度评星已由{actor}确认:晋升{up}家、降星{down}家、摘牌{delisted}家;"
                          "补助名单{subsidies}家,合计{total}元。详情请用命令 talenthome rate {year} 查看。")
RATING_ADMIN_PREVIEW = ("【年度评星】{year}年度评星预览已生成:晋升{up}家、降星{down}家、摘牌{delisted}家;"
                        "补助名单{subsidies}家,合计{total}元。请核对后用命令 talenthome rate {year} --confirm 确认。")
RATING_ADMIN_REVERSED = ("【年度评星】{year}年度评星已由{actor}撤销,站点星级与状态已恢复。"
                         "如需重新评定,请再次预览并确认。")

# -- why a station was delisted (Station.delisted_code and delisted_params) -----------------------------------------
RATING_DELISTED_REASON = "{year}年度评星位列后10%,连续两年降星(摘牌)"


def delisting(code: str | None, params: Mapping[str, Any] | None) -> str:
    """Why a station was delisted, from Station.delisted_code and delisted_params ("" when it was not)."""
    params = params or {}
    if code == "rating" and "year" in params:
        return RATING_DELISTED_REASON.format(year=params["year"])
    return str(params.get("text", ""))

# -- consultations (scoring/consultations.py): overdue, escalated to admins -----------------------------------------
CONSULT_ESCALATED_ADMIN = ("【咨询超时】{station}的咨询 #{id} 已超过 {hours} 个工作小时无人接单：{question}\n"
                           "请督促站点处理，或发送“答复 #{id} 内容”直接答复。")
CONSULT_CITY = "市级"
