"""Rotating the secret key: every configuration's secrets sealed again under a new key.

    begin  key files: secret.key.previous ← the old key, then secret.key ← a new one;
           environment: the operator has set PUSHGATE_SECRET_KEY=new and
           PUSHGATE_PREVIOUS_SECRET_KEY=old in every process (docs/operations.md)
      ─►  re-seal every configuration the new key does not open yet, by compare-and-swap on
          the sealed text (a save that comes first wins, and the next pass looks at it again)
      ─►  end, once the new key opens everything: key files: secret.key.previous is removed;
          environment: the operator removes PUSHGATE_PREVIOUS_SECRET_KEY everywhere

Until it ends, both keys open everything, so workers keep delivering: a process whose key files
changed reads them again (sealing.py), and a re-sealed configuration keeps its version, so a
worker's cache of opened configurations stays valid. Running it again after an interruption
resumes the same rotation (secret.key.previous is still there) rather than starting another.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pushgate.datadir import FILE_MODE
from pushgate.sealing import Keyring, SecretBox, new_key
from pushgate.store import Store

# Passes over the configurations before giving up on ones that keep changing under us.
MAX_PASSES = 5


@dataclass
class Rotation:
    """What a rotation did: configurations re-sealed, already under the new key, and those
    that no key in force opens (their ids): the rotation cannot end while there are any."""

    resealed: int = 0
    current: int = 0
    unreadable: list[str] = field(default_factory=list)
    changing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every configuration's secrets open under the new key."""
        return not self.unreadable and not self.changing


def begin(keyring: Keyring) -> bool:
    """Start a rotation of the key files: the old key kept as `secret.key.previous`, a new one
    in `secret.key`. False when one was under way already (it is resumed, not restarted)."""
    if keyring.previous_path.exists():
        return False
    old = keyring.current()[0]
    _write_key(keyring.previous_path, old)
    _write_key(keyring.primary_path, new_key())
    keyring.current()
    return True


def end(keyring: Keyring) -> None:
    """End a rotation of the key files: the old key is no longer accepted."""
    keyring.previous_path.unlink(missing_ok=True)
    keyring.current()


async def reseal(store: Store, box: SecretBox) -> Rotation:
    """Seal every configuration's secrets under the box's primary key."""
    done = Rotation()
    for _ in range(MAX_PASSES):
        done.current, done.unreadable, done.changing = 0, [], []
        for configuration_id, sealed in (await store.configurations.sealed()).items():
            if box.sealed_by_primary(sealed):
                done.current += 1
                continue
            try:
                secrets = box.open(sealed)
            except ValueError:
                done.unreadable.append(configuration_id)
                continue
            if await store.configurations.reseal(
                configuration_id, sealed=sealed, resealed=box.seal(secrets)
            ):
                done.resealed += 1
            else:
                done.changing.append(configuration_id)
        if not done.changing:
            break
    return done


def _write_key(path: Path, key: bytes) -> None:
    """Replace `path` by a 0600 file holding `key`, atomically: a process reading it sees the
    old key or the new one, never a part."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
