"""The load report as a person sees it: rendered by a real browser (headless
Chromium) at 1300 px, it fits the window and shows the headline rounded.

`make test` installs Debian's chromium where it can (the Makefile's `browser` target:
as root or with sudo); where it could not, the browser test is skipped, saying so,
except on CI (CI=true), where it fails."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from loadtest import report
from loadtest.orders import OrderRecord, Summary, summarize
from orderflow.settings import REPO_ROOT
from tests.ci import on_ci, skip_or_fail

WIDTH = 1300
# Appended to a copy of the page: once everything (the plot included) has loaded,
# write what the browser measured into the DOM that --dump-dom prints.
MEASURE = (
    "<script>addEventListener('load', () => { const d = document.documentElement;"
    "const p = document.createElement('pre'); p.id = 'measured';"
    "p.textContent = JSON.stringify([d.scrollWidth, innerWidth]);"
    "document.body.appendChild(p); });</script>"
)


MISSING = (
    "chromium is not installed: `make browser` installs it as root or with sudo "
    "(or `sudo apt-get install chromium`)"
)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    skip_or_fail(None if found else MISSING, on_ci())
    assert found is not None
    return found


def a_run() -> tuple[list[OrderRecord], Summary]:
    draw = random.Random(7)
    records = []
    for i in range(300):
        sent = 1_000.0 + i / 10
        r = OrderRecord(order_id=f"o-{i}", kind="approve", sent_at=sent, due_at=sent)
        if i % 50 == 49:
            r.error = "start: 503"
        else:
            workflow = draw.uniform(0.8, 4.0)
            r.finish(
                {
                    "state": "COMPLETED",
                    "started_at": "2026-01-01T00:00:00+00:00",
                    "finished_at": f"2026-01-01T00:00:{workflow:09.6f}+00:00",
                },
                read_at=sent + workflow + draw.uniform(0.0, 1.0),
            )
        records.append(r)
    summary = summarize(records, 30.0, offered_per_second=10, follow="poll status every 1 s")
    summary.http = {
        "POST /orders/[id]/start": {
            "requests": 300,
            "failures": 6,
            "per_second": 10.0,
            "p50_ms": 12.003,
            "p99_ms": 48.71234,
            "max_ms": 33.998038999925484,
        }
    }
    return records, summary


def rendered(page: Path, tmp_path: Path) -> tuple[str, Path]:
    """The DOM after load, and a screenshot, at WIDTH px."""
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</html>", MEASURE + "</html>"))
    shot = tmp_path / "report.png"
    browser = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={WIDTH},900",
        "--virtual-time-budget=5000",
    ]
    dom = subprocess.run(
        [*browser, "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    subprocess.run(
        [*browser, f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return dom, shot


def test_the_report_fits_1300_px_and_reads_rounded(tmp_path: Path) -> None:
    records, summary = a_run()
    page = report.write(records, summary, tmp_path / "run", "orderflow load: test", {"API": "x"})
    dom, shot = rendered(page, tmp_path)

    measured = re.search(r'<pre id="measured">\[(\d+),(\d+)\]</pre>', dom)
    assert measured, dom[-500:]
    scroll_width, window = map(int, measured.groups())
    assert window == WIDTH
    assert scroll_width <= window, f"horizontal overflow: {scroll_width} px in {window}"
    assert shot.stat().st_size > 10_000

    text = re.sub(r"<[^>]+>", " ", dom)
    p50, p99 = summary.latency["p50"], summary.latency["p99"]
    assert p50 is not None and p99 is not None
    headline = text.split("Run", 1)[0]
    assert f"{p50:.2f} s" in headline and f"{p99:.2f} s" in headline
    assert "100.0 %" in headline  # of the 294 admitted orders
    assert "6 of 300" in headline  # shed
    assert "12 ms" in text and "49 ms" in text and "34 ms" in text
    assert not re.search(r"\d\.\d{4,}", text), "an unrounded number on the page"


def test_the_terminal_summary_uses_the_same_rounding(tmp_path: Path) -> None:
    _, summary = a_run()
    out = report.text(summary, tmp_path / "report.html")
    assert "max 34 ms" in out and "p99 49 ms" in out
    assert not re.search(r"\d\.\d{4,}", out), out


def test_without_chromium_the_browser_test_skips_except_on_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"CI=true.*chromium is not installed"):
        chromium()


def _make_browser(tmp_path: Path, uid: int, sudo: bool, installed: bool = False) -> tuple[str, str]:
    """`make browser` with stand-ins on an otherwise empty PATH: `id`, `apt-get` (writes
    its arguments to a log), `sudo` (works without a password or not), and `chromium` when
    installed. Its output, and what apt-get was asked."""
    log = tmp_path / "log"
    tools = {
        "id": f"echo {uid}",
        "apt-get": 'echo "apt-get $*" >> "$LOG"',
        "sudo": f'if [ "$1" = -n ]; then exit {0 if sudo else 1}; fi; '
        'echo "sudo $*" >> "$LOG"; exec "$@"',
    }
    if installed:
        tools["chromium"] = "exit 0"
    for name, body in tools.items():
        (tmp_path / name).write_text(f"#!/bin/sh\n{body}\n")
        (tmp_path / name).chmod(0o755)
    make = shutil.which("make")
    assert make is not None
    result = subprocess.run(
        [make, "--no-print-directory", "-C", str(REPO_ROOT), "browser"],
        capture_output=True,
        text=True,
        env={"PATH": str(tmp_path), "LOG": str(log)},
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, log.read_text() if log.exists() else ""


APT = "apt-get update -qq\napt-get install -y -qq chromium\n"


def test_make_browser_installs_as_root_or_with_sudo(tmp_path: Path) -> None:
    assert _make_browser(tmp_path, uid=0, sudo=False)[1] == APT
    sudo = "sudo apt-get update -qq\napt-get update -qq\n"
    sudo += "sudo apt-get install -y -qq chromium\napt-get install -y -qq chromium\n"
    (tmp_path / "log").unlink()
    assert _make_browser(tmp_path, uid=1000, sudo=True)[1] == sudo


def test_make_browser_without_root_says_how_and_goes_on(tmp_path: Path) -> None:
    out, apt = _make_browser(tmp_path, uid=1000, sudo=False)
    assert apt == ""
    assert out.count("\n") == 1 and "chromium is missing" in out, out
    assert "sudo apt-get install chromium" in out and "test_report_page.py, is skipped" in out


def test_make_browser_leaves_an_installed_chromium_alone(tmp_path: Path) -> None:
    assert _make_browser(tmp_path, uid=0, sudo=True, installed=True) == ("", "")
