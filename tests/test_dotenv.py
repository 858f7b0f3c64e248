"""A `.env` in the working directory: read by gunicorn's `create_app()` and by
the `newsletter` CLI, beneath the environment they are started with, and never
by the tests' apps. Real processes in a temporary directory."""

import json
import os
import subprocess
import sys
from pathlib import Path

from newsletter import create_app
from newsletter.config import read_environment, settings

# Settings a developer's shell may hold; the processes here get them from .env only.
FROM_FILE_ONLY = (
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "NEWSLETTER_DEV",
    "NEWSLETTER_INSTANCE_PATH",
    "MAIL_FROM",
    "BASE_URL",
)

# gunicorn's app string is `newsletter:create_app()`: this is that call.
PRINT_SETTINGS = """
import json
from newsletter import create_app
from newsletter.config import settings
app = create_app()
app.extensions["db_engine"].dispose()
print(json.dumps({
    "SECRET_KEY": app.config["SECRET_KEY"],
    "DATABASE_URL": settings(app).DATABASE_URL,
    "MAIL_FROM": settings(app).MAIL_FROM,
    "BASE_URL": settings(app).BASE_URL,
    "instance_path": app.instance_path,
}))
"""


def write_dotenv(directory: Path) -> None:
    (directory / ".env").write_text(
        "# copied from .env.example\n"
        "SECRET_KEY=from-the-file\n"
        f"DATABASE_URL=sqlite:///{directory / 'from-file.sqlite3'}\n"
        f"NEWSLETTER_INSTANCE_PATH={directory / 'instance'}\n"
        'MAIL_FROM="File <file@digest.test>"\n'
        "export BASE_URL=https://file.digest.test\n"
        "SMTP_PORT=2525\n",
        encoding="utf-8",
    )


def process_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in FROM_FILE_ONLY}
    return {**env, **settings}


def test_the_file_is_read_beneath_the_environment(tmp_path):
    write_dotenv(tmp_path)
    environ = read_environment({"MAIL_FROM": "Env <env@digest.test>", "PATH": "/bin"}, tmp_path)
    assert environ["SECRET_KEY"] == "from-the-file"
    assert environ["BASE_URL"] == "https://file.digest.test"
    assert environ["MAIL_FROM"] == "Env <env@digest.test>"
    assert environ["PATH"] == "/bin"
    assert read_environment({"PATH": "/bin"}, tmp_path / "elsewhere") == {"PATH": "/bin"}


def test_gunicorns_create_app_reads_the_file_in_its_working_directory(tmp_path):
    write_dotenv(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=tmp_path,
        env=process_env(BASE_URL="https://env.digest.test"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    settings = json.loads(result.stdout.splitlines()[-1])
    assert settings == {
        "SECRET_KEY": "from-the-file",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'from-file.sqlite3'}",
        "MAIL_FROM": "File <file@digest.test>",
        "BASE_URL": "https://env.digest.test",
        "instance_path": str(tmp_path / "instance"),
    }


def test_the_newsletter_command_reads_the_file_in_its_working_directory(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    write_dotenv(site)
    command = [sys.executable, "-m", "newsletter.cli", "db", "upgrade"]
    result = subprocess.run(
        command, cwd=site, env=process_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert (site / "from-file.sqlite3").stat().st_size > 0
    # Without the file the same command has no SECRET_KEY (and no dev instance there).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        command,
        cwd=elsewhere,
        env=process_env(NEWSLETTER_INSTANCE_PATH=str(elsewhere / "instance")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


def test_the_tests_apps_never_read_a_dotenv(config, database_url, tmp_path, monkeypatch):
    write_dotenv(tmp_path)
    monkeypatch.chdir(tmp_path)
    app = create_app(config)
    app.extensions["db_engine"].dispose()
    # Neither is in the tests' settings: both would come from the file.
    assert settings(app).SMTP_PORT == 587
    assert app.instance_path != str(tmp_path / "instance")
