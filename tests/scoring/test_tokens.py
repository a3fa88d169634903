"""Scene strings are whatever a camera read: odd text is refused as an invalid code, never raised."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import tokens
from scoring.tokens import Scene, SceneError, Window, activity_window, parse_scene

KEY = b"scene-key"
NOW = 1_790_000_000.0


def mangle(good: str) -> list[str]:
    """The code with its MAC, its reference or its time made non-ASCII (as a misread or hostile code)."""
    head, _, mac = good.rpartition(".")
    return [f"{head}.{mac[:-1]}é", f"{head}.{'中' * len(mac)}", f"{head}.{mac[:-1]}\udcff", f"{head}.{mac}\x00",
            good.replace(":", "：", 1), f"{head}.{mac[:-2]}\u0660\u0661"]


@pytest.mark.parametrize("good", [tokens.station_scene(KEY, "ST1", NOW), tokens.activity_scene(KEY, 12, NOW),
                                  tokens.talent_scene(KEY, 7, NOW)], ids=["station", "activity", "talent"])
def test_non_ascii_codes_are_refused_cleanly(good):
    assert isinstance(parse_scene(KEY, good, NOW), Scene)
    for bad in mangle(good):
        assert parse_scene(KEY, bad, NOW) in (SceneError.FORGED, SceneError.MALFORMED), bad


def test_non_ascii_reference_is_refused():
    t = tokens.activity_scene(KEY, 12, NOW).split(":")[2]
    assert parse_scene(KEY, f"ac:１２:{t}", NOW) is SceneError.FORGED  # full-width digits are not an id
    assert parse_scene(KEY, f"ac:\u0661\u0662:{t}", NOW) is SceneError.FORGED
    w = tokens.station_scene(KEY, "ST1", NOW).split(":")[2]
    assert parse_scene(KEY, f"st:站点:{w}", NOW) is SceneError.FORGED


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=70))
def test_any_text_is_a_scene_or_a_refusal(text):
    for scene in (text, "st:" + text, "ac:" + text, "tl:" + text, "ac:1:" + text, "st:A:" + text):
        assert isinstance(parse_scene(KEY, scene, NOW), Scene | SceneError)


START = datetime(2026, 11, 10, 6, 0)
END = datetime(2026, 11, 10, 8, 0)


@pytest.mark.parametrize(("at", "expected"), [
    (START - timedelta(minutes=31), Window.NOT_STARTED),
    (START - timedelta(minutes=30), None),
    (START, None),
    (END, None),
    (END + timedelta(minutes=30), None),
    (END + timedelta(minutes=30, seconds=1), Window.ENDED),
    (END + timedelta(days=300), Window.ENDED),
])
def test_activity_window_with_grace(at, expected):
    assert activity_window(at, START, END) is expected


def test_activity_window_grace_is_configurable():
    assert activity_window(END + timedelta(minutes=10), START, END, grace=timedelta(0)) is Window.ENDED
    assert activity_window(START - timedelta(minutes=50), START, END, grace=timedelta(hours=1)) is None
