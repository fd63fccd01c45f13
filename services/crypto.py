"""Refresh tokens are encrypted at rest (Fernet: AES-128-CBC with an HMAC)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from services.errors import ErrorKind, ServiceError


class TokenCipher:
    def __init__(self, key: str | bytes) -> None:
        self._fernet = Fernet(key.encode() if isinstance(key, str) else key)

    def encrypt(self, token: str) -> bytes:
        return self._fernet.encrypt(token.encode())

    def decrypt(self, encrypted: bytes) -> str:
        try:
            return self._fernet.decrypt(encrypted).decode()
        except InvalidToken:
            raise ServiceError(
                ErrorKind.AUTH,
                "A stored token cannot be decrypted: TOKEN_ENCRYPTION_KEY changed since it was "
                "saved. Restore the old key or reconnect the integration.",
                retryable=False,
            ) from None
