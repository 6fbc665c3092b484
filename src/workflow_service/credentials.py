"""The credentials file: where `serve` leaves the first client key for the CLI.

JSON ``{"server": ..., "api_key": ...}``, mode 0600, at CREDENTIALS_FILE.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_credentials(path: Path, server: str, api_key: str) -> Path:
    """Write atomically with mode 0600 from the start; returns the absolute path."""
    path = path.expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        json.dump({"server": server, "api_key": api_key}, stream)
        stream.write("\n")
    temporary.replace(path)
    return path


def read_credentials(path: Path) -> dict[str, str]:
    """``{"server", "api_key"}`` saved by `serve`, or {} when there is no such file."""
    path = path.expanduser()
    if not path.is_file():
        return {}
    saved = json.loads(path.read_text())
    return {key: str(saved[key]) for key in ("server", "api_key") if key in saved}
