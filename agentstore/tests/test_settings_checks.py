"""Settings as a deployment sees them: each test starts ``manage.py`` in a fresh process
with only the environment it names (SPEC §2.1, STYLE §4)."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
KEY_MATERIAL = base64.b64encode(bytes(range(7, 39))).decode()


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    return subprocess.run(  # noqa: S603 - fixed interpreter and arguments
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env={**base, "PYTHONDONTWRITEBYTECODE": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


PRODUCTION = {
    "SECRET_KEY": secrets.token_urlsafe(50)[:50],
    "DEBUG": "0",
    "DATABASE_URL": "postgres://agentstore:unused@127.0.0.1:5432/agentstore",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "SECRET_KEYS": f"k1:{KEY_MATERIAL}",
    "SECURE_SSL_REDIRECT": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_COOKIES": "1",
    "ALLOWED_HOSTS": "store.example.com",
}


def test_check_deploy_is_clean_with_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."


def test_start_up_fails_without_secret_key_when_debug_is_off():
    env = {key: value for key, value in PRODUCTION.items() if key != "SECRET_KEY"}

    result = _manage("check", env=env)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: SECRET_KEY must be set when DEBUG is off "
        "(set DEBUG=1 for development)."
    )


def test_embedded_defaults_with_debug_off_warn_about_embedded_pieces(tmp_path):
    env = {
        "SECRET_KEY": PRODUCTION["SECRET_KEY"],
        "DEBUG": "0",
        "AGENTSTORE_VAR_DIR": str(tmp_path),
    }

    result = _manage("check", "--deploy", "--fail-level", "ERROR", env=env)

    warnings = sorted(
        line.split(")")[0].split("(")[1]
        for line in result.stderr.splitlines()
        if line.startswith("?: (agentstore.")
    )
    assert result.returncode == 0, result.stderr
    assert warnings == [
        "agentstore.W001",
        "agentstore.W002",
        "agentstore.W003",
        "agentstore.W004",
    ]


@pytest.mark.parametrize(
    ("secret_keys", "message"),
    [
        (KEY_MATERIAL, "SECRET_KEYS entry #1 is not of the form key_id:base64key"),
        (f"k1:{KEY_MATERIAL[:-12]}", "SECRET_KEYS key 'k1' must decode to 16 or 32 bytes"),
    ],
)
def test_invalid_secret_keys_stop_start_up_without_showing_the_key(secret_keys, message):
    result = _manage("check", env={**PRODUCTION, "SECRET_KEYS": secret_keys})

    assert result.returncode == 1
    assert message in result.stderr.strip().splitlines()[-1]
    assert KEY_MATERIAL[:-12] not in result.stdout + result.stderr


def test_secret_keys_and_cipher_come_from_the_environment(tmp_path):
    keys_file = tmp_path / "secret_keys"
    other = base64.b64encode(bytes(16)).decode()
    keys_file.write_text(f"k7:{KEY_MATERIAL}\nk1:{other}\n", encoding="utf-8")
    env = {**PRODUCTION, "SECRET_CIPHER": "sm4", "SECRET_KEYS_FILE": str(keys_file)}
    code = (
        "from integrations import secrets; ring = secrets.get_keyring(); "
        "print(secrets.encrypt('x')[:14], list(ring.keys))"
    )

    result = _manage("shell", "--no-imports", "-c", code, env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "enc:v1:sm4:k7: ['k7', 'k1', 'derived']"
