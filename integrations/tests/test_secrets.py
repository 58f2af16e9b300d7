from __future__ import annotations

import base64

import pytest
from django.core.exceptions import ImproperlyConfigured
from gmssl.sm4 import SM4_ENCRYPT, CryptSM4

from integrations import secrets

KEY1 = bytes(range(32))
KEY2 = bytes(range(100, 132))
KEY16 = bytes(range(200, 216))
K1 = "k1:" + base64.b64encode(KEY1).decode()
K2 = "k2:" + base64.urlsafe_b64encode(KEY2).decode().rstrip("=")
LEGACY = "legacy:" + base64.b64encode(KEY16).decode()
PLAINTEXT = "sk-live-Zq9 密钥 ✓"


@pytest.fixture
def keys(settings):
    settings.SECRET_KEYS = [K1]
    settings.SECRET_CIPHER = "fernet"
    return settings


@pytest.mark.parametrize("cipher", ["fernet", "sm4"])
def test_encrypt_then_decrypt_returns_the_plaintext(keys, cipher):
    keys.SECRET_CIPHER = cipher

    token = secrets.encrypt(PLAINTEXT)

    assert token.startswith(f"enc:v1:{cipher}:k1:")
    assert PLAINTEXT not in token
    assert secrets.decrypt(token) == PLAINTEXT


@pytest.mark.parametrize("cipher", ["fernet", "sm4"])
def test_encrypting_twice_gives_different_tokens(keys, cipher):
    keys.SECRET_CIPHER = cipher

    assert secrets.encrypt("same") != secrets.encrypt("same")


@pytest.mark.parametrize(("written_with", "read_with"), [("fernet", "sm4"), ("sm4", "fernet")])
def test_every_cipher_decrypts_whatever_the_current_setting(keys, written_with, read_with):
    keys.SECRET_CIPHER = written_with
    token = secrets.encrypt(PLAINTEXT)

    keys.SECRET_CIPHER = read_with

    assert secrets.decrypt(token) == PLAINTEXT


def test_sm4_payload_is_nonce_ciphertext_and_tag(keys):
    keys.SECRET_CIPHER = "sm4"

    token = secrets.encrypt("abcd")

    payload = base64.urlsafe_b64decode(token.rsplit(":", 1)[1])
    assert len(payload) == 12 + 4 + 16


@pytest.mark.parametrize("cipher", ["fernet", "sm4"])
def test_tampered_ciphertext_raises_a_clear_error(keys, cipher):
    keys.SECRET_CIPHER = cipher
    token = secrets.encrypt(PLAINTEXT)
    head, payload = token.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(payload))
    raw[len(raw) // 2] ^= 0x01
    tampered = f"{head}:{base64.urlsafe_b64encode(bytes(raw)).decode()}"

    with pytest.raises(secrets.SecretDecryptionError, match="integrity check"):
        secrets.decrypt(tampered)


def test_sm4_token_moved_to_another_key_id_fails_the_integrity_check(keys):
    keys.SECRET_KEYS = [K1, K2]
    keys.SECRET_CIPHER = "sm4"
    token = secrets.encrypt(PLAINTEXT)

    relabelled = token.replace(":k1:", ":k2:")

    with pytest.raises(secrets.SecretDecryptionError, match="integrity check"):
        secrets.decrypt(relabelled)


@pytest.mark.parametrize(
    "token",
    [
        "enc:v1:fernet:k1:",
        "enc:v1:fernet:k1",
        "enc:v1:rot13:k1:abcd",
        "enc:v1:sm4:k1:!!!!",
        "enc:v1:sm4:k1:AAAA",
        "enc:v1:sm4cbc:k1:AAAA",
        "enc:v1:fernet:bad key:abcd",
        "sk-plain-value",
    ],
)
def test_malformed_tokens_raise_decryption_error(keys, token):
    with pytest.raises(secrets.SecretDecryptionError):
        secrets.decrypt(token)


def test_unknown_key_id_names_the_key_id_but_not_any_key(keys):
    keys.SECRET_KEYS = [K2]
    keys.SECRET_CIPHER = "fernet"
    token = secrets.encrypt(PLAINTEXT)
    keys.SECRET_KEYS = [K1]

    with pytest.raises(secrets.UnknownKeyError) as excinfo:
        secrets.decrypt(token)

    message = str(excinfo.value)
    assert message == (
        "The secret was encrypted with key id 'k2', which is not configured in SECRET_KEYS."
    )
    assert excinfo.value.key_id == "k2"


def test_without_secret_keys_a_key_is_derived_from_secret_key(settings):
    settings.SECRET_KEYS = []
    settings.SECRET_CIPHER = "fernet"

    token = secrets.encrypt(PLAINTEXT)

    assert token.startswith("enc:v1:fernet:derived:")
    assert secrets.decrypt(token) == PLAINTEXT


def test_derived_key_stays_readable_after_secret_keys_are_configured(settings):
    settings.SECRET_KEYS = []
    token = secrets.encrypt(PLAINTEXT)

    settings.SECRET_KEYS = [K1]

    assert secrets.decrypt(token) == PLAINTEXT
    assert secrets.needs_rotation(token) is True


def test_derived_key_changes_with_secret_key(settings):
    settings.SECRET_KEYS = []
    token = secrets.encrypt(PLAINTEXT)

    settings.SECRET_KEY = "another-secret-key-" + "x" * 40

    with pytest.raises(secrets.SecretDecryptionError, match="integrity check"):
        secrets.decrypt(token)


@pytest.mark.parametrize("cipher", ["fernet", "sm4"])
def test_a_16_byte_key_works_for_both_ciphers(keys, cipher):
    keys.SECRET_KEYS = [LEGACY]
    keys.SECRET_CIPHER = cipher

    assert secrets.decrypt(secrets.encrypt(PLAINTEXT)) == PLAINTEXT


def test_secret_keys_may_be_given_as_one_string(keys):
    keys.SECRET_KEYS = f"{K2}, {K1}"

    token = secrets.encrypt(PLAINTEXT)

    assert token.startswith("enc:v1:fernet:k2:")
    assert list(secrets.get_keyring().keys) == ["k2", "k1", "derived"]


BAD_MATERIAL = base64.b64encode(b"\xaa" * 24).decode()


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([BAD_MATERIAL], "SECRET_KEYS entry #1 is not of the form key_id:base64key"),
        ([K1, f"{BAD_MATERIAL}"], "SECRET_KEYS entry #2 is not of the form key_id:base64key"),
        ([f"bad id:{BAD_MATERIAL}"], "SECRET_KEYS entry #1 is not of the form key_id:base64key"),
        ([f"k3:{BAD_MATERIAL}"], "SECRET_KEYS key 'k3' must decode to 16 or 32 bytes, not 24."),
        (["k3:not*base64*at*all"], "SECRET_KEYS key 'k3' is not valid base64."),
        ([K1, K1], "SECRET_KEYS lists the key id 'k1' twice."),
        ([f"derived:{BAD_MATERIAL}"], "the key id 'derived' is reserved"),
    ],
)
def test_invalid_secret_keys_are_improperly_configured_without_key_material(
    settings, entries, message
):
    settings.SECRET_KEYS = entries

    with pytest.raises(ImproperlyConfigured) as excinfo:
        secrets.get_keyring()

    assert message in str(excinfo.value)
    assert BAD_MATERIAL not in str(excinfo.value)
    assert K1.split(":", 1)[1] not in str(excinfo.value)


def test_unknown_cipher_setting_is_improperly_configured(keys):
    keys.SECRET_CIPHER = "des"

    with pytest.raises(ImproperlyConfigured, match="SECRET_CIPHER must be one of fernet, sm4"):
        secrets.encrypt(PLAINTEXT)


def test_key_material_is_not_in_reprs(keys):
    keys.SECRET_KEYS = [K1, LEGACY]
    ring = secrets.get_keyring()

    text = repr(ring) + repr(ring.current) + str(ring.keys)

    assert "k1" in text
    for material in (KEY1, KEY16):
        assert repr(material) not in text
        assert base64.b64encode(material).decode() not in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("enc:v1:fernet:k1:gAAAAA", True),
        ("enc:v1:sm4:derived:AAAA", True),
        ("enc:v1:aes:k1:AAAA", False),
        ("sk-123", False),
        ("", False),
        (None, False),
        (b"enc:v1:fernet:k1:gAAAAA", False),
    ],
)
def test_is_encrypted_recognises_tokens(value, expected):
    assert secrets.is_encrypted(value) is expected


def test_rotation_moves_a_token_to_the_first_key(keys):
    old = secrets.encrypt(PLAINTEXT)
    keys.SECRET_KEYS = [K2, K1]

    rotated = secrets.rotate(old)

    assert secrets.needs_rotation(old) is True
    assert rotated.startswith("enc:v1:fernet:k2:")
    assert secrets.decrypt(rotated) == PLAINTEXT
    assert secrets.needs_rotation(rotated) is False


def test_rotation_moves_a_token_to_the_current_cipher(keys):
    old = secrets.encrypt(PLAINTEXT)
    keys.SECRET_CIPHER = "sm4"

    rotated = secrets.rotate(old)

    assert rotated.startswith("enc:v1:sm4:k1:")
    assert secrets.decrypt(rotated) == PLAINTEXT


def test_rotating_a_current_token_returns_it_unchanged(keys):
    token = secrets.encrypt(PLAINTEXT)

    assert secrets.needs_rotation(token) is False
    assert secrets.rotate(token) == token


def _gmssl_encrypt(key: bytes, iv: bytes, plaintext: str) -> bytes:
    crypt = CryptSM4()
    crypt.set_key(key, SM4_ENCRYPT)
    return crypt.crypt_cbc(iv, plaintext.encode())


def test_legacy_gmssl_sm4_cbc_ciphertext_decrypts(keys):
    keys.SECRET_KEYS = [K1, LEGACY]
    iv = bytes(range(16))
    token = secrets.legacy_sm4cbc_token("legacy", iv, _gmssl_encrypt(KEY16, iv, PLAINTEXT))

    assert token.startswith("enc:v1:sm4cbc:legacy:")
    assert secrets.decrypt(token) == PLAINTEXT


def test_legacy_sm4_cbc_is_read_only_and_rotates_to_the_current_cipher(keys):
    keys.SECRET_KEYS = [K1, LEGACY]
    keys.SECRET_CIPHER = "sm4"
    iv = bytes(16)
    token = secrets.legacy_sm4cbc_token("legacy", iv, _gmssl_encrypt(KEY16, iv, PLAINTEXT))

    rotated = secrets.rotate(token)

    assert secrets.needs_rotation(token) is True
    assert rotated.startswith("enc:v1:sm4:k1:")
    assert secrets.decrypt(rotated) == PLAINTEXT


def test_legacy_sm4_cbc_with_wrong_key_raises_instead_of_returning_garbage(keys):
    keys.SECRET_KEYS = [K1, LEGACY]
    iv = bytes(16)
    wrong_key = bytes(16)
    token = secrets.legacy_sm4cbc_token("legacy", iv, _gmssl_encrypt(wrong_key, iv, "x" * 40))

    with pytest.raises(secrets.SecretDecryptionError):
        secrets.decrypt(token)


def test_encrypt_rejects_non_text_without_echoing_it(keys):
    with pytest.raises(TypeError) as excinfo:
        secrets.encrypt(b"raw-bytes-secret")

    assert "raw-bytes-secret" not in str(excinfo.value)
