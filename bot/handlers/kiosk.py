"""The station kiosk's link (issue 11): an operator's `站点码` replies with their station's kiosk link (the
page a tablet at the door shows, web/pages.py); an admin may ask for any station's and reset one
(`站点码 重置 CODE`: every earlier link of that station shows nothing from then on)."""

from __future__ import annotations

from urllib.parse import quote

from bot import texts
from bot.router import Context, Router
from scoring import kiosk
from scoring.db import transaction
from scoring.staff import Role

router = Router("kiosk", roles=frozenset({"operator", "admin"}))
admin_router = Router("kiosk-admin", roles=frozenset({"admin"}))


def kiosk_url(ctx: Context, code: str, key: str) -> str:
    return ctx.deps.settings.page_url(f"/kiosk/{quote(code, safe='')}?key={key}")


@router.word("站点码", "/kiosk", changes_state=False)
async def kiosk_link(ctx: Context, rest: str) -> str:
    access = await ctx.access()
    code = rest.strip()
    async with ctx.deps.sessions() as s:
        if code and Role.ADMIN in access.roles:
            st = await kiosk.station(s, code)
            if st is None:
                return texts.AD_NO_STATION.format(code=code)
            station_id = st.id
        elif access.station_id is not None:
            station_id = access.station_id
        else:
            return texts.KIOSK_USAGE_ADMIN if Role.ADMIN in access.roles else texts.OP_NO_STATION
        found = await kiosk.link_key(s, ctx.deps.settings.scene_key, station_id)
        st = await kiosk.station(s, found[0]) if found else None
    if found is None or st is None:
        return texts.OP_NO_STATION
    code, key = found
    return texts.KIOSK_LINK.format(name=st.name, code=code, url=kiosk_url(ctx, code, key),
                                   minutes=max(1, ctx.deps.settings.station_code_rotation_s // 60))


@admin_router.word("站点码 重置", "/kiosk reset")
async def kiosk_reset(ctx: Context, rest: str) -> str:
    code = rest.strip()
    if not code or " " in code:
        return texts.KIOSK_RESET_USAGE
    async with transaction(ctx.deps.sessions) as s:
        version = await kiosk.rotate_key(s, code)
    if version is None:
        return texts.AD_NO_STATION.format(code=code)
    return texts.KIOSK_RESET.format(code=code)
