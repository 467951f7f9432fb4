"""Read queries for the admin pages: filtered lists, keyset pages, 24-hour success rates."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import Select, case, false, func, literal_column, or_, select
from sqlalchemy.orm import selectinload

from ..clock import utcnow
from ..extensions import db
from ..models import (
    DISABLED_AUTO,
    DISABLED_GONE,
    Attempt,
    AuditEntry,
    Category,
    Delivery,
    Endpoint,
    Event,
    EventType,
    endpoint_event_types,
)
from .delivery_event_columns import columns_filled

PAGE_SIZE = 50
SYSTEM_DISABLED = (DISABLED_AUTO, DISABLED_GONE)
TIME_RANGES = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}


@dataclass
class EndpointFilters:
    text: str = ""
    category: str = ""
    status: str = ""  # "", enabled, disabled, failing
    merchant_id: str = ""
    event_type: str = ""  # subscribed to it by name, or to all events of its category

    def as_args(self) -> dict:
        values = {"q": self.text, "category": self.category, "status": self.status}
        return {k: v for k, v in values.items() if v}


@dataclass
class Page:
    items: list = field(default_factory=list)
    next_cursor: int | None = None
    durations: dict = field(default_factory=dict)  # deliveries: id -> last attempt, ms


def _filtered_endpoints(filters: EndpointFilters) -> Select:
    """Live endpoints matching the filters, with category and types loaded."""
    query = (
        select(Endpoint)
        .where(Endpoint.deleted_at.is_(None))
        .options(selectinload(Endpoint.category), selectinload(Endpoint.event_types))
    )
    if filters.text:
        pattern = f"%{filters.text.strip()}%"
        query = query.where(or_(Endpoint.url.ilike(pattern), Endpoint.description.ilike(pattern)))
    if filters.category:
        query = query.join(Category, Endpoint.category_id == Category.id).where(
            Category.name == filters.category
        )
    if filters.status == "enabled":
        query = query.where(Endpoint.enabled.is_(True))
    elif filters.status == "disabled":
        query = query.where(Endpoint.enabled.is_(False))
    elif filters.status == "failing":
        query = query.where(Endpoint.failing_since.is_not(None))
    if filters.merchant_id:
        query = query.where(Endpoint.merchant_id == filters.merchant_id)
    if filters.event_type:
        query = query.where(_subscribed_to(filters.event_type))
    return query


def list_endpoints(
    filters: EndpointFilters, cursor: int | None = None, limit: int = PAGE_SIZE
) -> Page:
    """Live endpoints, newest first, a keyset page at a time, with category and types."""
    query = _filtered_endpoints(filters).order_by(Endpoint.id.desc()).limit(limit + 1)
    if cursor is not None:
        query = query.where(Endpoint.id < cursor)
    rows = list(db.session.scalars(query))
    next_cursor = rows[limit - 1].id if len(rows) > limit else None
    return Page(rows[:limit], next_cursor)


# Attention first: failing and enabled (0), disabled by the receiver or by auto-disable (1),
# then the rest (2); newest first within each.
HEALTH_RANK = case(
    (Endpoint.enabled.is_(True) & Endpoint.failing_since.is_not(None), 0),
    (Endpoint.enabled.is_(False) & Endpoint.disabled_reason.in_(SYSTEM_DISABLED), 1),
    else_=2,
)


def endpoint_rank(endpoint: Endpoint) -> int:
    if endpoint.enabled:
        return 0 if endpoint.failing_since is not None else 2
    return 1 if endpoint.disabled_reason in SYSTEM_DISABLED else 2


def list_endpoints_by_health(
    filters: EndpointFilters, cursor: str | None = None, limit: int = PAGE_SIZE
) -> Page:
    """The Webhook Management list: failing endpoints first, then a keyset page at a time;
    the cursor is "<rank>.<id>" of the last row shown."""
    query = _filtered_endpoints(filters).order_by(HEALTH_RANK, Endpoint.id.desc()).limit(limit + 1)
    if cursor:
        try:
            rank, last_id = (int(part) for part in cursor.split(".", 1))
        except ValueError:
            rank, last_id = None, None
        if rank is not None:
            query = query.where(
                or_(rank < HEALTH_RANK, (rank == HEALTH_RANK) & (Endpoint.id < last_id))
            )
    rows = list(db.session.scalars(query))
    last = rows[limit - 1] if len(rows) > limit else None
    next_cursor = f"{endpoint_rank(last)}.{last.id}" if last is not None else None
    return Page(rows[:limit], next_cursor)


def _subscribed_to(event_type: str):
    """Endpoints that get `event_type`: listed by name, or all events of its category."""
    named = (
        select(endpoint_event_types.c.endpoint_id)
        .join(EventType, EventType.id == endpoint_event_types.c.event_type_id)
        .where(EventType.name == event_type)
    )
    category = select(EventType.category_id).where(EventType.name == event_type)
    return or_(
        Endpoint.id.in_(named),
        Endpoint.all_category_events.is_(True) & Endpoint.category_id.in_(category),
    )


def success_rates(endpoint_ids: list[int], hours: int = 24) -> dict[int, tuple[int, int]]:
    """endpoint id -> (succeeded attempts, all attempts) over the last hours: one query."""
    if not endpoint_ids:
        return {}
    since = utcnow() - timedelta(hours=hours)
    rows = db.session.execute(
        select(
            Attempt.endpoint_id,
            func.count(),
            func.sum(case((Attempt.succeeded.is_(True), 1), else_=0)),
        )
        .where(Attempt.endpoint_id.in_(endpoint_ids), Attempt.started_at >= since)
        .group_by(Attempt.endpoint_id)
    ).all()
    return {endpoint_id: (int(ok or 0), int(total)) for endpoint_id, total, ok in rows}


def auto_disabled_endpoints() -> list[Endpoint]:
    """Endpoints the system disabled: the receiver answered 410, or every try failed too long."""
    return list(
        db.session.scalars(
            select(Endpoint)
            .where(
                Endpoint.deleted_at.is_(None),
                Endpoint.enabled.is_(False),
                Endpoint.disabled_reason.in_(SYSTEM_DISABLED),
            )
            .order_by(Endpoint.id.desc())
        )
    )


@dataclass
class DeliveryFilters:
    status: str = ""
    endpoint_id: int | None = None
    event_type: str = ""
    category: str = ""
    since: str = ""  # a key of TIME_RANGES, or "" for all time
    event_id: str = ""  # the id or its beginning
    created_since: datetime | None = None  # created at or after
    created_until: datetime | None = None  # created before
    status_class: str = ""  # a key of STATUS_CLASSES: the last answer's HTTP status class
    error_class: str = ""  # the last attempt's error class (timeout, connect, ...)
    merchant_id: str = ""
    hour: str = ""  # "YYYY-MM-DDTHH": created in that hour (UTC); the chart's bars link here

    def as_args(self) -> dict:
        values = {
            "hour": self.hour,
            "status": self.status,
            "endpoint_id": self.endpoint_id,
            "event_type": self.event_type,
            "category": self.category,
            "since": self.since,
            "event_id": self.event_id,
            "status_class": self.status_class,
            "error_class": self.error_class,
            "merchant_id": self.merchant_id,
        }
        return {k: v for k, v in values.items() if v}


STATUS_CLASSES = {"2xx": 2, "3xx": 3, "4xx": 4, "5xx": 5}  # the first digit of the answer
# Past the last character any event id has: the upper bound of an id prefix's range.
AFTER_PREFIX = "\U0010ffff"
HOUR_FORMAT = "%Y-%m-%dT%H"
COUNT_CAP = 10_000  # "10,000+": counting every match of a wide filter costs a scan


def count_deliveries(filters: DeliveryFilters, cap: int | None = None) -> int:
    """How many deliveries match, counted up to cap + 1. The rows' ids only, not the whole
    entity: the count of an indexed filter (the answer class, a status, a time range) is then
    an index-only scan of cap + 1 entries, where reading every matched row's columns fetched
    10,001 rows from the heap (and made PostgreSQL prefer a bitmap of every match)."""
    cap = COUNT_CAP if cap is None else cap
    if filters.since in TIME_RANGES and not filters.hour and filters.created_since is None:
        return _count_since(filters, utcnow() - TIME_RANGES[filters.since], cap)
    return _count(_filtered_deliveries(filters), cap)


def _count(query: Select, cap: int) -> int:
    matching = query.with_only_columns(Delivery.id).limit(cap + 1).subquery()
    return db.session.scalar(select(func.count()).select_from(matching))


def _count_since(filters: DeliveryFilters, since: datetime, cap: int) -> int:
    """The bounded count of a time range (?since=24h), in two disjoint parts that PostgreSQL
    estimates right. Every delivery with an id at or above id_ceiling(since) was created
    since (the margin's argument): that part needs no created_at test and is counted by an id
    range (the primary key, or the (status, id) index with a status) that stops at cap + 1;
    only the ids between the floor and that ceiling (the margin's 20 minutes) are tested.
    `created_at >= since AND id >= floor` in one statement read as independent made the
    planner expect a few hundred rows and AND two bitmaps of the whole range (333,000 entries
    each for 24 hours at 10M) before counting 10,001 of them (issue 16)."""
    floor, ceiling = id_floor(since), id_ceiling(since)
    if floor is None:
        return 0
    if ceiling is None:  # nothing after since + margin: the whole range is the margin's
        return _count(_filtered_deliveries(filters, since_ids=(since, floor, None)), cap)
    sure = _count(_filtered_deliveries(filters, since_ids=(None, ceiling, None)), cap)
    if sure > cap:
        return sure
    edge = _count(_filtered_deliveries(filters, since_ids=(since, floor, ceiling)), cap)
    return min(cap + 1, sure + edge)


def _deliveries_with_event_and_endpoint() -> Select:
    """Whole deliveries, with what a row of the monitor shows of their event and endpoint."""
    return select(Delivery).options(selectinload(Delivery.event), selectinload(Delivery.endpoint))


def _filtered_deliveries(
    filters: DeliveryFilters,
    since_ids: tuple[datetime | None, int, int | None] | None = None,
) -> Select:
    """The filtered deliveries. `since_ids` (count_deliveries only): the time range given as
    (created at or after, id at or above, id below), in place of filters.since."""
    query = _deliveries_with_event_and_endpoint()
    if filters.status:
        query = query.where(Delivery.status == filters.status)
    if filters.endpoint_id:
        query = query.where(Delivery.endpoint_id == filters.endpoint_id)
    if filters.event_id:
        query = query.where(event_id_prefix(filters.event_id.strip()))
    if filters.status_class in STATUS_CLASSES:
        query = query.where(last_answer_class() == STATUS_CLASSES[filters.status_class])
    if filters.error_class:
        query = query.where(Delivery.last_error_class == filters.error_class)
    if filters.event_type or filters.category or filters.merchant_id:
        query = _of_events(query, filters)
    if filters.hour:
        try:
            start = datetime.strptime(filters.hour, HOUR_FORMAT)
        except ValueError:
            start = None
        if start is not None:
            query = created_until(created_since(query, start), start + timedelta(hours=1))
    if since_ids is not None:
        since, floor, below = since_ids
        query = query.where(Delivery.id >= floor)
        if since is not None:
            query = query.where(Delivery.created_at >= since)
        if below is not None:
            query = query.where(Delivery.id < below)
    elif filters.since in TIME_RANGES:
        query = created_since(query, utcnow() - TIME_RANGES[filters.since])
    if filters.created_since is not None:
        query = created_since(query, filters.created_since)
    if filters.created_until is not None:
        query = created_until(query, filters.created_until)
    return query


def _of_events(query: Select, filters: DeliveryFilters) -> Select:
    """The merchant, type and category filters: on the delivery's own copies of its event's
    type and merchant (an index range each) once every delivery has them, else by joining
    events (the rows from before migration 0011 are still being filled)."""
    if columns_filled():
        merchant_column, type_column = Delivery.merchant_id, Delivery.event_type
    else:
        query = query.join(Event, Delivery.event_id == Event.id)
        merchant_column, type_column = Event.merchant_id, Event.type
    if filters.merchant_id:
        query = query.where(merchant_column == filters.merchant_id.strip())
    if filters.event_type:
        query = query.where(type_column == filters.event_type)
    if filters.category:
        query = query.where(type_column.in_(category_type_names(filters.category)))
    return query


def category_type_names(category: str) -> list[str]:
    """The names of the category's event types, archived ones too (their old deliveries
    are still shown). A list, not a subquery: the planner then knows each type's share."""
    return list(
        db.session.scalars(
            select(EventType.name)
            .join(Category, EventType.category_id == Category.id)
            .where(Category.name == category)
        )
    )


# A delivery's id is taken and its created_at stamped in the same INSERT, by whichever
# process ingests: ids follow creation time, though not to the millisecond (concurrent
# ingests). With this margin, every delivery created at `since` or later has an id at or
# above the floor.
ID_FLOOR_MARGIN = timedelta(minutes=10)


def id_floor(since: datetime) -> int | None:
    """An id at or below that of every delivery created at `since` or later; None when none
    was. One probe of ix_deliveries_created."""
    return db.session.scalar(
        select(Delivery.id)
        .where(Delivery.created_at >= since - ID_FLOOR_MARGIN)
        .order_by(Delivery.created_at)
        .limit(1)
    )


def created_since(query: Select, since: datetime) -> Select:
    """Deliveries created at `since` or later, also bounded by id: the newest-first walk by
    id (what SQLite takes without statistics) stops at the floor instead of reading the
    whole table when fewer than a page of rows are that recent."""
    floor = id_floor(since)
    if floor is None:  # nothing was created since: no need to look
        return query.where(false())
    return query.where(Delivery.created_at >= since, Delivery.id >= floor)


def id_ceiling(until: datetime) -> int | None:
    """An id above that of every delivery created before `until`: the id of the first
    delivery created at `until` + ID_FLOOR_MARGIN or later (the floor's argument the other
    way round); None when none was (then no id bounds the window from above). One probe of
    ix_deliveries_created."""
    return db.session.scalar(
        select(Delivery.id)
        .where(Delivery.created_at >= until + ID_FLOOR_MARGIN)
        .order_by(Delivery.created_at)
        .limit(1)
    )


def created_until(query: Select, until: datetime) -> Select:
    """Deliveries created before `until`, also bounded by id from above when deliveries were
    created after it: with the floor of a window's start (an hour of the chart in the middle
    of 30 days), the newest-first walk by id reads that window's ids only, instead of every
    newer delivery down to the window (the planner took the primary key and filtered half of
    10M rows by created_at, issue 16)."""
    ceiling = id_ceiling(until)
    query = query.where(Delivery.created_at < until)
    return query if ceiling is None else query.where(Delivery.id < ceiling)


def last_answer_class():
    """The last answer's class (5 for a 5xx), written exactly as the index
    ix_deliveries_status_class_id is (migration 0008): a literal 100, not a parameter, so
    that both databases match the expression to the index."""
    return Delivery.last_status_code.op("/")(literal_column("100"))


def event_id_prefix(prefix: str):
    """Event ids starting with `prefix`, found by an index on both databases. PostgreSQL:
    LIKE (backslash is its default escape) on the varchar_pattern_ops index, right under any
    collation. SQLite: LIKE ignores case there and so cannot use an index; a range of the
    (byte-ordered, BINARY) ids can, and is case-sensitive like the ids themselves."""
    if db.engine.dialect.name == "postgresql":
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return Delivery.event_id.like(escaped + "%")
    return (Delivery.event_id >= prefix) & (Delivery.event_id < prefix + AFTER_PREFIX)


def deliveries_page(
    filters: DeliveryFilters, cursor: int | None = None, limit: int = PAGE_SIZE
) -> Page:
    """Newest first by keyset: WHERE id < cursor ORDER BY id DESC, never OFFSET."""
    rows = _newest(filters, cursor, limit + 1)
    next_cursor = rows[limit - 1].id if len(rows) > limit else None
    page = Page(rows[:limit], next_cursor)
    page.durations = last_durations([d.id for d in page.items])
    return page


def _newest(filters: DeliveryFilters, cursor: int | None, n: int) -> list[Delivery]:
    """The n newest matching deliveries below the cursor. A category of several types, on the
    deliveries' own column, is the newest n of its types' newest n each: one index range per
    type. One `event_type IN (...)` is no range in id order: it sorted every delivery of the
    category (SQLite), or walked the newest deliveries of every type (PostgreSQL)."""
    types = _category_types_apart(filters)
    if not types:
        return list(db.session.scalars(_newest_query(filters, cursor, n)))
    ids = []
    for name in types:  # ids only: the n winners are loaded whole once, not n per type
        apart = replace(filters, category="", event_type=name)
        ids += db.session.scalars(_newest_query(apart, cursor, n).with_only_columns(Delivery.id))
    newest = sorted(ids, reverse=True)[:n]
    whole = _deliveries_with_event_and_endpoint().where(Delivery.id.in_(newest))
    return list(db.session.scalars(whole.order_by(Delivery.id.desc())))


def _newest_query(filters: DeliveryFilters, cursor: int | None, n: int) -> Select:
    query = _filtered_deliveries(filters)
    if cursor:
        query = query.where(Delivery.id < cursor)
    return query.order_by(Delivery.id.desc()).limit(n)


def _category_types_apart(filters: DeliveryFilters) -> list[str] | None:
    """The category's types when its page is to be read one type at a time; else None."""
    if not filters.category or filters.event_type or not columns_filled():
        return None
    names = category_type_names(filters.category)
    return names if len(names) > 1 else None


def last_durations(delivery_ids: list[int]) -> dict[int, int]:
    """delivery id -> the duration of its latest attempt, in ms: one query for a page."""
    if not delivery_ids:
        return {}
    latest = (
        select(Attempt.delivery_id, func.max(Attempt.number).label("number"))
        .where(Attempt.delivery_id.in_(delivery_ids))
        .group_by(Attempt.delivery_id)
        .subquery()
    )
    rows = db.session.execute(
        select(Attempt.delivery_id, Attempt.duration_ms).join(
            latest,
            (Attempt.delivery_id == latest.c.delivery_id) & (Attempt.number == latest.c.number),
        )
    ).all()
    return {delivery_id: duration for delivery_id, duration in rows}


def events_page(event_type: str = "", cursor: str | None = None, limit: int = PAGE_SIZE) -> Page:
    """Received events, newest first; the cursor is the received time and id of the last row."""
    query = select(Event).options(selectinload(Event.deliveries).selectinload(Delivery.endpoint))
    if event_type:
        query = query.where(Event.type == event_type)
    if cursor:
        at_raw, _, last_id = cursor.partition("|")
        at = datetime.fromisoformat(at_raw)
        query = query.where(
            or_(Event.received_at < at, (Event.received_at == at) & (Event.id < last_id))
        )
    query = query.order_by(Event.received_at.desc(), Event.id.desc()).limit(limit + 1)
    rows = list(db.session.scalars(query))
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = f"{last.received_at.isoformat()}|{last.id}"
    return Page(rows[:limit], next_cursor)


@dataclass
class AuditFilters:
    action: str = ""
    actor: str = ""
    target: str = ""  # "endpoint" or "endpoint:5"


def audit_page(filters: AuditFilters, cursor: int | None = None, limit: int = PAGE_SIZE) -> Page:
    query = select(AuditEntry)
    if filters.action:
        query = query.where(AuditEntry.action == filters.action)
    if filters.actor:
        query = query.where(AuditEntry.actor.ilike(f"%{filters.actor.strip()}%"))
    if filters.target:
        target_type, _, target_id = filters.target.strip().partition(":")
        query = query.where(AuditEntry.target_type == target_type)
        if target_id:
            query = query.where(AuditEntry.target_id == target_id)
    if cursor:
        query = query.where(AuditEntry.id < cursor)
    rows = list(db.session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit + 1)))
    next_cursor = rows[limit - 1].id if len(rows) > limit else None
    return Page(rows[:limit], next_cursor)


def audit_actions() -> list[str]:
    return list(
        db.session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action))
    )


def event_type_names() -> list[str]:
    return list(db.session.scalars(select(EventType.name).order_by(EventType.name)))


MAX_ENDPOINT_CHOICES = 200


def endpoint_choices() -> list[tuple[int, str]] | None:
    """(id, url) for a filter dropdown; None when there are too many to list (the page then
    asks for an endpoint id: a select of thousands of options helps nobody)."""
    rows = db.session.execute(
        select(Endpoint.id, Endpoint.url)
        .where(Endpoint.deleted_at.is_(None))
        .order_by(Endpoint.id)
        .limit(MAX_ENDPOINT_CHOICES + 1)
    ).all()
    if len(rows) > MAX_ENDPOINT_CHOICES:
        return None
    return [(row.id, row.url) for row in rows]
