"""The deterministic arq job ids, one function per kind of fact: the formats the queue's de-duplication,
the worker's retries and the sweeper rely on."""

from __future__ import annotations

from scoring import admin, gifts, operations, visits
from scoring.models import DeadLetter


def test_job_ids() -> None:
    assert visits.apply_visit_job_id(7) == "apply_visit:7"
    assert gifts.apply_redemption_job_id(7) == "apply_redemption:7"
    assert operations.apply_activity_job_id(7) == "apply_activity:7:end"
    assert operations.apply_activity_job_id(7, publicity_id=3) == "apply_activity:7:pub3"
    assert operations.apply_media_job_id(7, 3) == "apply_media:7:3"
    assert admin.apply_void_job_id(7) == "apply_void:7"
    assert admin.apply_survey_job_id(7) == "apply_survey:7"
    assert admin.release_flag_job_id(7) == "release_flag:7"
    assert admin.retry_job_id(DeadLetter(id=2, task="apply_media", fact_id=7)) == "apply_media:7:retry2"
