"""The README's configuration table lists every setting, and nothing that is not one."""

from __future__ import annotations

import re

from orderflow.settings import REPO_ROOT, Settings


def documented() -> set[str]:
    readme = (REPO_ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for row in table.splitlines():
        if row.startswith("| `"):
            first_column = row.split("|")[1]
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]*)`", first_column))
    return names


def test_every_setting_is_in_the_readme_table_and_only_settings_are() -> None:
    settings = {name.upper() for name in Settings.model_fields}
    listed = documented()
    assert settings - listed == set(), "settings missing from README's Configuration table"
    assert listed - settings == set(), "README's Configuration table names unknown settings"
