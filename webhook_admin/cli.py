"""Operator commands: `flask --app wsgi <group> <command>`; `--json` for machines."""

from __future__ import annotations

import json
import sys
import time
import uuid

import click
from flask import Flask, current_app
from sqlalchemy import select

from .extensions import db
from .models import SCOPE_READ, SCOPES, ApiToken, Delivery, DeliveryStatus, Endpoint, User
from .queues import enqueue_deliveries
from .services.api_tokens import TokenError, create_token, list_tokens, revoke_token, token_dict
from .services.bulk_retry import RetryRefused, retry_delivery
from .services.catalog import list_catalog, seed_catalog
from .services.endpoints import (
    EndpointInput,
    ValidationError,
    create_endpoint,
    delete_endpoint,
    disable_endpoint,
    enable_endpoint,
    get_live_endpoint,
)
from .services.serialize import delivery_dict, endpoint_dict
from .services.users import UserError, create_user

CLI_ACTOR = "cli"
json_option = click.option("--json", "as_json", is_flag=True, help="machine-readable output")


def emit(value, as_json: bool, text: str) -> None:
    click.echo(json.dumps(value, indent=2, default=str) if as_json else text)


def fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def load_endpoint(endpoint_id: int) -> Endpoint:
    endpoint = get_live_endpoint(endpoint_id)
    if endpoint is None:
        fail(f"no endpoint with id {endpoint_id}")
    return endpoint


catalog_cli = click.Group("catalog", help="The event catalog.")
endpoints_cli = click.Group("endpoints", help="Webhook endpoints.")
deliveries_cli = click.Group("deliveries", help="Deliveries and retries.")
events_cli = click.Group("events", help="Events.")
users_cli = click.Group("users", help="Operator accounts.")
secrets_cli = click.Group("secrets", help="Signing secrets at rest.")
tokens_cli = click.Group("tokens", help="API tokens for the management API.")


@catalog_cli.command("seed")
@json_option
def catalog_seed(as_json: bool) -> None:
    """Add the catalog file's categories and event types (idempotent)."""
    added = seed_catalog()
    db.session.commit()
    emit(
        added,
        as_json,
        f"added {added['categories']} categories, {added['event_types']} event types",
    )


@catalog_cli.command("list")
@json_option
def catalog_list(as_json: bool) -> None:
    """Categories and their event types."""
    categories = list_catalog()
    data = [
        {
            "category": c.name,
            "event_types": [{"name": t.name, "archived": t.archived} for t in c.event_types],
        }
        for c in categories
    ]
    lines = []
    for c in categories:
        lines.append(c.name)
        lines += [f"  {t.name}{' (archived)' if t.archived else ''}" for t in c.event_types]
    emit(data, as_json, "\n".join(lines))


@catalog_cli.command("protect")
@click.argument("event_type")
@click.option("--pan-guard/--no-pan-guard", default=None, help="refuse unmarked card numbers")
@click.option(
    "--purge-after-delivery/--keep-after-delivery",
    default=None,
    help="erase the encrypted card and personal data once every delivery is final",
)
@json_option
def catalog_protect(event_type, pan_guard, purge_after_delivery, as_json) -> None:
    """Show or set an event type's data protection (docs/security.md#data-protection)."""
    from .services.data_protection import set_protection

    try:
        result = set_protection(event_type, pan_guard, purge_after_delivery, CLI_ACTOR)
    except LookupError as exc:
        fail(str(exc))
    db.session.commit()
    emit(
        result,
        as_json,
        f"{event_type}: PAN guard {'on' if result['pan_guard'] else 'off'}, "
        f"{'erase' if result['purge_after_delivery'] else 'keep'} after delivery",
    )


def read_json_object(path: str, what: str) -> dict:
    """A JSON object from a file ('-': stdin); exits with the reason when it is not one."""
    try:
        with click.open_file(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except OSError as exc:
        fail(f"cannot read the {what} file: {exc}")
    except ValueError as exc:
        fail(f"the {what} file is not valid JSON: {exc}")
    if not isinstance(value, dict):
        fail(f"the {what} must be a JSON object, got {type(value).__name__}")
    return value


@catalog_cli.command("schema")
@click.argument("event_type")
@click.argument("schema_file", required=False)
@click.option("--example", "example_file", default=None, help="a new example (JSON file)")
@click.option("--trigger", default=None, help="when the event fires, for receivers")
@click.option("--remove", is_flag=True, help="remove the schema: any object is accepted")
@json_option
def catalog_schema(event_type, schema_file, example_file, trigger, remove, as_json) -> None:
    """Show or set an event type's JSON Schema (Draft 2020-12; '-' reads stdin). Refused
    unless it is valid JSON Schema and the example matches it; ingest enforces it at once."""
    from .models import EventType
    from .services.catalog_admin import KEEP, CatalogError, update_event_type

    known = db.session.scalar(select(EventType).where(EventType.name == event_type))
    if known is None:
        fail(f"unknown event type {event_type!r}")
    if schema_file and remove:
        fail("give a schema file or --remove, not both")
    changing = schema_file or remove or example_file or trigger is not None
    if changing:
        schema = None if remove else KEEP
        if schema_file:
            schema = read_json_object(schema_file, "schema")
        example = known.example_payload or {}
        if example_file:
            example = read_json_object(example_file, "example")
        try:
            update_event_type(
                known,
                known.category.name,
                known.description or "",
                example,
                known.archived,
                CLI_ACTOR,
                json_schema=schema,
                trigger_condition=trigger,
            )
        except CatalogError as exc:
            db.session.rollback()
            fail(str(exc))
        db.session.commit()
    shown = {
        "name": known.name,
        "trigger_condition": known.trigger_condition,
        "json_schema": known.json_schema,
        "example_payload": known.example_payload,
    }
    text = (
        json.dumps(known.json_schema, indent=2)
        if known.json_schema is not None
        else (f"{event_type} has no schema: any JSON object is accepted")
    )
    emit(shown, as_json, (f"{event_type} saved\n" if changing else "") + text)


@catalog_cli.command("docs")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "html"]),
    default="markdown",
    show_default=True,
)
@json_option
def catalog_docs_export(out_dir, fmt, as_json) -> None:
    """Write the catalog docs for a merchant-facing site: events.md (or events.html) and
    schemas/<type>.schema.json for every event type."""
    from pathlib import Path

    from .services.catalog_docs import EXAMPLE_SECRET, catalog_docs, markdown, schema_file

    docs = catalog_docs(list_catalog())
    out = Path(out_dir)
    (out / "schemas").mkdir(parents=True, exist_ok=True)
    if fmt == "markdown":
        page, text = out / "events.md", markdown(docs)
    else:
        page = out / "events.html"
        # The template alone, without the app's context processors (no request, no user).
        template = current_app.jinja_env.get_template("catalog/docs_export.html")
        text = template.render(catalog=docs, example_secret=EXAMPLE_SECRET)
    page.write_text(text, encoding="utf-8")
    written = [str(page)]
    for _, types in docs:
        for doc in types:
            path = out / "schemas" / f"{doc.name}.schema.json"
            path.write_text(json.dumps(schema_file(doc), indent=2, ensure_ascii=False) + "\n")
            written.append(str(path))
    emit({"files": written}, as_json, f"wrote {page} and {len(written) - 1} JSON Schema files")


@catalog_cli.command("deadline")
@click.argument("event_type")
@click.argument("seconds", required=False)
@json_option
def catalog_deadline(event_type, seconds, as_json) -> None:
    """Show, set (SECONDS) or clear ('none') an event type's delivery deadline: a delivery
    not made by occurred_at + SECONDS gets no more automatic tries and becomes expired."""
    from .models import EventType
    from .services.catalog_admin import CatalogError, set_deadline

    found = db.session.scalar(select(EventType).where(EventType.name == event_type))
    if found is None:
        fail(f"no event type named {event_type!r}")
    if seconds is not None:
        if seconds.lower() == "none":
            value = None
        elif seconds.isdigit():
            value = int(seconds)
        else:
            fail(f"SECONDS must be a whole number of seconds or 'none', not {seconds!r}")
        try:
            set_deadline(found, value, CLI_ACTOR)
        except CatalogError as exc:
            fail(str(exc))
        db.session.commit()
    result = {"event_type": found.name, "expires_after_seconds": found.expires_after_seconds}
    text = found.expires_after_seconds and f"{found.expires_after_seconds} s" or "no deadline"
    emit(result, as_json, f"{found.name}: {text}")


@endpoints_cli.command("add")
@click.argument("url")
@click.option("--event", "events", multiple=True, help="event type to subscribe to (repeat)")
@click.option("--category", default=None, help="category name")
@click.option("--all-category-events", is_flag=True, help="every event type of the category")
@click.option("--description", default="")
@click.option("--merchant", default=None, help="only this merchant's events")
@click.option("--header", "headers", multiple=True, help="custom header NAME:VALUE (repeat)")
@json_option
def endpoints_add(
    url, events, category, all_category_events, description, merchant, headers, as_json
) -> None:
    """Add an endpoint; prints its signing secret once."""
    custom = {}
    for header in headers:
        name, sep, value = header.partition(":")
        if not sep:
            fail(f"--header must be NAME:VALUE, got {header!r}")
        custom[name.strip()] = value.strip()
    data = EndpointInput(
        url, list(events), category, all_category_events, description, merchant, custom
    )
    try:
        endpoint, secret = create_endpoint(data, CLI_ACTOR)
    except ValidationError as exc:
        fail(str(exc))
    db.session.commit()
    out = endpoint_dict(endpoint) | {"secret": secret}
    emit(
        out,
        as_json,
        f"endpoint {endpoint.id} {endpoint.url}\nsigning secret (shown once): {secret}",
    )


@endpoints_cli.command("list")
@json_option
def endpoints_list(as_json: bool) -> None:
    """Every endpoint that is not deleted."""
    endpoints = db.session.scalars(
        select(Endpoint).where(Endpoint.deleted_at.is_(None)).order_by(Endpoint.id)
    ).all()
    rows = [endpoint_dict(e) for e in endpoints]
    text = "\n".join(
        f"{r['id']:>5}  {'enabled ' if r['enabled'] else 'disabled'}  {r['url']}  "
        f"{','.join(r['event_types']) or r['category']}"
        for r in rows
    )
    emit(rows, as_json, text or "no endpoints")


@endpoints_cli.command("show")
@click.argument("endpoint_id", type=int)
@json_option
def endpoints_show(endpoint_id: int, as_json: bool) -> None:
    data = endpoint_dict(load_endpoint(endpoint_id))
    emit(data, as_json, "\n".join(f"{k}: {v}" for k, v in data.items()))


@endpoints_cli.command("enable")
@click.argument("endpoint_id", type=int)
def endpoints_enable(endpoint_id: int) -> None:
    """Enable; deliveries held while it was disabled go out."""
    held = enable_endpoint(load_endpoint(endpoint_id), CLI_ACTOR)
    db.session.commit()
    enqueue_deliveries(held)
    click.echo(f"endpoint {endpoint_id} enabled; {len(held)} held deliveries queued")


@endpoints_cli.command("disable")
@click.argument("endpoint_id", type=int)
def endpoints_disable(endpoint_id: int) -> None:
    """Disable; new events are not delivered, waiting ones are held."""
    disable_endpoint(load_endpoint(endpoint_id), CLI_ACTOR)
    db.session.commit()
    click.echo(f"endpoint {endpoint_id} disabled")


@endpoints_cli.command("delete")
@click.argument("endpoint_id", type=int)
def endpoints_delete(endpoint_id: int) -> None:
    """Delete; waiting deliveries are cancelled, history is kept."""
    cancelled = delete_endpoint(load_endpoint(endpoint_id), CLI_ACTOR)
    db.session.commit()
    click.echo(f"endpoint {endpoint_id} deleted; {cancelled} waiting deliveries cancelled")


@deliveries_cli.command("list")
@click.option("--endpoint", "endpoint_id", type=int, default=None)
@click.option("--status", type=click.Choice(DeliveryStatus.ALL), default=None)
@click.option("--limit", type=int, default=100)
@json_option
def deliveries_list(endpoint_id, status, limit, as_json) -> None:
    """Newest deliveries first."""
    query = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
    if endpoint_id is not None:
        query = query.where(Delivery.endpoint_id == endpoint_id)
    if status:
        query = query.where(Delivery.status == status)
    rows = [delivery_dict(d) for d in db.session.scalars(query)]
    text = "\n".join(
        f"{r['id']:>7}  {r['status']:<10} attempts={r['attempts']}  endpoint={r['endpoint_id']}  "
        f"{r['event_type']}  {r['event_id']}"
        for r in rows
    )
    emit(rows, as_json, text or "no deliveries")


@deliveries_cli.command("retry")
@click.argument("delivery_id", type=int)
def deliveries_retry(delivery_id: int) -> None:
    """Send a delivery again now (manual attempt)."""
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None:
        fail(f"no delivery with id {delivery_id}")
    try:
        attempts_made = retry_delivery(delivery, CLI_ACTOR)
    except RetryRefused as exc:
        fail(str(exc))
    db.session.commit()
    enqueue_deliveries([(delivery_id, attempts_made)])
    click.echo(f"delivery {delivery_id} queued for a manual attempt")


@deliveries_cli.command("fill-event-columns")
@click.option("--batch", type=click.IntRange(1, 100_000), default=None, help="rows per transaction")
@click.option(
    "--pause",
    type=click.FloatRange(0, 100),
    default=0.0,
    show_default=True,
    help="sleep this many times each batch's duration (leave the database to the workers)",
)
@json_option
def deliveries_fill_event_columns(batch, pause, as_json) -> None:
    """Copy each event's type and merchant onto its deliveries written before migration 0011
    (the workers do it too, after their retention purge). Until every delivery has them the
    monitor's merchant, type and category filters join events instead. Safe to stop and run
    again; it goes on with the rows left."""
    from .services.delivery_event_columns import fill_event_columns

    def progress(stats) -> bool:
        if not as_json and stats.batches % 100 == 0:
            click.echo(f"  {stats.rows:,} deliveries filled", err=True)
        return True

    stats = fill_event_columns(batch=batch, on_batch=progress, pause_factor=pause)
    result = {"filled": stats.rows, "batches": stats.batches, "seconds": round(stats.seconds, 1)}
    emit(result, as_json, f"filled {stats.rows:,} deliveries in {stats.seconds:.1f} s")


@events_cli.command("emit")
@click.argument("event_type")
@click.option(
    "--data", "data_json", default=None, help="the event's data (default: the type's example)"
)
@click.option("--merchant", default=None)
@click.option(
    "--url",
    envvar="WEBHOOK_APP_URL",  # var/dev.env sets it to the port `make run` serves on
    default="http://127.0.0.1:5000",
    show_default=True,
    help="the app's URL (env WEBHOOK_APP_URL)",
)
@click.option("--id", "event_id", default=None, help="webhook-id (default: a new one)")
@json_option
def events_emit(event_type, data_json, merchant, url, event_id, as_json) -> None:
    """POST a signed event to the running app, as SoftPOS would."""
    import requests

    from .models import EventType
    from .shared.signing import sign

    if data_json is None:  # the catalog's example: valid under the type's schema
        example = db.session.scalar(
            select(EventType.example_payload).where(EventType.name == event_type)
        )
        data_json = json.dumps(example or {})
    try:
        data = json.loads(data_json)
    except json.JSONDecodeError as exc:
        fail(f"--data is not valid JSON: {exc}")
    keys = current_app.config["SETTINGS"].ingest_keys
    if not keys:
        fail("WEBHOOK_INGEST_SECRET is not set; `make run` prints the development one")
    payload = {"type": event_type, "data": data}
    if merchant:
        payload["merchant_id"] = merchant
    body = json.dumps(payload).encode()
    msg_id = event_id or f"evt_{uuid.uuid4().hex}"
    ts = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(keys[0], msg_id, ts, body),
    }
    try:
        response = requests.post(
            url.rstrip("/") + "/api/v1/events", data=body, headers=headers, timeout=10
        )
    except requests.RequestException as exc:
        fail(f"could not reach {url}: {exc}")
    if response.status_code >= 400:
        fail(f"{response.status_code}: {response.text.strip()}")
    emit(response.json(), as_json, f"{response.status_code} {response.text.strip()}")


@users_cli.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "viewer"]), default="viewer", show_default=True)
@click.option("--password", default=None, help="prompted for when omitted")
def users_create(email: str, role: str, password: str | None) -> None:
    """Create an operator account."""
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user, _ = create_user(email, role, password, CLI_ACTOR)
    except UserError as exc:
        fail(str(exc))
    db.session.commit()
    click.echo(f"user {user.email} created with role {user.role}")


@secrets_cli.command("reencrypt")
def secrets_reencrypt() -> None:
    """Re-encrypt every endpoint secret, custom header value and TOTP secret under the newest
    WEBHOOK_ENCRYPTION_KEYS key."""
    box = current_app.extensions["secret_box"]
    count = 0
    for endpoint in db.session.scalars(select(Endpoint)):
        endpoint.secret_encrypted = box.rotate(endpoint.secret_encrypted)
        if endpoint.previous_secret_encrypted:
            endpoint.previous_secret_encrypted = box.rotate(endpoint.previous_secret_encrypted)
        if endpoint.custom_headers:
            endpoint.custom_headers = {k: box.rotate(v) for k, v in endpoint.custom_headers.items()}
        count += 1
    users = 0
    for user in db.session.scalars(select(User).where(User.totp_secret_encrypted.is_not(None))):
        user.totp_secret_encrypted = box.rotate(user.totp_secret_encrypted)
        users += 1
    db.session.commit()
    from .services.data_protection import reencrypt_events

    events = reencrypt_events()
    click.echo(
        f"re-encrypted the secrets of {count} endpoints and {users} authenticators, "
        f"and the sensitive values of {events} events"
    )


@events_cli.command("purge-merchant")
@click.argument("merchant_id")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@json_option
def events_purge_merchant(merchant_id: str, yes: bool, as_json: bool) -> None:
    """Erase one merchant's events, deliveries and attempts (a data-erasure request)."""
    from .services.data_protection import purge_merchant

    if not yes:
        click.confirm(f"Erase every event of merchant {merchant_id!r} for good?", abort=True)
    result = purge_merchant(merchant_id, CLI_ACTOR)
    text = (
        f"merchant {merchant_id}: {result['events']} events, {result['deliveries']} deliveries "
        f"and {result['attempts']} attempts erased ({result['cancelled']} waiting deliveries "
        f"cancelled first)"
    )
    if result["left"]:
        text += f"; {result['left']} events have a delivery in flight: run this again shortly"
    emit(result, as_json, text)


@tokens_cli.command("create")
@click.argument("email")
@click.option("--name", required=True, help="what the token is for, e.g. onboarding")
@click.option("--scope", type=click.Choice(SCOPES), default=SCOPE_READ, show_default=True)
@json_option
def tokens_create(email: str, name: str, scope: str, as_json: bool) -> None:
    """Create a token for a user; prints it once."""
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        fail(f"no user with email {email}")
    try:
        token, raw = create_token(user, name, scope, CLI_ACTOR)
    except TokenError as exc:
        fail(str(exc))
    db.session.commit()
    emit(
        {"token": raw} | token_dict(token),
        as_json,
        f"token {token.id} {token.name!r} ({token.scope}) for {user.email}\n"
        f"shown once, keep it secret: {raw}",
    )


@tokens_cli.command("list")
@json_option
def tokens_list(as_json: bool) -> None:
    """Every token with its last-used time (never the token)."""
    rows = [token_dict(t) for t in list_tokens()]
    text = "\n".join(
        f"{r['id']:>5}  {r['prefix']}…  {r['scope']:<5}  {r['user']}  {r['name']!r}  "
        f"last used {r['last_used_at'] or 'never'}"
        f"{'  REVOKED ' + r['revoked_at'] if r['revoked_at'] else ''}"
        for r in rows
    )
    emit(rows, as_json, text or "no tokens")


@tokens_cli.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    """Revoke a token at once."""
    token = db.session.get(ApiToken, token_id)
    if token is None:
        fail(f"no token with id {token_id}")
    revoked = revoke_token(token, CLI_ACTOR)
    db.session.commit()
    click.echo(f"token {token_id} {'revoked' if revoked else 'was already revoked'}")


def register_cli(app: Flask) -> None:
    groups = (catalog_cli, endpoints_cli, deliveries_cli, events_cli, users_cli, secrets_cli)
    for group in (*groups, tokens_cli):
        app.cli.add_command(group)
