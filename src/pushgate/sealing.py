"""Encryption at rest for configuration secrets (Fernet: AES-128-CBC + HMAC-SHA256).

The keys come from the settings — `PUSHGATE_SECRET_KEY`, and `PUSHGATE_PREVIOUS_SECRET_KEY`
while a rotation runs — or from key files in the data directory, mode 0600: `secret.key`
(created on first use) and `secret.key.previous` (only while `pushgate rotate-key` runs). The
first key seals; every key opens. Every process that shares a database must use the same keys.

Key files are read again whenever they change, so a process that is running follows a
rotation: it seals with the new key as soon as `secret.key` holds it, and opens what was
sealed under either key until the rotation ends (rotation.py).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pushgate.datadir import FILE_MODE, make_data_dir
from pushgate.settings import Settings

KEY_FILE_NAME = "secret.key"
PREVIOUS_KEY_FILE_NAME = "secret.key.previous"
# Binds derived keys to this use, so the same operator string used elsewhere yields another key.
_HKDF_INFO = b"pushgate configuration secrets v1"
# Random bytes in a generated key (before base64).
KEY_BYTES = 32


def new_key() -> bytes:
    """A fresh random key, as key files hold it."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES))


def _derive(material: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(material)


@dataclass(frozen=True, slots=True)
class _Stamp:
    """What tells that a key file changed."""

    inode: int
    size: int
    mtime_ns: int


def _stamp(path: Path) -> _Stamp | None:
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return _Stamp(found.st_ino, found.st_size, found.st_mtime_ns)


class Keyring:
    """The keys in force, primary first: from the settings, or the data directory's key files
    (read again when they change). `generation` grows whenever the keys change."""

    def __init__(self, settings: Settings) -> None:
        self._data_dir = settings.data_dir
        self.from_files = settings.secret_key is None
        fixed = [settings.secret_key, settings.previous_secret_key]
        self._fixed = tuple(key.get_secret_value().encode() for key in fixed if key is not None)
        self._stamps: tuple[_Stamp | None, ...] = ()
        self._keys: tuple[bytes, ...] = ()
        self.generation = 0
        self.current()

    @property
    def primary_path(self) -> Path:
        """The key file that holds the primary key (when keys come from files)."""
        return self._data_dir / KEY_FILE_NAME

    @property
    def previous_path(self) -> Path:
        """The key file that holds the key being replaced, while a rotation runs."""
        return self._data_dir / PREVIOUS_KEY_FILE_NAME

    def current(self) -> tuple[bytes, ...]:
        """The key material in force now, primary first."""
        if not self.from_files:
            keys = self._fixed
        else:
            stamps = (_stamp(self.primary_path), _stamp(self.previous_path))
            if stamps == self._stamps and stamps[0] is not None:
                return self._keys
            keys = (_key_file(self._data_dir), *self._previous_file(), *self._fixed)
            self._stamps = (_stamp(self.primary_path), stamps[1])
        if keys != self._keys:
            self._keys = keys
            self.generation += 1
        return self._keys

    def _previous_file(self) -> tuple[bytes, ...]:
        try:
            return (self.previous_path.read_bytes().strip(),)
        except FileNotFoundError:
            return ()


class SecretBox:
    """Seals and opens the secret fields of a configuration under a keyring."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._generation = -1
        self._fernets: list[Fernet] = []

    def _current(self) -> list[Fernet]:
        keys = self.keyring.current()
        if self._generation != self.keyring.generation:
            self._fernets = [
                Fernet(base64.urlsafe_b64encode(_derive(key, _HKDF_INFO))) for key in keys
            ]
            self._generation = self.keyring.generation
        return self._fernets

    def seal(self, secrets: dict[str, str]) -> str:
        """Encrypt a mapping of secret field -> value under the primary key."""
        return self._current()[0].encrypt(json.dumps(secrets).encode()).decode()

    def open(self, sealed: str) -> dict[str, str]:
        """Decrypt what `seal` produced under any key in force. Raises ValueError with a clear
        message when none opens it."""
        try:
            data = MultiFernet(self._current()).decrypt(sealed.encode())
        except InvalidToken:
            raise ValueError(
                "cannot decrypt a configuration secret: PUSHGATE_SECRET_KEY (or the key file) "
                "differs from the one it was saved with"
            ) from None
        opened: dict[str, str] = json.loads(data)
        return opened

    def sealed_by_primary(self, sealed: str) -> bool:
        """Whether the primary key opens `sealed` (a rotation has nothing left to do for it)."""
        try:
            self._current()[0].decrypt(sealed.encode())
        except InvalidToken:
            return False
        return True

    def derived(self, purpose: bytes) -> tuple[bytes, ...]:
        """32-byte keys for `purpose` (e.g. signing web sessions), one per key in force,
        primary first: independent of the box's own keys and of every other purpose's."""
        return tuple(_derive(key, purpose) for key in self.keyring.current())


def load_secret_box(settings: Settings) -> SecretBox:
    """The box for these settings, creating the key file on first use."""
    return SecretBox(Keyring(settings))


def _key_file(data_dir: Path) -> bytes:
    path = data_dir / KEY_FILE_NAME
    make_data_dir(data_dir)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return path.read_bytes().strip()
    key = new_key()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key
