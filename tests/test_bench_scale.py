"""bench/scale.py's generator writes what the domain would have written (issue 14): the checks it runs on
PostgreSQL at full size rely on these rows, so their shape is pinned here, in memory and fast."""

from __future__ import annotations

from bench.scale import Generator, Sizes, month_keys
from scoring import periods
from scoring.facts import activity, visit
from scoring.rules import RULES


def _province() -> tuple[Generator, list[dict[str, list[tuple]]]]:
    gen = Generator(Sizes(0.0001))  # the floor: 20 stations, 200 talents, 2,000 entries
    return gen, [gen.month(key, 300) for key in month_keys()[:3]]


def test_each_month_has_its_entries_and_ids_rise_with_time() -> None:
    _, months = _province()
    ids = [e[0] for m in months for e in m["entries"]]
    assert ids == list(range(1, len(ids) + 1))
    for m in months:
        assert len(m["entries"]) in (299, 300)  # two legs per visit: an odd target stops one short
        recorded = [e[9] for e in m["entries"]]
        assert recorded == sorted(recorded)
    visit_ids = [v[0] for m in months for v in m["visits"]]
    assert visit_ids == list(range(1, len(visit_ids) + 1))


def test_every_visit_has_its_two_r3_legs_with_the_credit_key_shape() -> None:
    _, months = _province()
    r3 = RULES["R3"]
    for m in months:
        legs = {e[1]: e for e in m["entries"]}
        assert len(legs) == len(m["entries"])  # keys are unique
        credit_keys = [v[10] for v in m["visits"]]
        assert len(set(credit_keys)) == len(credit_keys)  # one credit per talent, station and local day
        for v in m["visits"]:
            vid, _openid, tid, sid, _aid, _source, at, day, status, _reason, ck, _op, applied = v
            assert status == "accepted" and applied is not None and applied >= at
            assert day == periods.local_day(at)
            assert ck == visit.credit_key(tid, sid, day)
            station, talent = legs[f"visit:{ck}#station"], legs[f"visit:{ck}#talent"]
            assert (station[2], station[3], station[4], station[5], station[6], station[7], station[8]) == \
                (sid, None, r3.station, r3.tag, visit.KIND, vid, at)
            assert (talent[2], talent[3], talent[4], talent[7]) == (None, tid, r3.talent, vid)


def test_attendances_are_visits_at_the_activity_and_r1_pays_only_what_r1_allows() -> None:
    _, months = _province()
    for m in months:
        acts = {a[0]: a for a in m["activities"]}
        visits = {v[0]: v for v in m["visits"]}
        reported = {r[1] for r in m["publicity_reports"]}
        attended: dict[int, set[int]] = {}
        for _id, aid, tid, vid, _at in m["attendances"]:
            v = visits[vid]
            assert (v[2], v[3], v[4], v[5]) == (tid, acts[aid][1], aid, "activity")
            attended.setdefault(aid, set()).add(tid)
        paid = {e[7]: e for e in m["entries"] if e[6] == activity.KIND}
        for aid, a in acts.items():
            due = aid in reported and bool(attended.get(aid)) and activity.meets_lead(a[7], a[4], 24)
            assert (aid in paid) == due
            if due:
                e = paid[aid]
                assert (e[1], e[2], e[4], e[5], e[8]) == (activity.host_key(aid), a[1], 5, "R1@1", a[5])


def test_no_station_earns_before_its_certification() -> None:
    gen, months = _province()
    for m in months:
        for v in m["visits"]:
            assert gen.certified[v[3]] <= v[7]
            assert v[6] >= periods.local_midnight_utc(gen.certified[v[3]])
