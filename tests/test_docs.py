"""Every setting is documented in the README's configuration table (issue 9): a new setting without a line
there fails here."""

from __future__ import annotations

from pathlib import Path

from scoring.settings import Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_setting_is_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    config = text[text.index("## Configuration"):]
    rows = [line for line in config.splitlines() if line.startswith("| `")]
    documented = " ".join(rows)
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in documented]
    assert not missing, f"settings missing from README's configuration table: {missing}"
