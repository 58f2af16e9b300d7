"""Secrets at rest (SPEC §6.2): authenticated encryption with rotatable keys.

A stored secret looks like ``enc:v1:<cipher>:<key_id>:<payload>``:

* ``fernet`` (default): the payload is a Fernet token (AES-128-CBC + HMAC-SHA256).
* ``sm4``: SM4-GCM; the payload is base64url(12-byte nonce || ciphertext || 16-byte tag),
  and the header ``enc:v1:sm4:<key_id>`` is authenticated as associated data.
* ``sm4cbc``: read-only, for secrets imported from systems that used ``gmssl`` (SM4-CBC
  with PKCS#7 and no MAC); the payload is base64url(16-byte IV || ciphertext).
  :func:`rotate` re-encrypts them under the current cipher.

Keys come from ``settings.SECRET_KEYS``, a list of ``"key_id:base64key"`` entries (16 or
32 bytes once decoded). The first key encrypts; every key decrypts, so a new key can be
put in front, ``manage.py rotate_secrets`` run, and the old key removed afterwards,
without downtime. ``settings.SECRET_CIPHER`` picks the cipher for new encryptions; all
ciphers always decrypt. With no ``SECRET_KEYS`` (embedded/dev) a key is derived from
``SECRET_KEY`` with HKDF under the id ``derived``; that key also stays readable once
``SECRET_KEYS`` is set, so ``rotate_secrets`` can move old values to a real key.

Error messages and reprs name key ids and ciphers, never key material or plaintext.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass, field
from functools import cached_property

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

PREFIX = "enc:v1:"
FERNET = "fernet"
SM4 = "sm4"
SM4_CBC = "sm4cbc"
ENCRYPTING_CIPHERS = (FERNET, SM4)
CIPHERS = (FERNET, SM4, SM4_CBC)
DERIVED_KEY_ID = "derived"

_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
_GCM_NONCE = 12
_GCM_TAG = 16
_SM4_BLOCK = 16


class SecretsError(Exception):
    """Base class; messages never contain plaintext or key material."""


class SecretDecryptionError(SecretsError):
    """The value cannot be decrypted: malformed, tampered, or encrypted with another key."""


class UnknownKeyError(SecretDecryptionError):
    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(
            f"The secret was encrypted with key id {key_id!r}, which is not configured in "
            "SECRET_KEYS."
        )


def _hkdf(material: bytes, length: int, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(material)


@dataclass(frozen=True, eq=False)
class SecretKey:
    """One configured key. ``material`` is excluded from repr and comparison."""

    key_id: str
    material: bytes = field(repr=False)

    @cached_property
    def fernet(self) -> Fernet:
        # A 32-byte key is used as-is (so Fernet.generate_key() output works); a 16-byte
        # key is stretched. Each cipher gets its own key bytes otherwise (domain separation).
        raw = (
            self.material
            if len(self.material) == 32
            else _hkdf(self.material, 32, b"agentstore/secrets/fernet")
        )
        return Fernet(base64.urlsafe_b64encode(raw))

    @cached_property
    def sm4(self) -> bytes:
        # A 16-byte key is the SM4 key itself, which is what legacy gmssl data needs.
        if len(self.material) == 16:
            return self.material
        return _hkdf(self.material, 16, b"agentstore/secrets/sm4")


@dataclass(frozen=True)
class Keyring:
    keys: dict[str, SecretKey]
    current: SecretKey
    cipher: str

    def get(self, key_id: str) -> SecretKey:
        try:
            return self.keys[key_id]
        except KeyError:
            raise UnknownKeyError(key_id) from None


@dataclass(frozen=True)
class TokenInfo:
    cipher: str
    key_id: str
    payload: str = field(repr=False)


def _decode_b64(value: str) -> bytes:
    """Standard or URL-safe base64, padding optional. Raises ValueError."""
    normalized = value.strip().replace("-", "+").replace("_", "/")
    normalized += "=" * (-len(normalized) % 4)
    return base64.b64decode(normalized, validate=True)


def _parse_key_entry(index: int, entry: str) -> SecretKey:
    key_id, sep, encoded = str(entry).strip().partition(":")
    if not sep or not _KEY_ID.match(key_id):
        # Do not echo the entry: without a valid "id:" prefix it may be the key itself.
        raise ImproperlyConfigured(
            f"SECRET_KEYS entry #{index} is not of the form key_id:base64key (a key id is 1-32 "
            "letters, digits, '.', '_' or '-')."
        )
    if key_id == DERIVED_KEY_ID:
        raise ImproperlyConfigured(
            f"SECRET_KEYS entry #{index}: the key id {DERIVED_KEY_ID!r} is reserved."
        )
    try:
        material = _decode_b64(encoded)
    except (binascii.Error, ValueError):
        raise ImproperlyConfigured(f"SECRET_KEYS key {key_id!r} is not valid base64.") from None
    if len(material) not in (16, 32):
        raise ImproperlyConfigured(
            f"SECRET_KEYS key {key_id!r} must decode to 16 or 32 bytes, not {len(material)}."
        )
    return SecretKey(key_id=key_id, material=material)


def build_keyring() -> Keyring:
    """Parse and validate the settings; raises ImproperlyConfigured (without key material)."""
    cipher = str(getattr(settings, "SECRET_CIPHER", FERNET) or FERNET).strip().lower()
    if cipher not in ENCRYPTING_CIPHERS:
        raise ImproperlyConfigured(
            f"SECRET_CIPHER must be one of {', '.join(ENCRYPTING_CIPHERS)}, not {cipher!r}."
        )
    entries = getattr(settings, "SECRET_KEYS", None) or []
    if isinstance(entries, str):
        entries = [part for part in re.split(r"[,\s]+", entries) if part]
    configured = [_parse_key_entry(i, entry) for i, entry in enumerate(entries, start=1)]
    keys: dict[str, SecretKey] = {}
    for key in configured:
        if key.key_id in keys:
            raise ImproperlyConfigured(f"SECRET_KEYS lists the key id {key.key_id!r} twice.")
        keys[key.key_id] = key
    derived = SecretKey(
        key_id=DERIVED_KEY_ID,
        material=_hkdf(settings.SECRET_KEY.encode(), 32, b"agentstore/secrets/derived-key/v1"),
    )
    keys[DERIVED_KEY_ID] = derived
    current = configured[0] if configured else derived
    return Keyring(keys=keys, current=current, cipher=cipher)


_keyring: Keyring | None = None


def get_keyring() -> Keyring:
    global _keyring
    ring = _keyring
    if ring is None:
        ring = _keyring = build_keyring()
    return ring


@receiver(setting_changed)
def _reset_keyring(*, setting: str, **kwargs) -> None:
    global _keyring
    if setting in {"SECRET_KEYS", "SECRET_CIPHER", "SECRET_KEY"}:
        _keyring = None


# --- the public API ---------------------------------------------------------------------


def encrypt(plaintext: str) -> str:
    if not isinstance(plaintext, str):
        raise TypeError("encrypt() takes a str.")
    ring = get_keyring()
    key = ring.current
    data = plaintext.encode("utf-8")
    if ring.cipher == SM4:
        header = f"{PREFIX}{SM4}:{key.key_id}"
        nonce = os.urandom(_GCM_NONCE)
        encryptor = Cipher(algorithms.SM4(key.sm4), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(header.encode("ascii"))
        body = encryptor.update(data) + encryptor.finalize()
        payload = base64.urlsafe_b64encode(nonce + body + encryptor.tag).decode("ascii")
        return f"{header}:{payload}"
    token = key.fernet.encrypt(data).decode("ascii")
    return f"{PREFIX}{FERNET}:{key.key_id}:{token}"


def parse_token(token: str) -> TokenInfo:
    """Split a stored secret into cipher, key id and payload (nothing is decrypted)."""
    if not isinstance(token, str) or not token.startswith(PREFIX):
        raise SecretDecryptionError("The value is not an encrypted secret.")
    parts = token[len(PREFIX) :].split(":", 2)
    if len(parts) != 3 or not parts[2]:
        raise SecretDecryptionError("The encrypted secret is malformed.")
    cipher, key_id, payload = parts
    if cipher not in CIPHERS:
        raise SecretDecryptionError("The encrypted secret names an unknown cipher.")
    if not _KEY_ID.match(key_id):
        raise SecretDecryptionError("The encrypted secret has a malformed key id.")
    return TokenInfo(cipher=cipher, key_id=key_id, payload=payload)


def is_encrypted(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse_token(value)
    except SecretDecryptionError:
        return False
    return True


_INTEGRITY = "The encrypted secret failed its integrity check (tampered data or wrong key)."


def decrypt(token: str) -> str:
    info = parse_token(token)
    key = get_keyring().get(info.key_id)
    if info.cipher == FERNET:
        try:
            data = key.fernet.decrypt(info.payload.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise SecretDecryptionError(_INTEGRITY) from None
    else:
        try:
            raw = _decode_b64(info.payload)
        except (binascii.Error, ValueError):
            raise SecretDecryptionError("The encrypted secret is malformed.") from None
        if info.cipher == SM4:
            data = _sm4_gcm_decrypt(key, info, raw)
        else:
            data = _sm4_cbc_decrypt(key, raw)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretDecryptionError(_INTEGRITY) from None


def _sm4_gcm_decrypt(key: SecretKey, info: TokenInfo, raw: bytes) -> bytes:
    if len(raw) < _GCM_NONCE + _GCM_TAG:
        raise SecretDecryptionError("The encrypted secret is malformed.")
    nonce, body, tag = raw[:_GCM_NONCE], raw[_GCM_NONCE:-_GCM_TAG], raw[-_GCM_TAG:]
    decryptor = Cipher(algorithms.SM4(key.sm4), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(f"{PREFIX}{SM4}:{info.key_id}".encode("ascii"))
    try:
        return decryptor.update(body) + decryptor.finalize()
    except InvalidTag:
        raise SecretDecryptionError(_INTEGRITY) from None


def _sm4_cbc_decrypt(key: SecretKey, raw: bytes) -> bytes:
    # Legacy gmssl data has no MAC: padding and UTF-8 checks are all we can verify.
    body = raw[_SM4_BLOCK:]
    if not body or len(body) % _SM4_BLOCK:
        raise SecretDecryptionError("The encrypted secret is malformed.")
    decryptor = Cipher(algorithms.SM4(key.sm4), modes.CBC(raw[:_SM4_BLOCK])).decryptor()
    padded = decryptor.update(body) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise SecretDecryptionError(_INTEGRITY) from None


def legacy_sm4cbc_token(key_id: str, iv: bytes, ciphertext: bytes) -> str:
    """Wrap an SM4-CBC ciphertext made by gmssl (``CryptSM4.crypt_cbc``) for import.

    The 16-byte gmssl key must be in SECRET_KEYS under ``key_id``; run rotate_secrets after
    importing so the values are re-encrypted with an authenticated cipher.
    """
    if not _KEY_ID.match(key_id) or len(iv) != _SM4_BLOCK:
        raise ValueError("legacy_sm4cbc_token() needs a valid key id and a 16-byte IV.")
    payload = base64.urlsafe_b64encode(iv + ciphertext).decode("ascii")
    return f"{PREFIX}{SM4_CBC}:{key_id}:{payload}"


def needs_rotation(token: str) -> bool:
    """True when the token is not under the current cipher and current key."""
    info = parse_token(token)
    ring = get_keyring()
    return (info.cipher, info.key_id) != (ring.cipher, ring.current.key_id)


def rotate(token: str) -> str:
    """The same secret under the current cipher and key (the token itself if already so)."""
    if not needs_rotation(token):
        return token
    return encrypt(decrypt(token))
