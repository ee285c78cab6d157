"""Encryption at rest for configuration secrets (Fernet: AES-128-CBC + HMAC-SHA256).

The key comes from `PUSHGATE_SECRET_KEY`, or from a key file created once in the data directory
with mode 0600. Every process that shares a database must use the same key.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pushgate.datadir import FILE_MODE, make_data_dir
from pushgate.settings import Settings

KEY_FILE_NAME = "secret.key"
# Binds derived keys to this use, so the same operator string used elsewhere yields another key.
_HKDF_INFO = b"pushgate configuration secrets v1"


class SecretBox:
    """Seals and opens the secret fields of a configuration."""

    def __init__(self, key_material: bytes) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
            key_material
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, secrets: dict[str, str]) -> str:
        """Encrypt a mapping of secret field -> value."""
        return self._fernet.encrypt(json.dumps(secrets).encode()).decode()

    def open(self, sealed: str) -> dict[str, str]:
        """Decrypt what `seal` produced. Raises ValueError with a clear message on a wrong key."""
        try:
            data = self._fernet.decrypt(sealed.encode())
        except InvalidToken:
            raise ValueError(
                "cannot decrypt a configuration secret: PUSHGATE_SECRET_KEY (or the key file) "
                "differs from the one it was saved with"
            ) from None
        opened: dict[str, str] = json.loads(data)
        return opened


def load_secret_box(settings: Settings) -> SecretBox:
    """The box for these settings, creating the key file on first use."""
    return SecretBox(_key_material(settings))


def derive_key(settings: Settings, purpose: bytes) -> bytes:
    """A 32-byte key for `purpose` (e.g. signing web sessions), derived from the same secret
    material as the box but independent of its key and of every other purpose's key."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        _key_material(settings)
    )


def _key_material(settings: Settings) -> bytes:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    return _key_file(settings.data_dir)


def _key_file(data_dir: Path) -> bytes:
    path = data_dir / KEY_FILE_NAME
    make_data_dir(data_dir)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return path.read_bytes().strip()
    key = base64.urlsafe_b64encode(os.urandom(32))
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key
