from __future__ import annotations

import base64
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from gmssl.sm4 import SM4_ENCRYPT, CryptSM4

from integrations import secrets
from integrations.models import SystemSetting

K1 = "k1:" + base64.b64encode(bytes(range(32))).decode()
K2 = "k2:" + base64.b64encode(bytes(range(50, 82))).decode()
K3 = "k3:" + base64.b64encode(bytes(range(90, 122))).decode()
LEGACY_KEY = bytes(range(16))
LEGACY = "legacy:" + base64.b64encode(LEGACY_KEY).decode()
SECRETS = {"alpha": "sk-alpha-111", "beta": "sk-beta-222 密钥", "gamma": "sk-gamma-333"}
LINE = "integrations.SystemSetting.secret_value: {} re-encrypted, {} already current, {} unreadable"


def _stored(key: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_value FROM integrations_systemsetting WHERE key = %s", [key])
        return cursor.fetchone()[0]


def _store_raw(key: str, raw: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE integrations_systemsetting SET secret_value = %s WHERE key = %s", [raw, key]
        )


def _rotate(*args: str) -> str:
    out = StringIO()
    call_command("rotate_secrets", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def stored_under_k1(db, settings):
    settings.SECRET_KEYS = [K1]
    settings.SECRET_CIPHER = "fernet"
    for key, value in SECRETS.items():
        SystemSetting.objects.create(key=key, is_secret=True, secret_value=value)
    SystemSetting.objects.create(key="empty", is_secret=True, secret_value="")
    return settings


def test_new_first_key_re_encrypts_every_value(stored_under_k1):
    stored_under_k1.SECRET_KEYS = [K2, K1]

    output = _rotate()

    assert LINE.format(3, 0, 0) in output
    assert [_stored(key).split(":")[2:4] for key in SECRETS] == [["fernet", "k2"]] * 3
    assert {s.key: s.secret_value for s in SystemSetting.objects.exclude(key="empty")} == SECRETS
    assert _stored("empty") == ""


def test_values_still_decrypt_after_the_old_key_is_removed(stored_under_k1):
    stored_under_k1.SECRET_KEYS = [K2, K1]
    _rotate()

    stored_under_k1.SECRET_KEYS = [K2]

    assert {s.key: s.secret_value for s in SystemSetting.objects.exclude(key="empty")} == SECRETS


def test_cipher_switch_from_fernet_to_sm4(stored_under_k1):
    stored_under_k1.SECRET_CIPHER = "sm4"

    output = _rotate()

    assert LINE.format(3, 0, 0) in output
    assert [_stored(key).split(":")[2:4] for key in SECRETS] == [["sm4", "k1"]] * 3
    assert {s.key: s.secret_value for s in SystemSetting.objects.exclude(key="empty")} == SECRETS


def test_rotation_is_idempotent(stored_under_k1):
    stored_under_k1.SECRET_KEYS = [K2, K1]
    _rotate()
    after_first = [_stored(key) for key in SECRETS]

    output = _rotate()

    assert LINE.format(0, 3, 0) in output
    assert [_stored(key) for key in SECRETS] == after_first


def test_dry_run_counts_but_writes_nothing(stored_under_k1):
    before = [_stored(key) for key in SECRETS]
    stored_under_k1.SECRET_KEYS = [K2, K1]

    output = _rotate("--dry-run")

    assert "dry run" in output
    assert "integrations.SystemSetting.secret_value: 3 to re-encrypt, 0 already current" in output
    assert [_stored(key) for key in SECRETS] == before


def test_small_batches_cover_every_row(stored_under_k1):
    stored_under_k1.SECRET_KEYS = [K2, K1]

    output = _rotate("--batch-size", "1")

    assert LINE.format(3, 0, 0) in output


def test_output_never_contains_secrets_or_keys(stored_under_k1):
    stored_under_k1.SECRET_KEYS = [K2, K1]

    output = _rotate()

    assert "Target: cipher fernet, key id k2" in output
    for text in [*SECRETS.values(), K1.split(":")[1], K2.split(":")[1]]:
        assert text not in output


def test_plaintext_left_in_the_column_gets_encrypted(stored_under_k1):
    _store_raw("alpha", "sk-was-never-encrypted")

    output = _rotate()

    assert LINE.format(1, 2, 0) in output
    assert _stored("alpha").startswith("enc:v1:fernet:k1:")
    assert SystemSetting.objects.get(key="alpha").secret_value == "sk-was-never-encrypted"


def test_legacy_gmssl_values_are_moved_to_the_current_cipher(stored_under_k1):
    stored_under_k1.SECRET_KEYS = [K1, LEGACY]
    crypt = CryptSM4()
    crypt.set_key(LEGACY_KEY, SM4_ENCRYPT)
    iv = bytes(range(16, 32))
    _store_raw(
        "alpha", secrets.legacy_sm4cbc_token("legacy", iv, crypt.crypt_cbc(iv, b"sk-from-gmssl"))
    )

    output = _rotate()

    assert LINE.format(1, 2, 0) in output
    assert _stored("alpha").startswith("enc:v1:fernet:k1:")
    assert SystemSetting.objects.get(key="alpha").secret_value == "sk-from-gmssl"


def test_unreadable_values_fail_the_command_after_rotating_the_rest(stored_under_k1):
    stored_under_k1.SECRET_KEYS = [K3]
    SystemSetting.objects.create(key="delta", is_secret=True, secret_value="sk-delta")
    stored_under_k1.SECRET_KEYS = [K2, K1]
    out = StringIO()

    with pytest.raises(CommandError, match="1 value\\(s\\) could not be decrypted"):
        call_command("rotate_secrets", stdout=out)

    assert LINE.format(3, 0, 1) in out.getvalue()
    assert _stored("delta").startswith("enc:v1:fernet:k3:")
    assert _stored("alpha").startswith("enc:v1:fernet:k2:")


def test_rows_changed_since_they_were_read_are_not_overwritten(stored_under_k1, monkeypatch):
    stored_under_k1.SECRET_KEYS = [K2, K1]
    original_rotate = secrets.rotate

    def rotate_while_someone_edits(token: str) -> str:
        SystemSetting.objects.filter(key="alpha").update(secret_value="edited meanwhile")
        return original_rotate(token)

    monkeypatch.setattr(secrets, "rotate", rotate_while_someone_edits)

    output = _rotate("--batch-size", "1")

    assert LINE.format(2, 0, 0) + ", 1 changed meanwhile (run again)" in output
    assert SystemSetting.objects.get(key="alpha").secret_value == "edited meanwhile"
