"""The points rules (SPEC 2) as data with one interpreter. Every entry stores `rule_id@version`."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True)
class Rule:
    id: str
    version: int
    trigger: str
    station: int = 0
    talent: int = 0
    source: str = ""
    params: MappingProxyType[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def tag(self) -> str:
        return f"{self.id}@{self.version}"


MEDIA_LEVELS: Final = ("central", "provincial", "municipal", "county")
MEDIA_LEVEL_ALIASES: Final = {"中央": "central", "省": "provincial", "省级": "provincial", "市": "municipal",
                              "市级": "municipal", "县": "county", "县级": "county", "区": "county"}

RULES: Final[MappingProxyType[str, Rule]] = MappingProxyType({
    "R1": Rule("R1", 1, "activity held: published ahead, attended, publicity report", station=5, source="A1.1",
               params=MappingProxyType({"lead_hours": 24, "min_attendees": 1})),
    "R2": Rule("R2", 1, "media report of an activity; best level only", source="A1.1",
               params=MappingProxyType({"central": 20, "provincial": 10, "municipal": 5, "county": 3})),
    "R3": Rule("R3", 1, "visit: one per talent, station and local day", station=1, talent=1, source="A1.2"),
    "R4": Rule("R4", 1, "yearly survey result", source="A1.3", params=MappingProxyType({"cap": 50})),
    "V": Rule("V", 1, "void: reversal of an entry", source="A3.3"),
    "G": Rule("G", 1, "gift redemption", source="A2"),
})


def rule(rule_id: str) -> Rule:
    return RULES[rule_id]


def media_points(level: str) -> int:
    return RULES["R2"].params[level]


def normalise_media_level(word: str) -> str | None:
    w = word.strip().lower()
    if w in MEDIA_LEVELS:
        return w
    return MEDIA_LEVEL_ALIASES.get(word.strip())


SURVEY_CAP: Final = RULES["R4"].params["cap"]
