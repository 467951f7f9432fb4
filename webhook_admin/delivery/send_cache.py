"""What a worker process remembers between attempts, so an attempt costs no ORM load and no
decryption: each endpoint's sending configuration and the envelope bytes of recent events.

Reading the delivery, its event and its endpoint through the ORM and decrypting the secret
took ~40 % of a worker's CPU per delivery. Both caches are safe to trust:
- an endpoint snapshot is keyed by the endpoint's `config_version`, which every UPDATE of
  the endpoint moves (models/endpoint.py: edits, secret rotation, enable/disable); the claim
  returns the current value in the same statement, so a stale snapshot is never used, not
  even for one attempt. Health writes (last attempt, failure streak) say they leave it
  alone (models.endpoint.HEALTH_ONLY), so they do not empty every worker's snapshot each
  second: the claim reads the health fields itself;
- events never change after ingest (but for the erasure of their sensitive values, which
  the claim reports, and which drops the event's envelope), so their envelope bytes (built from the event columns
  the claim returns) can be kept as they are. An event's sensitive values (encrypted apart,
  services/sensitive.py) are decrypted once, when its envelope is built; the attempt records
  the envelope with them masked.
Secrets (signing secrets and custom header values) stay in this process's memory only, as
they did while being used to sign and send."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, select

from ..clock import utcnow
from ..extensions import db
from ..models import Endpoint
from ..secrets_box import SecretBox
from ..services.sensitive import ERASED, loads_values, restore
from .claims import Claim
from .envelope import EnvelopeError, envelope_bytes

endpoints = Endpoint.__table__

SNAPSHOT_COLUMNS = (
    endpoints.c.id,
    endpoints.c.config_version,
    endpoints.c.url,
    endpoints.c.timeout_seconds,
    endpoints.c.custom_headers,
    endpoints.c.secret_encrypted,
    endpoints.c.previous_secret_encrypted,
    endpoints.c.previous_secret_expires_at,
)
READ_SNAPSHOT = select(*SNAPSHOT_COLUMNS).where(endpoints.c.id == bindparam("endpoint_id"))


class EnvelopeFields(NamedTuple):
    """What an envelope is built from (the attributes `envelope_bytes` reads)."""

    id: str
    type: str
    occurred_at: datetime
    data: dict


@dataclass(frozen=True)
class EndpointSendConfig:
    """An endpoint as of `version` (its config_version): what sending to it needs."""

    id: int
    version: int
    url: str
    timeout_seconds: float | None
    custom_headers: dict = field(repr=False)  # values decrypted: secrets too
    secret: str = field(repr=False)
    previous_secret: str | None = field(repr=False, default=None)
    previous_secret_expires_at: datetime | None = None

    def signing_secrets(self) -> list[str]:
        """Current first, then the previous one while its overlap lasts."""
        if (
            self.previous_secret
            and self.previous_secret_expires_at
            and self.previous_secret_expires_at > utcnow()
        ):
            return [self.secret, self.previous_secret]
        return [self.secret]


class EndpointCache:
    """Snapshots by endpoint id; thread-safe; one per delivery runner."""

    def __init__(self, box: SecretBox, max_entries: int = 20_000):
        self._box = box
        self._max = max_entries
        self._lock = threading.Lock()
        self._items: dict[int, EndpointSendConfig] = {}
        self.reads = 0  # snapshots read from the database (tests count them)

    def get(self, endpoint_id: int, version: int) -> EndpointSendConfig:
        """The snapshot for this version, read (in the caller's transaction) if not held."""
        with self._lock:
            held = self._items.get(endpoint_id)
        if held is not None and held.version == version:
            return held
        snapshot = self._read(endpoint_id)
        with self._lock:
            self.reads += 1
            if len(self._items) >= self._max:
                self._items.clear()  # rare (that many endpoints): refill on demand
            self._items[endpoint_id] = snapshot
        return snapshot

    def __len__(self) -> int:
        return len(self._items)

    def _read(self, endpoint_id: int) -> EndpointSendConfig:
        row = db.session.connection().execute(READ_SNAPSHOT, {"endpoint_id": endpoint_id}).one()
        previous = row.previous_secret_encrypted
        return EndpointSendConfig(
            id=row.id,
            version=row.config_version,
            url=row.url,
            timeout_seconds=row.timeout_seconds,
            custom_headers={k: self._box.decrypt(v) for k, v in (row.custom_headers or {}).items()},
            secret=self._box.decrypt(row.secret_encrypted),
            previous_secret=self._box.decrypt(previous) if previous else None,
            previous_secret_expires_at=row.previous_secret_expires_at,
        )


class Envelope(NamedTuple):
    """What is sent (`body`, sensitive values in clear) and what the attempt records
    (`recorded`: the same envelope with them masked; `body` itself when there are none)."""

    body: bytes
    recorded: bytes


class EnvelopeCache:
    """The exact body bytes of recent events (a fan-out sends one event to many endpoints).
    An event's sensitive values are decrypted once, when its envelope is built."""

    def __init__(self, box: SecretBox | None = None, max_entries: int = 2_000):
        self._box = box
        self._max = max_entries
        self._lock = threading.Lock()
        self._items: OrderedDict[str, Envelope] = OrderedDict()

    def get(self, claim: Claim) -> Envelope:
        """The envelope of the claimed delivery's event (the claim carries the event)."""
        event_id = claim.event_id
        if claim.event_sensitive == ERASED:
            with self._lock:
                self._items.pop(event_id, None)  # built before the purge: never again
            raise self._erased(event_id)
        with self._lock:
            envelope = self._items.get(event_id)
            if envelope is not None:
                self._items.move_to_end(event_id)
                return envelope
        envelope = self._build(claim)
        with self._lock:
            self._items[event_id] = envelope
            if len(self._items) > self._max:
                self._items.popitem(last=False)
        return envelope

    def _build(self, claim: Claim) -> Envelope:
        fields = EnvelopeFields(
            claim.event_id, claim.event_type, claim.event_occurred_at, claim.event_data
        )
        recorded = envelope_bytes(fields)
        if not claim.event_sensitive:
            return Envelope(recorded, recorded)
        if self._box is None:
            raise ValueError("EnvelopeCache needs the secret box to send sensitive values")
        values = loads_values(self._box.decrypt(claim.event_sensitive))
        full = fields._replace(data=restore(claim.event_data, values))
        return Envelope(envelope_bytes(full), recorded)

    @staticmethod
    def _erased(event_id: str) -> EnvelopeError:
        """A delivery made after the event's values were erased (a replay): masked values
        signed as real ones could be booked by the receiver, so it fails at once."""
        return EnvelopeError(
            f"event {event_id!r} had its card and personal data erased after delivery; "
            "it is not sent again"
        )

    def __len__(self) -> int:
        return len(self._items)
