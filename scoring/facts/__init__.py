"""One module per kind of fact, each owning its rule (SPEC 2; parameters from scoring/rules.py):

    visit       R3  [A1.2]  a check-in: +1 station, +1 talent, once per talent, station and local day
    attendance      [A1.2]  presence at an activity: a visit there (R3), counted by R1
    activity    R1  [A1.1]  an activity held: +5 when published ahead, attended, reported
    media       R2  [A1.1]  news reports of an activity held: the best level only, 20/10/5/3
    survey      R4  [A1.3]  the yearly survey result: +-N, within [-50, +50] per station and year
    void        V   [A3.3]  an admin's void: a reversal for every entry its target produced
    redemption  G   [A2]    a gift: -cost, never below zero, stock permitting

Each exposes the same four things (the `Fact` protocol in scoring/facts/kinds.py, which lists them all),
and nothing else restates its rule:

    KIND                                      the fact's name (jobs, dead letters, ledger fact_kind)
    apply(session, id, params, now=None)  ->  Applied(entries, notices) | Refused(reason, notices)
    unapplied(session, cutoff=, now=, params=, limit=) -> [id, ...]   for the worker's sweeper
    job(id, ...) -> Job                       the worker's `apply(kind, id)` under a deterministic job id

They post through scoring/ledger.py and import no transport (no aiohttp, arq, redis, wechatpy, bot,
worker: tests/test_architecture.py); the worker (worker/tasks.py) and the command line run them.
"""
