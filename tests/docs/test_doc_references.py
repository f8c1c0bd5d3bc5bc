"""Every file, Python name, make target and setting the docs name in backticks exists."""

from __future__ import annotations

from pathlib import Path

from orderflow.settings import REPO_ROOT
from tests.docs import references


def test_the_docs_name_only_what_exists() -> None:
    found = references.problems(references.docs())
    assert found == [], "\n".join(str(p) for p in found)


def test_the_checker_reads_the_docs_it_should() -> None:
    checked = {p.relative_to(REPO_ROOT).as_posix() for p in references.docs()}
    assert {"README.md", "docs/design.md", "docs/decisions/README.md"} <= checked


def test_a_broken_reference_of_each_kind_fails(tmp_path: Path) -> None:
    doc = tmp_path / "broken.md"
    doc.write_text(
        "Real: `workers/attempts.py`, `attempts.py`, `orderflow.migrate`, "
        "`functions.lambda_handler.handler`, `make run`, `make load RATE=5`, "
        "`REVIEW_TIMEOUT_SECONDS=10`, `reports/load-*/report.html`, `.venv/bin/pytest`.\n"
        "Broken: `workers/no_such_module.py`, `nowhere.py`, `functions.lambda_handler.nope`, "
        "`make no-such-target`, `NO_SUCH_SETTING_SECONDS`, `docs/no-such-doc.md`.\n"
        "```sh\nmake ignored-in-a-fence `NOT_CHECKED_HERE`\n```\n"
    )
    found = {p.name for p in references.problems_in(doc)}
    assert found == {
        "workers/no_such_module.py",
        "nowhere.py",
        "functions.lambda_handler.nope",
        "make no-such-target",
        "NO_SUCH_SETTING_SECONDS",
        "docs/no-such-doc.md",
    }


def test_history_docs_may_name_settings_that_are_gone() -> None:
    doc = REPO_ROOT / "docs" / "decisions" / "0006-admission-control.md"
    assert "SHED_MAX_ACTIVE_ORDERS" in doc.read_text()
    assert references.problems_in(doc) == []
