"""Settings read from the environment once at start, validated, and refused when unsafe."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)
# The longest timeout an endpoint may set for itself (services/endpoints.py checks it).
ENDPOINT_TIMEOUT_MAX = 60.0
ENVIRONMENTS = ("production", "development", "testing")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable and what was wrong."""


def parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def parse_positive_float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be greater than 0, got {raw!r}")
    return value


# Shorter than this is a typo, not a retention policy: ~1.4 minutes, room for a soak.
RETENTION_DAYS_MIN = 0.001


def parse_retention_days(name: str, raw: str) -> float:
    """Days, fractions allowed (0.5 = 12 hours; 0.002 = 2.9 minutes, for a soak)."""
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(
            f"{name} must be a number of days (fractions allowed, e.g. 30 or 0.5), got {raw!r}"
        ) from None
    if not math.isfinite(value) or value < RETENTION_DAYS_MIN:
        raise ConfigError(
            f"{name} must be at least {RETENTION_DAYS_MIN:g} days (~1.4 minutes), got {raw!r}"
        )
    return value


RATE_LIMIT = re.compile(
    r"^\s*\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day)s?\s*$", re.IGNORECASE
)


def parse_rate_limit(name: str, raw: str) -> str:
    """A limit such as `600/minute` or `10 per second` (one limit, Flask-Limiter's notation)."""
    if not RATE_LIMIT.match(raw):
        raise ConfigError(f"{name} must be a limit like 600/minute, got {raw!r}")
    return raw.strip()


class SmtpUrlError(ConfigError):
    """SMTP_URL is malformed (the message never echoes its password)."""


def smtp_parts(raw: str) -> dict:
    """SMTP_URL's parts; SmtpUrlError naming what is wrong (never echoing a password)."""
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("smtp", "smtps"):
        raise SmtpUrlError("SMTP_URL must start with smtp:// or smtps://")
    if not parts.hostname:
        raise SmtpUrlError("SMTP_URL needs a host: smtp://host:port")
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 587)
    except ValueError:
        raise SmtpUrlError("SMTP_URL has a port that is not a number") from None
    query = parse_qs(parts.query)
    starttls = query.get("starttls", ["1" if port == 587 else "0"])[0].lower() in ("1", "true")
    return {
        "tls": parts.scheme == "smtps",
        "starttls": starttls,
        "host": parts.hostname,
        "port": port,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
    }


def parse_smtp_url(name: str, raw: str) -> str:
    smtp_parts(raw)  # refused at start, not at the first alert
    return raw.strip()


def parse_positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be greater than 0, got {raw!r}")
    return value


def parse_retry_schedule(name: str, raw: str) -> tuple[int, ...]:
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not parts:
        raise ConfigError(f"{name} must list seconds between tries, e.g. 5,300,1800; got {raw!r}")
    try:
        delays = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated whole seconds, got {raw!r}") from None
    if any(d < 0 for d in delays):
        raise ConfigError(f"{name} must not contain negative delays, got {raw!r}")
    return delays


def parse_whsec(name: str, raw: str) -> bytes:
    """Decode one Standard Webhooks secret (`whsec_` + base64) into its key bytes."""
    if not raw.startswith("whsec_"):
        raise ConfigError(f"{name} must start with 'whsec_' (Standard Webhooks format)")
    try:
        key = base64.b64decode(raw[len("whsec_") :], validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{name} must be 'whsec_' followed by base64") from None
    if len(key) < 24:
        raise ConfigError(f"{name} must decode to at least 24 bytes, got {len(key)}")
    return key


TrustedProxies = int | tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def parse_trusted_proxies(name: str, raw: str) -> TrustedProxies:
    """A hop count (`1`: one proxy in front of us) or proxy networks (`10.0.0.0/8, ::1`)."""
    value = raw.strip()
    if value.isdigit():
        hops = int(value)
        if hops > 10:
            raise ConfigError(f"{name} must count at most 10 proxies, got {raw!r}")
        return hops
    networks = []
    for part in value.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(
                f"{name} must be a number of proxy hops (e.g. 1) or the proxies' addresses "
                f"or CIDRs (e.g. 10.0.0.0/8,127.0.0.1), got {part!r}"
            ) from None
    return tuple(networks)


@dataclass(frozen=True)
class Settings:
    env: str
    database_url: str
    redis_url: str  # "" when Redis is found through Sentinel (redis_sentinels)
    secret_key: str
    ingest_keys: tuple[bytes, ...]
    encryption_keys: tuple[str, ...]
    retry_schedule: tuple[int, ...] = DEFAULT_RETRY_SCHEDULE
    delivery_timeout: float = 15.0
    connect_timeout: float = 5.0
    sweep_interval: float = 30.0
    allow_private_networks: bool = False
    lease_seconds: float = 0.0  # 0 means: twice the longest attempt (lease_duration)
    worker_threads: int = 256
    worker_processes: int = 0  # 0: one per CPU core
    per_endpoint_concurrency: int = 8
    endpoint_burst: int = 4  # times the cap, on idle threads (endpoint_gate.py)
    retention_days: float = 30.0  # fractions allowed (services/retention.py)
    disable_after_hours: float = 120.0
    # endpoint.failing (an operational event) once this many tries in a row failed.
    failing_threshold: int = 5
    # Alert email to admins (services/alerts_mail.py); none without SMTP_URL.
    smtp_url: str | None = field(default=None, repr=False)  # may hold a password
    alert_email_from: str | None = None
    ca_bundle: str | None = None
    egress_proxy: str | None = None
    # /metrics: a bearer token; when unset, loopback only in production (docs/operations.md).
    metrics_token: str | None = None
    # X-Forwarded-For/-Proto are believed only from these (proxies.py): a hop count or CIDRs.
    trusted_proxies: TrustedProxies = 0
    heartbeat_interval: float = 5.0  # seconds between worker heartbeats (TTL is 3x)
    # Per API token (views/management): Flask-Limiter's notation, e.g. "600/minute".
    api_rate_limit: str = "600/minute"
    # Names every Redis queue and key of ours (queues.py): two databases never share work.
    queue_prefix: str = "wa-default"
    # Redis Sentinel, the alternative to redis_url (queues.make_redis): the sentinels'
    # (host, port) and the name they monitor the master under; passwords kept out of repr.
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str | None = None
    redis_sentinel_password: str | None = field(default=None, repr=False)
    redis_password: str | None = field(default=None, repr=False)
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def lease_duration(self) -> float:
        """How long a claim holds a delivery: twice the longest attempt, so a lease never
        expires under an attempt that is still running (the second half covers waiting to
        be recorded). A lease that expired under a live attempt had the sweeper send the
        delivery again beside it, and threw the first answer away."""
        return self.lease_seconds or 2 * max(self.delivery_timeout, ENDPOINT_TIMEOUT_MAX)

    @property
    def longest_attempt(self) -> float:
        """The ceiling on any attempt's timeout: half the lease. Only an explicitly short
        WEBHOOK_LEASE_SECONDS makes it cut an endpoint's own longer timeout."""
        return self.lease_duration / 2


def _read_database_url(environ: Mapping[str, str], env: str, instance_path: str) -> str:
    url = environ.get("DATABASE_URL", "").strip()
    if not url:
        return "sqlite:///" + os.path.join(instance_path, "webhook_admin.db")
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if not url.startswith(("sqlite:", "postgresql+psycopg:")):
        raise ConfigError(f"DATABASE_URL must be a sqlite:// or postgresql:// URL, got {url!r}")
    return url


QUEUE_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,40}")


def default_queue_prefix(database_url: str) -> str:
    """`wa-` + 10 hex chars of sha256 of the database's identity: the URL without its
    password, query or default port, a SQLite path made absolute. Web and worker processes
    given the same database get the same name; two databases never share queues."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        path = url.database
        identity = "sqlite:" + (os.path.abspath(path) if path and path != ":memory:" else "")
    else:
        host = (url.host or "").lower()
        identity = f"postgresql://{url.username or ''}@{host}:{url.port or 5432}/{url.database}"
    return "wa-" + hashlib.sha256(identity.encode()).hexdigest()[:10]


def _read_queue_prefix(environ: Mapping[str, str], database_url: str) -> str:
    raw = environ.get("WEBHOOK_QUEUE_PREFIX", "").strip()
    if not raw:
        return default_queue_prefix(database_url)
    if not QUEUE_PREFIX_PATTERN.fullmatch(raw):
        raise ConfigError(
            "WEBHOOK_QUEUE_PREFIX must be 1-40 letters, digits, '-' or '_' (it names the "
            f"Redis queues and keys of this deployment), got {raw!r}"
        )
    return raw


def parse_sentinels(name: str, raw: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port,...` (an IPv6 host in brackets: `[::1]:26379`)."""
    sentinels = []
    for part in (p.strip() for p in raw.split(",")):
        host, colon, port = part.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not part or not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f"{name} must be comma-separated host:port pairs (e.g. "
                f"10.0.0.5:26379,10.0.0.6:26379,10.0.0.7:26379), got {raw!r}"
            )
        if (host, int(port)) in sentinels:
            raise ConfigError(f"{name} names {part} twice, got {raw!r}")
        sentinels.append((host, int(port)))
    return tuple(sentinels)


def _read_redis(environ: Mapping[str, str]) -> dict:
    """REDIS_URL (one server), or REDIS_SENTINELS + REDIS_SENTINEL_MASTER (Sentinel finds the
    master and every client follows a failover); never both, so no one wonders which wins."""
    url = environ.get("REDIS_URL", "").strip()
    sentinels_raw = environ.get("REDIS_SENTINELS", "").strip()
    master = environ.get("REDIS_SENTINEL_MASTER", "").strip()
    sentinel_password = environ.get("REDIS_SENTINEL_PASSWORD") or None
    password = environ.get("REDIS_PASSWORD") or None
    if not sentinels_raw:
        for name, value in (
            ("REDIS_SENTINEL_MASTER", master),
            ("REDIS_SENTINEL_PASSWORD", sentinel_password),
        ):
            if value:
                raise ConfigError(f"{name} is set but REDIS_SENTINELS is not: set both or neither")
        url = url or "redis://127.0.0.1:6379/0"
        if password and "@" in url.split("//", 1)[-1]:
            raise ConfigError(
                "REDIS_PASSWORD is set and REDIS_URL carries a password too: keep one"
            )
        return {"redis_url": url, "redis_password": password}
    if url:
        raise ConfigError(
            "REDIS_URL and REDIS_SENTINELS are both set: use REDIS_URL for one Redis server, "
            "or REDIS_SENTINELS with REDIS_SENTINEL_MASTER for Sentinel, not both"
        )
    sentinels = parse_sentinels("REDIS_SENTINELS", sentinels_raw)
    if not master:
        raise ConfigError(
            "REDIS_SENTINEL_MASTER is required with REDIS_SENTINELS: the name the sentinels "
            "monitor the master under (`sentinel monitor <name> ...`, e.g. mymaster)"
        )
    if any(c.isspace() for c in master):
        raise ConfigError(f"REDIS_SENTINEL_MASTER must not contain spaces, got {master!r}")
    return {
        "redis_url": "",
        "redis_sentinels": sentinels,
        "redis_sentinel_master": master,
        "redis_sentinel_password": sentinel_password,
        "redis_password": password,
    }


def _read_ingest_keys(environ: Mapping[str, str], required: bool) -> tuple[bytes, ...]:
    raw = environ.get("WEBHOOK_INGEST_SECRET", "").split()
    if not raw:
        if required:
            raise ConfigError(
                "WEBHOOK_INGEST_SECRET is required in production: a 'whsec_...' secret shared "
                "with SoftPOS (several, space-separated, while rotating)"
            )
        return ()
    return tuple(parse_whsec("WEBHOOK_INGEST_SECRET", value) for value in raw)


def _read_encryption_keys(environ: Mapping[str, str], required: bool) -> tuple[str, ...]:
    from cryptography.fernet import Fernet

    raw = environ.get("WEBHOOK_ENCRYPTION_KEYS", "").split()
    if not raw:
        if required:
            raise ConfigError(
                "WEBHOOK_ENCRYPTION_KEYS is required in production: one or more Fernet keys, "
                "newest first (make one with: python -c 'from cryptography.fernet import Fernet;"
                " print(Fernet.generate_key().decode())')"
            )
        return ()
    for value in raw:
        try:
            Fernet(value)
        except (ValueError, binascii.Error):
            raise ConfigError(
                "WEBHOOK_ENCRYPTION_KEYS must hold url-safe base64 Fernet keys of 32 bytes"
            ) from None
    return tuple(raw)


# Delivery threads per worker process when WEBHOOK_WORKER_THREADS is unset (issue 16). A
# delivery mostly waits on its receiver, so the threads are what a host keeps in flight:
# at 200 ms answers, threads / 0.2 s deliveries per second per process, and worker.py runs
# one process per core (2 x 256 = 512 in flight on 2 cores). 128 were the limit on a host
# that had CPU left: scenario 2 ran 1.07-1.45x faster with 256 (docs/decisions.md, session
# 14). Threads do not hold database connections (the pool is 10 + 10 per process,
# db_engine_options), so more threads do not count against PostgreSQL's max_connections; an
# idle thread costs ~20 KiB of RSS.
WORKER_THREADS = 256


def load_settings(environ: Mapping[str, str] | None = None, instance_path: str = "var") -> Settings:
    """Read and validate every setting; raise ConfigError naming the first bad variable."""
    environ = os.environ if environ is None else environ
    env = environ.get("APP_ENV", "production").strip() or "production"
    if env not in ENVIRONMENTS:
        raise ConfigError(f"APP_ENV must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")
    production = env == "production"

    secret_key = environ.get("SECRET_KEY", "")
    if production and len(secret_key) < 32:
        raise ConfigError("SECRET_KEY is required in production and must be at least 32 chars")
    if not secret_key:
        secret_key = "dev-only-secret-key-not-for-production"  # noqa: S105 (never in production)

    allow_private_raw = environ.get("WEBHOOK_ALLOW_PRIVATE_NETWORKS")
    allow_private = (
        not production
        if allow_private_raw is None
        else parse_bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", allow_private_raw)
    )

    def optional(name: str, parser, default):
        raw = environ.get(name)
        return default if raw is None or raw.strip() == "" else parser(name, raw)

    database_url = _read_database_url(environ, env, instance_path)
    settings = Settings(
        env=env,
        database_url=database_url,
        **_read_redis(environ),
        secret_key=secret_key,
        ingest_keys=_read_ingest_keys(environ, required=production),
        encryption_keys=_read_encryption_keys(environ, required=production),
        retry_schedule=optional(
            "WEBHOOK_RETRY_SCHEDULE", parse_retry_schedule, DEFAULT_RETRY_SCHEDULE
        ),
        delivery_timeout=optional("WEBHOOK_DELIVERY_TIMEOUT", parse_positive_float, 15.0),
        connect_timeout=optional("WEBHOOK_CONNECT_TIMEOUT", parse_positive_float, 5.0),
        sweep_interval=optional("WEBHOOK_SWEEP_INTERVAL", parse_positive_float, 30.0),
        allow_private_networks=allow_private,
        lease_seconds=optional("WEBHOOK_LEASE_SECONDS", parse_positive_float, 0.0),
        worker_threads=optional("WEBHOOK_WORKER_THREADS", parse_positive_int, WORKER_THREADS),
        worker_processes=optional("WEBHOOK_WORKER_PROCESSES", parse_positive_int, 0),
        per_endpoint_concurrency=optional("WEBHOOK_ENDPOINT_CONCURRENCY", parse_positive_int, 8),
        endpoint_burst=optional("WEBHOOK_ENDPOINT_BURST", parse_positive_int, 4),
        retention_days=optional("WEBHOOK_RETENTION_DAYS", parse_retention_days, 30.0),
        disable_after_hours=optional("WEBHOOK_DISABLE_AFTER_HOURS", parse_positive_float, 120.0),
        failing_threshold=optional("WEBHOOK_FAILING_THRESHOLD", parse_positive_int, 5),
        smtp_url=optional("SMTP_URL", parse_smtp_url, None),
        alert_email_from=environ.get("ALERT_EMAIL_FROM", "").strip() or None,
        ca_bundle=environ.get("WEBHOOK_CA_BUNDLE") or None,
        egress_proxy=environ.get("WEBHOOK_EGRESS_PROXY") or None,
        metrics_token=environ.get("METRICS_TOKEN", "").strip() or None,
        trusted_proxies=optional("WEBHOOK_TRUSTED_PROXIES", parse_trusted_proxies, 0),
        heartbeat_interval=optional("WEBHOOK_HEARTBEAT_INTERVAL", parse_positive_float, 5.0),
        api_rate_limit=optional("WEBHOOK_API_RATE_LIMIT", parse_rate_limit, "600/minute"),
        queue_prefix=_read_queue_prefix(environ, database_url),
    )
    _check_lease(settings)
    return settings


def _check_lease(settings: Settings) -> None:
    """A lease must comfortably outlast an attempt: at least twice the delivery timeout."""
    if settings.lease_seconds and settings.lease_seconds < 2 * settings.delivery_timeout:
        raise ConfigError(
            f"WEBHOOK_LEASE_SECONDS must be at least twice WEBHOOK_DELIVERY_TIMEOUT "
            f"({settings.delivery_timeout:g} s), got {settings.lease_seconds:g}: a lease that "
            "expires while its attempt still runs has the delivery sent twice at once"
        )
