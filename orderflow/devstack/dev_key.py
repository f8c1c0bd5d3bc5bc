"""The development payload key `make run` uses when PAYLOAD_KEYS is not set.

Generated once into DATA_DIR/payload-dev-key (mode 0600) and kept there, so a
restarted stack still decrypts the histories its file-backed Temporal kept; `make
clean` removes it with them. Never for production: anyone with the data directory
reads every order.
"""

from __future__ import annotations

import os
from pathlib import Path

from orderflow.payload_codec import Keyring

FILE_NAME = "payload-dev-key"
KEY_ID = "dev"


def development_keys(data_dir: Path) -> tuple[str, Path]:
    """PAYLOAD_KEYS for the development key in ``data_dir``, made on first use."""
    path = data_dir / FILE_NAME
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"{KEY_ID}:{Keyring.new_key()}\n")
    spec = path.read_text().strip()
    Keyring.parse(spec)  # a damaged file fails here, naming the problem
    return spec, path
