"""Configuration: environment and .env, generated secrets, one-line errors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tracker import create_app

ROOT = Path(__file__).resolve().parent.parent
ENV_NAMES = ["DATABASE_URL", "REDIS_URL", "SECRET_KEY", "FERNET_KEYS", "BASE_URL", "INSTANCE_PATH",
             "ALLOW_PRIVATE_IMAP_HOSTS", "IMAP_ALLOWED_PORTS", "IMAP_CA_FILE",
             "IMAP_TIMEOUT_SECONDS", "SYNC_INTERVAL_SECONDS", "FIRST_SYNC_HOURS", "SYNC_BATCH_SIZE",
             "SYNC_JOB_TIMEOUT", "SYNC_RETRY_INTERVALS"]


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    return tmp_path


def test_defaults_generate_secrets_once(clean_env):
    first = create_app()
    instance = clean_env / "instance"
    assert first.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance / 'tracker.sqlite3'}"
    assert first.config["REDIS_URL"] == "redis://127.0.0.1:6379/0"
    secret = (instance / "secret_key").read_text().strip()
    assert first.config["SECRET_KEY"] == secret and len(secret) >= 32
    assert oct((instance / "secret_key").stat().st_mode & 0o777) == "0o600"
    second = create_app()
    assert second.config["SECRET_KEY"] == secret
    assert second.config["FERNET_KEYS"] == first.config["FERNET_KEYS"]
    Fernet(first.config["FERNET_KEYS"][0])


def test_environment_and_dotenv(clean_env, monkeypatch):
    key1, key2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    (clean_env / ".env").write_text(
        f"SECRET_KEY=from-dotenv-but-long-enough\nFERNET_KEYS={key1}, {key2}\n"
        "REDIS_URL=redis://dotenv.invalid:1/0\n"
    )
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6390/2")
    app = create_app()
    assert app.config["SECRET_KEY"] == "from-dotenv-but-long-enough"
    assert app.config["FERNET_KEYS"] == [key1, key2]
    # The real environment wins over .env.
    assert app.config["REDIS_URL"] == "redis://127.0.0.1:6390/2"
    assert not (clean_env / "instance" / "secret_key").exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "not a url"),
        ("DATABASE_URL", "mysql://localhost/db"),
        ("REDIS_URL", "http://localhost:6379"),
        ("REDIS_URL", "redis://localhost:notaport/0"),
        ("FERNET_KEYS", "tooshort"),
        ("FERNET_KEYS", " , "),
        ("SECRET_KEY", "short"),
        ("BASE_URL", "ftp://example.com"),
        ("IMAP_ALLOWED_PORTS", "993,imap"),
        ("IMAP_ALLOWED_PORTS", "993,70000"),
        ("IMAP_ALLOWED_PORTS", " , "),
        ("IMAP_CA_FILE", "/nonexistent/ca.pem"),
        ("IMAP_TIMEOUT_SECONDS", "ten"),
        ("IMAP_TIMEOUT_SECONDS", "0"),
        ("IMAP_TIMEOUT_SECONDS", "15"),
        ("SYNC_INTERVAL_SECONDS", "10"),
        ("SYNC_INTERVAL_SECONDS", "often"),
        ("FIRST_SYNC_HOURS", "0"),
        ("SYNC_BATCH_SIZE", "-5"),
        ("SYNC_JOB_TIMEOUT", "1.5"),
        ("SYNC_RETRY_INTERVALS", "60,soon"),
        ("SYNC_RETRY_INTERVALS", " , "),
        ("SITE_SETUP_CACHE_SECONDS", "soon"),
        ("SITE_SETUP_CACHE_SECONDS", "-1"),
        ("PASSWORD_HASH_METHOD", "md5"),
        ("PASSWORD_HASH_METHOD", "scrypt:lots"),
    ],
)
def test_unusable_value_stops_startup_naming_the_variable(clean_env, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        create_app()
    message = str(stopped.value.code)
    assert message.startswith("Configuration error: ") and name in message
    assert "\n" not in message


def test_startup_error_is_one_line_on_the_command_line(clean_env):
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env.update(DATABASE_URL="nonsense://", INSTANCE_PATH=str(clean_env / "instance"))
    done = subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Configuration error: DATABASE_URL must be a sqlite:// or postgresql:// URL."
    ]


def test_imap_defaults_are_safe(clean_env):
    app = create_app()
    assert app.config["ALLOW_PRIVATE_IMAP_HOSTS"] is False
    assert app.config["IMAP_ALLOWED_PORTS"] == [143, 993]
    assert app.config["IMAP_CA_FILE"] is None
    # A web request waits on IMAP well under 15 seconds.
    assert app.config["IMAP_TIMEOUT_SECONDS"] == 10


def test_imap_settings_from_the_environment(clean_env, monkeypatch):
    ca = clean_env / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("ALLOW_PRIVATE_IMAP_HOSTS", "yes")
    monkeypatch.setenv("IMAP_ALLOWED_PORTS", "993, 1993")
    monkeypatch.setenv("IMAP_CA_FILE", str(ca))
    monkeypatch.setenv("IMAP_TIMEOUT_SECONDS", "4.5")
    app = create_app()
    assert app.config["ALLOW_PRIVATE_IMAP_HOSTS"] is True
    assert app.config["IMAP_ALLOWED_PORTS"] == [993, 1993]
    assert app.config["IMAP_CA_FILE"] == str(ca)
    assert app.config["IMAP_TIMEOUT_SECONDS"] == 4.5


def test_sync_settings(clean_env, monkeypatch):
    app = create_app()
    assert app.config["SYNC_INTERVAL_SECONDS"] == 600
    assert app.config["FIRST_SYNC_HOURS"] == 24
    assert app.config["SYNC_BATCH_SIZE"] == 500
    assert app.config["SYNC_RETRY_INTERVALS"] == [60, 300, 900]
    monkeypatch.setenv("SYNC_INTERVAL_SECONDS", "300")
    monkeypatch.setenv("FIRST_SYNC_HOURS", "48")
    monkeypatch.setenv("SYNC_BATCH_SIZE", "200")
    monkeypatch.setenv("SYNC_RETRY_INTERVALS", "10, 20")
    app = create_app()
    assert (app.config["SYNC_INTERVAL_SECONDS"], app.config["FIRST_SYNC_HOURS"],
            app.config["SYNC_BATCH_SIZE"]) == (300, 48, 200)
    assert app.config["SYNC_RETRY_INTERVALS"] == [10, 20]
