"""The lockfile: uv.lock resolves pyproject.toml for every platform and supported
Python, requirements/*.txt are its exports with hashes, and make setup, the image and
CI install from them with --require-hashes (`make lock` refreshes, `make lock-check`
in CI proves they are current; this test needs neither uv nor the network)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from orderflow.settings import REPO_ROOT

LOCK = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
REQUIREMENTS = REPO_ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)")
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")

# Which export holds which of pyproject's dependency sets.
EXPORTS = {
    "image.txt": [],
    "loadtest.txt": ["load"],
    "dev.txt": sorted(PYPROJECT["project"]["optional-dependencies"]),
}


def locked() -> dict[str, tuple[str, set[str]]]:
    """uv.lock's packages: name -> (version, every sha256 of its wheels and sdist)."""
    out: dict[str, tuple[str, set[str]]] = {}
    for package in LOCK["package"]:
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        hashes = {f["hash"].removeprefix("sha256:") for f in files}
        out[canonicalize_name(package["name"])] = (package["version"], hashes)
    return out


def pins(path: Path) -> dict[str, tuple[str, set[str]]]:
    """An export's requirements: name -> (version, its hashes); each entry spans lines."""
    entries = re.split(r"\n(?=[A-Za-z0-9])", path.read_text())
    out: dict[str, tuple[str, set[str]]] = {}
    for entry in entries:
        match = PIN.match(entry)
        if match:
            out[canonicalize_name(match[1])] = (match[2], set(HASH.findall(entry)))
    return out


@pytest.mark.parametrize("export", sorted(EXPORTS))
def test_every_export_pins_what_uv_lock_resolved_with_its_hashes(export: str) -> None:
    lock = locked()
    exported = pins(REQUIREMENTS / export)
    assert exported
    for name, (version, hashes) in exported.items():
        assert name in lock, f"{export}: {name} is not in uv.lock"
        assert version == lock[name][0], (export, name, version, lock[name][0])
        assert hashes and hashes <= lock[name][1], f"{export}: {name} without uv.lock's hashes"


@pytest.mark.parametrize(("export", "extras"), sorted(EXPORTS.items()))
def test_every_direct_dependency_is_pinned_within_its_range(export: str, extras: list[str]) -> None:
    exported = pins(REQUIREMENTS / export)
    project = PYPROJECT["project"]
    wanted = [*project["dependencies"]]
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    for line in wanted:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in exported, f"{export} lacks {name}"
        assert requirement.specifier.contains(exported[name][0], prereleases=True), (
            export,
            line,
            exported[name][0],
        )
    if not extras:  # the image carries none of the extras' packages
        for extra_line in project["optional-dependencies"]["dev"]:
            assert canonicalize_name(Requirement(extra_line).name) not in exported


def test_checkov_is_locked_with_hashes() -> None:
    exported = pins(REQUIREMENTS / "checkov.txt")
    assert "checkov" in exported
    assert all(hashes for _, hashes in exported.values())
    (wanted,) = [
        line
        for line in (REQUIREMENTS / "checkov.in").read_text().splitlines()
        if line[:1].isalpha()
    ]
    assert Requirement(wanted).specifier.contains(exported["checkov"][0])


def test_setup_the_image_and_ci_install_from_the_lock() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "--require-hashes -r requirements/dev.txt" in makefile
    assert re.search(r"--require-hashes\s*\\\s*\n\s*-r requirements/checkov.txt", makefile)
    assert re.search(r"^\$\(STAMP\): pyproject.toml requirements/dev.txt$", makefile, re.M)
    assert re.search(r"^lock: ", makefile, re.M) and re.search(r"^lock-check: ", makefile, re.M)
    # Nothing is installed by a version range any more.
    assert not re.search(r"pip install[^\n]*'[a-z-]+(>=|<)", makefile)
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert re.search(r"--require-hashes[^\n]*\\\s*\n\s*-r requirements/image.txt", dockerfile)
    assert re.search(
        r"--require-hashes[^\n]*\\\s*\n[^\n]*-r /tmp/loadtest-requirements.txt", dockerfile
    )
    assert "pip install --no-deps --no-compile ." in dockerfile
    assert not re.search(r"'[a-z-]+>=", dockerfile)
    ignore = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert "!requirements/image.txt" in ignore and "!requirements/loadtest.txt" in ignore
    assert "make lock-check" in (REPO_ROOT / ".ci" / "run").read_text()


def test_the_base_image_says_how_it_is_pinned() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    (base,) = re.findall(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.M)
    name, _, digest = base.partition("@")
    assert name.startswith("python:3.12-slim")
    # A digest once one has been looked up; until then the comment says how to get it.
    assert not digest or re.fullmatch(r"sha256:[0-9a-f]{64}", digest), digest
    assert "imagetools inspect" in dockerfile
