"""How the Temporal connection is secured, from settings (the chart's external mode)."""

from __future__ import annotations

from pathlib import Path

from temporalio.service import TLSConfig

from orderflow.settings import Settings
from orderflow.temporal import tls_config


def test_plain_grpc_by_default() -> None:
    assert tls_config(Settings()) is False


def test_tls_with_system_cas_when_no_files_are_given() -> None:
    assert tls_config(Settings(temporal_tls=True)) is True


def test_files_become_a_tls_config(tmp_path: Path) -> None:
    for name in ("ca.crt", "tls.crt", "tls.key"):
        (tmp_path / name).write_bytes(name.encode())
    config = tls_config(
        Settings(
            temporal_tls=True,
            temporal_tls_ca_path=tmp_path / "ca.crt",
            temporal_tls_cert_path=tmp_path / "tls.crt",
            temporal_tls_key_path=tmp_path / "tls.key",
        )
    )
    assert isinstance(config, TLSConfig)
    assert config.server_root_ca_cert == b"ca.crt"
    assert (config.client_cert, config.client_private_key) == (b"tls.crt", b"tls.key")


def test_a_secret_with_only_a_ca_means_tls_without_client_certificate(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(b"ca")
    config = tls_config(
        Settings(
            temporal_tls=True,
            temporal_tls_ca_path=tmp_path / "ca.crt",
            temporal_tls_cert_path=tmp_path / "tls.crt",
            temporal_tls_key_path=tmp_path / "tls.key",
        )
    )
    assert isinstance(config, TLSConfig)
    assert (config.server_root_ca_cert, config.client_cert) == (b"ca", None)


def test_files_are_ignored_without_tls(tmp_path: Path) -> None:
    assert tls_config(Settings(temporal_tls_ca_path=tmp_path / "missing.crt")) is False


def test_secrets_do_not_leak_into_reprs() -> None:
    settings = Settings(temporal_api_key="k-123", api_token="t-456")
    assert "k-123" not in repr(settings) and "t-456" not in repr(settings)
