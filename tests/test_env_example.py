"""`.env.example` documents every setting, and only real ones."""

from __future__ import annotations

import re
from pathlib import Path

from bot.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def documented() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return {m.group(1).lower() for m in re.finditer(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.M)}


def test_every_setting_is_in_env_example() -> None:
    assert set(Settings.model_fields) - documented() == set()


def test_env_example_names_no_unknown_setting() -> None:
    assert documented() - set(Settings.model_fields) == set()


def test_every_setting_has_a_comment_above_it() -> None:
    """A setting is explained by the comment heading its group (settings may share one)."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]+=", line):
            above = index - 1
            while above >= 0 and re.match(r"^[A-Z][A-Z0-9_]+=", lines[above]):
                above -= 1
            assert above >= 0 and lines[above].startswith("#"), f"{line.split('=')[0]}: no comment"
