"""A generated secret in a file: the compose stack's Ray token (``tuneforge secret PATH``)."""

import os
import secrets
from pathlib import Path


def ensure_secret(path: Path) -> str:
    """Write 32 random bytes (URL-safe text) to ``path``, readable by its owner alone, unless
    it holds a secret already (a restart keeps the cluster's token); returns what was done."""
    if path.exists() and path.read_text().strip():
        return f"kept the secret in {path}"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(32))
    os.replace(partial, path)  # never a half-written token
    return f"wrote a new secret to {path}"
