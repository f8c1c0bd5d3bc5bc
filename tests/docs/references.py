"""Names the docs give in backticks, checked against the repository.

Three kinds of name, each recognised narrowly so that prose and examples pass:

* a file or folder: a backticked token that starts with one of the repository's
  top-level folders, or ends in a known extension with no folder (``steps.py``,
  which must then exist somewhere). Globs, URLs and runtime folders (``.venv/``,
  ``.data/``, ``reports/``) are not files of the repository and are skipped;
* a Python name: ``functions.lambda_handler.handler`` or ``loadtest/bench_report.x``,
  a module of ours and, if given, a name defined at its top level;
* a make target: every word after ``make`` in a backticked command;
* a setting: an UPPER_CASE name in backticks, optionally ``=value``. It must be a
  field of ``Settings`` or appear in the repository's code or configuration (a make
  variable, a constant, an environment variable a tool reads).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from orderflow.settings import REPO_ROOT, Settings

BACKTICKED = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
UPPER = re.compile(r"^([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?:=\S*)?$")
EXTENSIONS = (".py", ".md", ".yaml", ".yml", ".sql", ".json", ".sh", ".toml", ".tpl", ".txt")
# A bare file name is checked only for code of ours: `summary.json` or
# `docker-entrypoint.sh` name files that other programs write or ship.
BARE = (".py", ".sql")
PACKAGES = ("orderflow", "workers", "functions", "loadtest", "observability", "tests")
# Created at run time, not kept in the repository.
RUNTIME = (".venv", ".data", "reports", ".mypy_cache", ".pytest_cache")
# Documents that describe how things were: settings they name may be gone.
HISTORY = ("docs/decisions/", "docs/measurements.md")


@dataclass(frozen=True)
class Problem:
    doc: str
    name: str
    why: str

    def __str__(self) -> str:
        return f"{self.doc}: `{self.name}` {self.why}"


@cache
def tracked_files(root: Path = REPO_ROOT) -> frozenset[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return frozenset(line for line in listed.splitlines() if (root / line).exists())


@cache
def top_level(root: Path = REPO_ROOT) -> frozenset[str]:
    return frozenset(path.split("/", 1)[0] for path in tracked_files(root) if "/" in path)


@cache
def make_targets(root: Path = REPO_ROOT) -> frozenset[str]:
    text = (root / "Makefile").read_text()
    return frozenset(re.findall(r"^([a-z0-9][a-z0-9-]*):", text, re.MULTILINE))


@cache
def source_words(root: Path = REPO_ROOT) -> frozenset[str]:
    """Every UPPER_CASE word in the code and configuration (docs excluded)."""
    words: set[str] = set()
    for path in tracked_files(root):
        if (
            path.endswith(".md")
            or path.startswith(("docs/", "tests/docs/"))
            or "/upstream/" in path
        ):
            continue
        try:
            text = (root / path).read_text()
        except (UnicodeDecodeError, IsADirectoryError):
            continue
        words.update(re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b", text))
    return frozenset(words)


def settings_names() -> frozenset[str]:
    return frozenset(name.upper() for name in Settings.model_fields)


def backticked(markdown: str) -> Iterator[str]:
    """Inline code spans outside fenced blocks (those hold examples and output)."""
    yield from BACKTICKED.findall(FENCE.sub("", markdown))


def _file_problem(token: str, doc: Path, root: Path) -> str | None:
    name = token.split("#", 1)[0].rstrip(",.;:")
    if not name or any(c in name for c in "*{}<>$ ") or "://" in name:
        return None
    first = name.split("/", 1)[0]
    if first in RUNTIME:
        return None
    dotted = re.fullmatch(r"[a-z_]+(\.[A-Za-z_][A-Za-z0-9_]*)+", name)
    # Helm values paths look alike (`functions.scaleToZero.mode`) but are camelCase.
    if dotted and first.split(".")[0] in PACKAGES and not re.search(r"\.[a-z]+[A-Z]", name):
        return _python_problem(name.split("."), root)
    if "/" in name:
        if first not in top_level(root):
            return None
    elif not name.endswith(BARE):
        return None
    else:  # a bare file name: it must exist somewhere
        if not any(p.rsplit("/", 1)[-1] == name for p in tracked_files(root)):
            return "names a file that is in no folder of the repository"
        return None
    plain = name.rstrip("/")
    if (root / plain).exists() or (doc.parent / plain).exists():
        return None
    module, _, attr = plain.rpartition(".")
    if "/" in module and (root / f"{module}.py").is_file():
        return _python_problem([*module.split("/"), attr], root)
    return "names a path that does not exist"


def _python_problem(parts: list[str], root: Path) -> str | None:
    """``a.b.c``: module a/b/c.py, or module a/b.py defining c."""
    for cut in (len(parts), len(parts) - 1):
        base = root.joinpath(*parts[:cut])
        module = (
            base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        )
        if not module.is_file():
            continue
        if cut == len(parts):
            return None
        attr = re.escape(parts[-1])
        defined = rf"^(?:async def |def |class )?{attr}\b\s*[(:=]"
        if re.search(defined, module.read_text(), re.MULTILINE):
            return None
        return f"names {parts[-1]!r}, which {module.relative_to(root)} does not define"
    return "names a module that does not exist"


def problems_in(doc: Path, root: Path = REPO_ROOT) -> list[Problem]:
    relative = doc.relative_to(root).as_posix() if doc.is_relative_to(root) else doc.name
    history = relative.startswith(HISTORY)
    found: list[Problem] = []
    for token in backticked(doc.read_text()):
        token = token.strip()
        words = token.split()
        if words and words[0] == "make":
            for target in words[1:]:
                if "=" in target or target.startswith("-"):
                    continue
                if target not in make_targets(root):
                    found.append(Problem(relative, token, f"names no make target {target!r}"))
            continue
        setting = UPPER.match(token)
        if setting:
            name = setting.group(1)
            known = name in settings_names() or name in source_words(root)
            if not known and not history:
                found.append(Problem(relative, token, "is no setting and appears in no code"))
            continue
        why = _file_problem(token, doc, root)
        if why:
            found.append(Problem(relative, token, why))
    return found


def docs(root: Path = REPO_ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def problems(paths: Iterable[Path], root: Path = REPO_ROOT) -> list[Problem]:
    return [problem for path in paths for problem in problems_in(path, root)]
