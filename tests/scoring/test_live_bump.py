"""scoring.live.bump: a whole batch of entries goes onto the boards in one script call per BUMP_CHUNK, and
each entry still counts once: twice in one call, again in a later call, across marker shards and chunks."""

from __future__ import annotations

from typing import Any

from scoring import live


def entry(i: int, member: str, amount: int, boards: tuple[str, ...]) -> live.Bump:
    return live.Bump(i, member, amount, 1_000_000 + i, boards)


async def test_a_batch_counts_each_entry_once(redis: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(live, "BUMP_CHUNK", 3)  # several calls in one round trip
    await redis.set(live.GEN, "{}")
    month, total = f"{live.PREFIX}:station:month:2026-11", f"{live.PREFIX}:station:total:all"
    near_shard_end = (1 << live.SHARD_BITS) - 1  # this id and the next are in two marker shards
    batch = [entry(1, "7", 1, (month, total)), entry(near_shard_end, "7", 2, (month,)),
             entry(near_shard_end + 1, "8", 5, (month, total)), entry(1, "7", 1, (month, total)),
             entry(4, "8", -1, (total,))]
    got = await live.bump(redis, batch, done=[("visit", 9)], settled=["visit:9"])
    assert (got.added, got.already, got.unbuilt) == (4, 1, 0)
    assert await redis.zscore(month, "7") == 3 and await redis.zscore(month, "8") == 5
    assert await redis.zscore(total, "7") == 1 and await redis.zscore(total, "8") == 4
    assert int(await redis.hget(live.at_key(month), "8")) == 1_000_000 + near_shard_end + 1
    assert await live.is_done(redis, "visit", 9)
    assert {k.decode() for k in await redis.smembers(live.INDEX)} >= {
        month, live.at_key(month), total, live.at_key(total), live.seen_bit(1)[0], live.seen_bit(near_shard_end + 1)[0]}
    again = await live.bump(redis, batch)
    assert (again.added, again.already) == (0, 5)
    assert await redis.zscore(month, "7") == 3


async def test_unbuilt_boards_are_left_to_the_rebuild_and_a_running_one_journals(redis: Any) -> None:
    month = f"{live.PREFIX}:station:month:2026-11"
    got = await live.bump(redis, [entry(1, "7", 1, (month,)), entry(2, "7", 1, (month,))])
    assert (got.added, got.unbuilt) == (0, 2) and not await redis.exists(month)
    await redis.set(live.GEN, "{}")
    await redis.set(live.REBUILDING, "token")
    got = await live.bump(redis, [entry(3, "7", 1, (month,)), entry(4, "8", 1, (month,))])
    assert got.added == 2
    assert [int(x) for x in await redis.lrange(live.JOURNAL, 0, -1)] == [3, 4]
