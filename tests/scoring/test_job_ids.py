"""The deterministic arq job ids, one function per kind of fact: the formats the queue's de-duplication,
the worker's retries and the sweeper rely on. Every job is the worker's `apply(kind, fact_id)`."""

from __future__ import annotations

from datetime import datetime

from scoring import admin
from scoring.facts import activity, attendance, media, redemption, survey, visit, void
from scoring.facts.common import APPLY, Job
from scoring.models import DeadLetter


def test_job_ids() -> None:
    assert APPLY == "apply"
    assert visit.job(7) == Job("visit", 7) and visit.job(7).id == "visit:7" and visit.job(7).args == ("visit", 7)
    assert visit.job(7, release=3).id == "visit:7:release3"
    assert attendance.job(7).id == "attendance:7"
    ends = datetime(2026, 11, 3, 8, 0)
    assert activity.job(7, ends_at=ends) == Job("activity", 7, "end", defer_until=ends)
    assert activity.job(7, ends_at=ends).id == "activity:7:end"
    assert activity.job(7, publicity_id=3).id == "activity:7:pub3"
    assert media.job(7, 3).id == "media:7:3" and media.job(7, 3).args == ("media", 7)
    assert void.job(7).id == "void:7"
    assert survey.job(7).id == "survey:7"
    assert redemption.job(7).id == "redemption:7"
    assert admin.retry_job(DeadLetter(id=2, task="media", fact_id=7)).id == "media:7:retry2"
    # a dead letter written before issue 10 names its task; its retry is the fact's kind
    assert admin.retry_job(DeadLetter(id=2, task="apply_media", fact_id=7)) == Job("media", 7, "retry2")
