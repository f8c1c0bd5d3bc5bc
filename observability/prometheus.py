"""A real Prometheus for the local stack: ``make observe`` (``python -m observability.prometheus``).

Uses Debian's ``prometheus`` package (installed with apt-get when missing and
running as root). Scrapes the API and both workers where `make run` serves
them (API_PORT, ORDER_WORKER_HTTP_PORT, SHIPPING_WORKER_HTTP_PORT on
127.0.0.1), loads the alert rules the Helm chart ships, and serves its UI and
HTTP API on 127.0.0.1:PROMETHEUS_PORT. The integration tests start it the same
way against their own stack.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from orderflow.settings import REPO_ROOT, Settings, get_settings

RULES_FILE = REPO_ROOT / "charts" / "orderflow" / "rules" / "orderflow-alerts.yaml"
NAMESPACE = "orderflow"  # the namespace label of the local targets (see config())


class NotInstalled(RuntimeError):
    pass


def ensure_installed() -> str:
    """Path of the ``prometheus`` binary, installing Debian's package if needed."""
    found = shutil.which("prometheus")
    if found and shutil.which("promtool"):
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise NotInstalled(
            "prometheus/promtool are not installed and cannot be installed from here "
            "(needs apt-get as root): run `sudo apt-get install -y prometheus`"
        )
    sys.stderr.write("==> installing Prometheus (apt-get install prometheus)\n")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run([apt, "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(
            [apt, "install", "-y", "-qq", "--no-install-recommends", "prometheus"],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    except subprocess.CalledProcessError as err:
        raise NotInstalled(f"apt-get could not install prometheus: {err}") from err
    found = shutil.which("prometheus")
    if found is None:
        raise NotInstalled("apt-get installed prometheus but the binary is not on PATH")
    return found


def targets(settings: Settings) -> dict[str, str]:
    """Scrape job -> host:port of each component of the local stack, and of the embedded
    Temporal server's own metrics when `make run` runs it (someone else's Temporal is
    theirs to scrape)."""
    jobs = {
        "orderflow-functions": f"127.0.0.1:{settings.api_port}",
        "orderflow-order-worker": f"127.0.0.1:{settings.order_worker_http_port}",
        "orderflow-shipping-worker": f"127.0.0.1:{settings.shipping_worker_http_port}",
    }
    if settings.embedded_temporal:
        jobs["temporal"] = f"127.0.0.1:{settings.embedded_temporal_metrics_port}"
    return jobs


def config(jobs: dict[str, str], scrape_interval: str = "5s") -> dict[str, Any]:
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": [str(RULES_FILE)],
        # The jobs and namespace the alert rules select (charts/orderflow/rules): the names
        # the chart's monitors give them for the release "orderflow" in "orderflow".
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [{"targets": [target], "labels": {"namespace": NAMESPACE}}],
            }
            for job, target in jobs.items()
        ],
    }


def command(binary: str, config_file: Path, data_dir: Path, port: int) -> list[str]:
    return [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=2d",
        "--log.level=warn",
    ]


def write_config(path: Path, jobs: dict[str, str], scrape_interval: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # JSON is YAML: no YAML library needed to write Prometheus's configuration.
    path.write_text(json.dumps(config(jobs, scrape_interval), indent=2))
    return path


def main() -> None:
    settings = get_settings()
    try:
        binary = ensure_installed()
    except NotInstalled as err:
        sys.stderr.write(f"{err}\n")
        raise SystemExit(1) from err
    base = settings.data_dir / "prometheus"
    config_file = write_config(base / "prometheus.yml", targets(settings), "5s")
    sys.stdout.write(
        f"Prometheus on http://127.0.0.1:{settings.prometheus_port} scraping "
        + ", ".join(f"{job} {t}" for job, t in targets(settings).items())
        + f"\nconfig {config_file}; Ctrl-C stops it. Grafana: see docs/observability.md\n"
    )
    sys.stdout.flush()
    proc = subprocess.Popen(command(binary, config_file, base / "data", settings.prometheus_port))
    # Stopped by a supervisor (SIGTERM) rather than Ctrl-C: take Prometheus along.
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        raise SystemExit(proc.wait())
    except KeyboardInterrupt:
        proc.terminate()
        raise SystemExit(proc.wait(30)) from None


if __name__ == "__main__":
    main()
