"""`make run`: a development instance in the foreground, web app and worker together.

Creates var/ with development secrets on first run, applies migrations to the embedded
SQLite database, seeds the catalog, makes sure Redis answers, creates the first admin, then
runs the web app and one worker until Ctrl-C (or SIGTERM, or SIGHUP) stops both, and the
redis-server it started. PORT (5000) sets the web port; DEV_VAR_DIR (var/) where the
development secrets, var/dev.env and Redis's directory go."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("DEV_VAR_DIR") or ROOT / "var").resolve()
SECRETS_FILE = VAR / "dev-secrets.json"
PORT = int(os.environ.get("PORT", "5000"))


def dev_secrets() -> dict[str, str]:
    """Development secrets, made once and kept in var/ (never used in production)."""
    if SECRETS_FILE.exists():
        return json.loads(SECRETS_FILE.read_text())
    from cryptography.fernet import Fernet

    values = {
        "SECRET_KEY": secrets.token_urlsafe(48),
        "WEBHOOK_INGEST_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "WEBHOOK_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }
    SECRETS_FILE.write_text(json.dumps(values, indent=2))
    SECRETS_FILE.chmod(0o600)
    return values


def write_shell_env(values: dict[str, str]) -> Path:
    """var/dev.env: `. var/dev.env` gives another shell the same settings (for the CLI)."""
    path = VAR / "dev.env"
    lines = [f"export {name}='{value}'" for name, value in sorted(values.items())]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def redis_answers(url: str) -> bool:
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        return bool(Redis.from_url(url, socket_connect_timeout=1).ping())
    except RedisError:
        return False


def ensure_redis(url: str, children: list[subprocess.Popen]) -> None:
    """Use the Redis at `url`; start one under var/ if nothing answers and we can."""
    if redis_answers(url):
        return
    parsed = urlparse(url)
    binary = shutil.which("redis-server")
    if binary is None or parsed.hostname not in ("127.0.0.1", "localhost"):
        sys.exit(
            f"Redis does not answer at {url}.\n"
            "Install it (Debian/Ubuntu: sudo apt-get install -y redis-server; macOS: brew install "
            "redis) or set REDIS_URL to a running Redis."
        )
    port = str(parsed.port or 6379)
    spawn(
        children,
        [
            binary,
            "--port",
            port,
            "--bind",
            "127.0.0.1",
            "--dir",
            str(VAR),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(50):
        if redis_answers(url):
            print(f"Started redis-server on port {port} (data in var/, nothing kept on disk)")
            return
        time.sleep(0.1)
    sys.exit(f"redis-server did not start on port {port}")


def prepare_database() -> tuple[str, str | None]:
    """Migrate, seed the catalog, create the first admin. Returns (admin email, new password)."""
    from flask_migrate import upgrade
    from sqlalchemy import select

    from webhook_admin import create_app
    from webhook_admin.extensions import db
    from webhook_admin.models import User
    from webhook_admin.services.catalog import seed_catalog
    from webhook_admin.services.users import count_admins, create_user

    app = create_app()
    with app.app_context():
        upgrade()
        seed_catalog()
        password = None
        email = os.environ.get("ADMIN_EMAIL", "admin@example.com")
        if count_admins() == 0:
            _, password = create_user(email, "admin", os.environ.get("ADMIN_PASSWORD"), "make run")
        else:
            email = db.session.scalar(select(User.email).where(User.role == "admin"))
        db.session.commit()
    return email, password


class Stop(Exception):
    """Ctrl-C, SIGTERM or SIGHUP: stop everything we started."""


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_spawning = False  # a child is being started: a signal now waits until it is on the list
_signalled: int | None = None


def stop_on_signal(signum, frame) -> None:
    global _signalled
    _signalled = signum
    if not _spawning:
        raise Stop(signal.Signals(signum).name)


def spawn(children: list[subprocess.Popen], argv: list[str], **options) -> subprocess.Popen:
    """Start a child and put it on `children` before any stop signal is acted on."""
    global _spawning
    _spawning = True
    try:
        process = subprocess.Popen(argv, **options)
        children.append(process)
    finally:
        _spawning = False
    if _signalled is not None:
        raise Stop(signal.Signals(_signalled).name)
    return process


def stop_children(children: list[subprocess.Popen]) -> None:
    """SIGTERM each child (the worker finishes its attempts in flight), then wait; a child
    still there after 20 s is killed. Further signals cannot cut this short."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    for process in children:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in children:
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> int:
    # Without these a `kill <pid>` (the default SIGTERM) or a closed terminal (SIGHUP) ended
    # this process at once and left flask, worker.py and redis-server running.
    for signum in STOP_SIGNALS:
        signal.signal(signum, stop_on_signal)
    children: list[subprocess.Popen] = []
    try:
        run(children)
    except Stop:
        pass
    finally:
        stop_children(children)
    return 0


def run(children: list[subprocess.Popen]) -> None:
    """Start Redis if needed, the web app and the worker (each added to `children` as it
    starts), then wait until one of them exits or a signal arrives."""
    VAR.mkdir(exist_ok=True)
    os.environ.setdefault("APP_ENV", "development")
    for name, value in dev_secrets().items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    names = ("APP_ENV", "REDIS_URL", "DATABASE_URL", *dev_secrets())
    shell_env = {n: os.environ[n] for n in names if n in os.environ}
    # `events emit` posts to this app, whatever PORT it serves on.
    shell_env["WEBHOOK_APP_URL"] = f"http://127.0.0.1:{PORT}"
    env_file = write_shell_env(shell_env)
    # As a newcomer types it: relative to the checkout when it is in it.
    env_shown = env_file.relative_to(ROOT) if env_file.is_relative_to(ROOT) else env_file
    sys.path.insert(0, str(ROOT))
    ensure_redis(os.environ["REDIS_URL"], children)
    email, password = prepare_database()

    bin_dir = Path(sys.executable).parent
    web = spawn(
        children,
        [
            str(bin_dir / "flask"),
            "--app",
            "wsgi",
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(PORT),
        ],
        cwd=ROOT,
    )
    worker = spawn(children, [sys.executable, "worker.py"], cwd=ROOT)
    login = (
        f"{email} / {password}   (shown once; set ADMIN_EMAIL/ADMIN_PASSWORD to choose)"
        if password
        else f"{email} (password as printed on the first run)"
    )
    print(
        "\n"
        f"  webhook-admin is running: http://127.0.0.1:{PORT}/webhooks\n"
        f"  Log in:        {login}\n"
        f"  Ingest secret: {os.environ['WEBHOOK_INGEST_SECRET']}   (development only)\n"
        f"  CLI settings:  . {env_shown}   (then e.g.: .venv/bin/flask --app wsgi events emit "
        "transaction.approved --data '{\"amount\": 1200}')\n"
        "  Ctrl-C (or SIGTERM) stops the web app, the worker and a Redis started here.\n",
        flush=True,
    )
    while all(p.poll() is None for p in (web, worker)):
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
