"""Settings come from the environment once; a missing secret or a bad value
stops the process with a message, never a traceback."""

import os
import subprocess
import sys

import pytest

from newsletter.config import config_warnings, load_settings
from newsletter.config_parsers import DEFAULT_ARCHIVE_GROUPS, ConfigError


def test_defaults_need_nothing_in_dev_mode(tmp_path):
    config = load_settings({}, str(tmp_path), dev=True)
    assert config.DATABASE_URL == f"sqlite:///{tmp_path / 'newsletter.sqlite3'}"
    assert config.REDIS_URL is None and config.SMTP_HOST is None
    assert config.ARXIV_ARCHIVE_GROUPS == DEFAULT_ARCHIVE_GROUPS
    assert config.TRANSLATION_BACKEND == "none"


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_settings({}, str(tmp_path), dev=False)
    assert load_settings({"SECRET_KEY": "s"}, str(tmp_path), dev=False).SECRET_KEY == "s"


@pytest.mark.parametrize(
    "name, value",
    [
        ("SMTP_SECURITY", "tls1.0"),
        ("SMTP_PORT", "twenty-five"),
        ("TRANSLATION_BACKEND", "babelfish"),
        ("DIGEST_SEND_EMPTY", "perhaps"),
        ("ARXIV_MIN_INTERVAL", "fast"),
        ("DATABASE_URL", "notaurl"),
        ("DATABASE_URL", "postgresql+nodriver://db/newsletter"),
        ("REDIS_URL", "http://127.0.0.1:6379/0"),
    ],
)
def test_bad_values_are_named(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({"SECRET_KEY": "s", name: value}, str(tmp_path), dev=False)


def test_the_cli_reports_a_bad_setting_without_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    result = subprocess.run(
        [sys.executable, "-m", "newsletter.cli", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "base_url, dev, warned",
    [
        ("http://digest.example.org", False, True),
        ("http://127.0.0.1:5000", True, False),
        ("https://digest.example.org", False, False),
    ],
)
def test_an_http_base_url_outside_dev_mode_is_a_warning(tmp_path, base_url, dev, warned):
    config = load_settings({"SECRET_KEY": "s", "BASE_URL": base_url}, str(tmp_path), dev=dev)
    warnings = config_warnings(config)
    assert len(warnings) == (1 if warned else 0)
    if warned:
        assert "BASE_URL" in warnings[0] and "https" in warnings[0]
