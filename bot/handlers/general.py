"""Help, follow, subscription-notification consent, and the words everyone may use."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot import texts
from bot.router import Context, Router
from scoring import consents
from scoring.clock import utcnow
from scoring.db import transaction

router = Router("general")


@router.word("帮助", "help", "/help", "?", "？", changes_state=False)
async def help_(ctx: Context, rest: str) -> str:
    return texts.HELP


@router.event("subscribe")
async def follow(ctx: Context) -> str | None:
    """A follow; with a `qrscene_` key it is a follow plus a scan of that code."""
    if ctx.incoming.scene:
        scanned = await ctx.deps.dispatcher.dispatch_scene(ctx, ctx.incoming.scene)
        return f"{texts.WELCOME}\n\n{scanned}" if scanned else texts.WELCOME
    return texts.WELCOME


@router.event("scan", "scancode_waitmsg", "scancode_push")
async def scan(ctx: Context) -> str | None:
    if not ctx.incoming.scene:
        return None
    return await ctx.deps.dispatcher.dispatch_scene(ctx, ctx.incoming.scene)


# WeChat's subscription-notification events: the element holding the <List> of templates, per event.
CONSENT_EVENTS = {"subscribe_msg_popup_event": "SubscribeMsgPopupEvent",
                  "subscribe_msg_change_event": "SubscribeMsgChangeEvent",
                  "subscribe_msg_sent_event": "SubscribeMsgSentEvent"}


def consent_answers(event: str, raw: dict[str, Any]) -> list[tuple[str, consents.Consent]]:
    """(template id, accept|reject) from one event: the pop-up's and the settings' SubscribeStatusString;
    a send refused with 43101 (the follower no longer accepts) is a reject. One <List> or several."""
    block = raw.get(CONSENT_EVENTS[event])
    items: Any = block.get("List", block) if isinstance(block, dict) else block  # XML: <List>; JSON: the items
    answers = []
    for item in items if isinstance(items, list) else [items]:
        if not isinstance(item, dict) or not isinstance(item.get("TemplateId"), str):
            continue
        if event == "subscribe_msg_sent_event":
            status = consents.Consent.REJECT if str(item.get("ErrorCode")) == "43101" else None
        else:
            status = consents.status_of(item.get("SubscribeStatusString"))
        if status is not None:
            answers.append((item["TemplateId"].strip(), status))
    return answers


@router.event(*CONSENT_EVENTS)
async def consent(ctx: Context) -> None:
    """Record the follower's answers; acknowledged silently (the user typed nothing)."""
    raw = getattr(ctx.incoming.raw, "_data", None) or {}
    answers = consent_answers(ctx.incoming.event, raw)
    if not answers:
        return None
    try:
        at = datetime.fromtimestamp(int(raw.get("CreateTime")), UTC).replace(tzinfo=None)
    except (TypeError, ValueError, OverflowError, OSError):
        at = ctx.incoming.received_at or utcnow()
    async with transaction(ctx.deps.sessions) as s:
        await consents.record(s, ctx.openid, answers, at)
    return None
