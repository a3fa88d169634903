"""Every sentence the scoring core renders for a person, one module per audience (issue 10):

- `talent.py`    what a talent reads (reminders, invitations, redemptions, holds and voids of their visits)
- `operator.py`  what a station's operators read (rank changes, holds, the hourly digest, month reports,
                 plan reminders, the rating's outcome, consultations waiting)
- `admin.py`     what an admin reads (holds to review, what a fraud flag says, the rating, consultations
                 overdue, why a station was delisted)
- `labels.py`    the labels every message shares (month_label, local_label, day_label, LIST_SEP)

The domain decides and counts and returns reasons and numbers; the sentences are written here once, so the
voice stays one voice and `tests/test_architecture.py` can hold CJK strings to the texts modules. Stored
facts keep codes and parameters, never a rendered sentence: a sentence is rendered when it is read or sent.
"""

from scoring.texts.labels import LIST_SEP, day_label, local_label, month_label

__all__ = ["LIST_SEP", "day_label", "local_label", "month_label"]
