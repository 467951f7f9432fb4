"""Endpoint signing secrets: generated here, encrypted at rest with MultiFernet."""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, MultiFernet


def generate_signing_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class SecretBox:
    """Encrypts with the newest key, decrypts with any; rotate() re-encrypts under the newest."""

    def __init__(self, keys: tuple[str, ...]):
        if not keys:
            raise ValueError("SecretBox needs at least one Fernet key")
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    @classmethod
    def for_development(cls, secret_key: str) -> SecretBox:
        """A key derived from SECRET_KEY, used only when no encryption key is configured
        outside production (config refuses production without WEBHOOK_ENCRYPTION_KEYS)."""
        digest = hashlib.sha256(b"webhook-admin-dev-encryption:" + secret_key.encode()).digest()
        return cls((base64.urlsafe_b64encode(digest).decode(),))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()

    def rotate(self, token: str) -> str:
        return self._fernet.rotate(token.encode()).decode()
