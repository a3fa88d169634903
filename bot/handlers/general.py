"""Help, follow, and the words everyone may use."""

from __future__ import annotations

from bot import texts
from bot.router import Context, Router

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
