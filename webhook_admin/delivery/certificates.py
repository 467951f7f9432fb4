"""The receivers' TLS certificates: expiry (notAfter) and issuer, read once per new
connection (not per request: a kept-alive connection does no handshake), recorded on the
endpoint, warned about on the pages within 14 days, and announced as the operational event
endpoint.certificate_expiring once per certificate at 14 and at 3 days.

The handshake happens inside the sender (urllib3_pools._HTTPSConnection.connect calls
`note_handshake`); the attempt that made it takes it (`take_handshake`, same thread) and
notes it for its endpoint; the record transaction writes what changed (`write_pending`)."""

from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import bindparam, or_, select, update

from ..models import Endpoint

log = logging.getLogger(__name__)
WARN_DAYS = (14, 3)  # the warning stages, largest first
_local = threading.local()
_lock = threading.Lock()
_pending: dict[int, CertInfo] = {}
_written: dict[int, tuple[str, datetime]] = {}  # per process: what this process last wrote


@dataclass(frozen=True)
class CertInfo:
    not_after: datetime  # naive UTC
    issuer: str
    serial: str


def parse_certificate(cert: dict) -> CertInfo | None:
    """ssl's getpeercert() dict as a CertInfo; None when it has no notAfter."""
    if not cert or "notAfter" not in cert:
        return None
    not_after = datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), UTC)
    issuer = ", ".join(
        f"{_SHORT.get(key, key)}={value}" for rdn in cert.get("issuer", ()) for key, value in rdn
    )
    return CertInfo(not_after.replace(tzinfo=None), issuer[:500], str(cert.get("serialNumber", "")))


_SHORT = {"commonName": "CN", "organizationName": "O", "countryName": "C"}


def note_handshake(sock, server_hostname: str | None) -> None:
    """Called right after a TLS handshake, in the sending thread."""
    try:
        info = parse_certificate(sock.getpeercert())
    except (AttributeError, ValueError, OSError):
        return
    if info is not None:
        _local.seen = ((server_hostname or "").lower(), info)


def take_handshake(url: str) -> CertInfo | None:
    """The certificate of a handshake this thread made for `url`'s host since the last
    call (None when the connection was reused: nothing new to record)."""
    seen = getattr(_local, "seen", None)
    _local.seen = None
    if seen is None or seen[0] != (urlsplit(url).hostname or "").lower():
        return None
    return seen[1]


def note(endpoint_id: int, info: CertInfo | None) -> None:
    if info is None:
        return
    with _lock:
        if _written.get(endpoint_id) != (info.serial, info.not_after):
            _pending[endpoint_id] = info


endpoints = Endpoint.__table__
RECORD = (
    update(endpoints)
    .where(
        endpoints.c.id == bindparam("c_id"),
        or_(
            endpoints.c.cert_serial.is_(None),
            endpoints.c.cert_serial != bindparam("c_serial"),
            endpoints.c.cert_not_after != bindparam("c_not_after"),
        ),
    )
    .values(
        cert_not_after=bindparam("c_not_after"),
        cert_issuer=bindparam("c_issuer"),
        cert_serial=bindparam("c_serial"),
        cert_warned_days=None,  # a new certificate: its own warnings
        updated_at=endpoints.c.updated_at,  # health, not configuration (send_cache)
    )
)


def write_pending(connection) -> int:
    """Write the certificates noted since the last call (changed ones only)."""
    with _lock:
        pending = dict(_pending)
        _pending.clear()
    for endpoint_id, info in pending.items():
        connection.execute(
            RECORD,
            {
                "c_id": endpoint_id,
                "c_serial": info.serial,
                "c_not_after": info.not_after,
                "c_issuer": info.issuer,
            },
        )
        with _lock:
            _written[endpoint_id] = (info.serial, info.not_after)
    return len(pending)


def warn_expiring(now: datetime) -> int:
    """endpoint.certificate_expiring for each live endpoint whose certificate entered a
    warning stage (14, then 3 days) not yet announced; once per certificate and stage (a
    conditional UPDATE: two sweepers cannot both send it). Returns how many went out."""
    from ..extensions import db
    from ..services import operational_events

    sent = 0
    rows = db.session.execute(
        select(Endpoint.id, Endpoint.cert_not_after, Endpoint.cert_warned_days).where(
            Endpoint.deleted_at.is_(None),
            Endpoint.cert_not_after.is_not(None),
            Endpoint.cert_not_after <= now + timedelta(days=WARN_DAYS[0]),
        )
    ).all()
    for endpoint_id, not_after, warned in rows:
        stage = min(d for d in WARN_DAYS if not_after <= now + timedelta(days=d))
        if warned is not None and warned <= stage:
            continue
        claimed = db.session.execute(
            update(Endpoint)
            .where(
                Endpoint.id == endpoint_id,
                Endpoint.cert_not_after == not_after,
                or_(Endpoint.cert_warned_days.is_(None), Endpoint.cert_warned_days > stage),
            )
            .values(cert_warned_days=stage, updated_at=Endpoint.updated_at)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:
            continue
        endpoint = db.session.get(Endpoint, endpoint_id)
        operational_events.emit(
            operational_events.ENDPOINT_CERTIFICATE_EXPIRING,
            operational_events.endpoint_facts(endpoint_id)
            | {
                "not_after": not_after.isoformat() + "Z",
                "days_left": max(0, (not_after - now).days),
                "stage_days": stage,
                "issuer": endpoint.cert_issuer,
            },
            about_endpoint_id=endpoint_id,
        )
        sent += 1
    return sent
