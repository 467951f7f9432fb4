"""What every management route shares: the bearer token, scopes, JSON body checks, the
Idempotency-Key replay, one commit per request, and the schemas that validate and document.

`api(...)` wraps a view: authenticate, check the scope against the user's current role,
refuse bodies we cannot store, replay or record an Idempotency-Key, validate with spectree
(pydantic), run the view, then commit once and run what must follow the commit (enqueueing)."""

from __future__ import annotations

import hashlib
import json as jsonlib
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from functools import wraps

from cryptography.fernet import InvalidToken
from flask import Response, g, make_response, request
from spectree import Response as Responses
from spectree import SpecTree
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ...clock import utcnow
from ...extensions import db
from ...models import IdempotencyRecord
from ...services.api_tokens import Principal, authenticate
from ...services.endpoint_secrets import secret_box
from ...services.json_limits import JSONLimitError, check, loads
from .problems import ApiProblem
from .schemas import Problem

log = logging.getLogger(__name__)
IDEMPOTENCY_TTL = timedelta(hours=24)
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
REPLAYED_HEADER = "Idempotent-Replayed"
KEPT_HEADERS = ("Content-Type", "Location", "Cache-Control")
READ_ERRORS = (401, 403, 404, 422, 429, 500, 503)
WRITE_ERRORS = (400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503)


def _validation_problem(req, resp, error, instance, model_adapter) -> None:
    """spectree's hook after validation: our problem+json instead of its own answer."""
    if error is None:
        return
    errors = [
        {"field": ".".join(str(part) for part in item["loc"]) or "body", "message": item["msg"]}
        for item in error.errors(include_url=False, include_input=False)
    ]
    raise ApiProblem(422, "the request does not match the schema", errors)


def _response_problem(req, resp, error, instance, model_adapter) -> None:
    """spectree's hook after the view: an answer the document does not allow is never sent
    (a logged 500 problem instead of spectree's own JSON)."""
    if error is not None:
        log.error("management API answer does not match its schema path=%s: %s", req.path, error)
        raise ApiProblem(500, "the answer did not match the API's schema; it was logged")


spec = SpecTree(
    "flask",
    mode="strict",
    page_templates={},
    title="webhook-admin management API",
    version="1.0.0",
    validation_error_status=422,
    validation_error_model=Problem,
    before=_validation_problem,
    after=_response_problem,
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
)


def principal() -> Principal:
    return g.api_principal


def actor() -> str:
    return principal().actor


def after_commit(action: Callable[[], object]) -> None:
    """Run `action` once the request's changes are committed (e.g. enqueue deliveries:
    a worker must find them in the database)."""
    g.api_after_commit.append(action)


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _authenticate(admin: bool) -> Principal:
    found = authenticate(bearer_token())
    if found is None:
        db.session.rollback()
        raise ApiProblem(401, "send a valid API token: Authorization: Bearer whadm_...")
    db.session.commit()  # its last-used time
    if admin and not found.can_write:
        why = (
            "this token has the read scope"
            if found.token.scope != "admin"
            else f"{found.user.email} is a {found.user.role} now"
        )
        raise ApiProblem(403, f"{why}: it may not do this")
    return found


def _check_text(value: str, where: str) -> None:
    if "\x00" in value:
        raise ApiProblem(
            422, f"{where} contains a NUL character", [{"field": where, "message": "NUL"}]
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiProblem(
            422, f"{where} is not valid UTF-8", [{"field": where, "message": "not UTF-8"}]
        ) from None


def _check_query() -> None:
    for name, value in request.args.items(multi=True):
        _check_text(name, "query")
        _check_text(value, name)


def _check_body(takes_body: bool) -> bytes:
    """The raw body once checked: JSON we can store (no NaN, lone surrogates, NUL, huge
    integers, deep nesting), an object, and only where the operation takes one."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return b""
    if request.mimetype != "application/json":
        raise ApiProblem(415, f"content-type must be application/json, got {request.mimetype!r}")
    try:
        value = loads(raw)
        check(value)
    except JSONLimitError as exc:
        raise ApiProblem(400, str(exc)) from None
    if not isinstance(value, dict):
        raise ApiProblem(
            422, "the body must be a JSON object", [{"field": "body", "message": "not an object"}]
        )
    if not takes_body and value:
        errors = [{"field": name, "message": "unknown field"} for name in value]
        raise ApiProblem(422, "this operation takes no body", errors)
    return raw


def _fingerprint(raw: bytes) -> str:
    """Method, path and body: the same JSON however its keys are ordered or spaced."""
    try:
        body = jsonlib.dumps(jsonlib.loads(raw), sort_keys=True) if raw else ""
    except ValueError:
        body = raw.decode("utf-8", "replace")
    text = f"{request.method} {request.path}?{request.query_string.decode('latin-1')} {body}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None or request.method not in ("POST", "PATCH"):
        return None
    if not IDEMPOTENCY_KEY.match(key):
        raise ApiProblem(400, "Idempotency-Key must be 1 to 255 visible ASCII characters")
    return key


def _replay(token_id: int, key: str, fingerprint: str) -> Response | None:
    record = db.session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.token_id == token_id, IdempotencyRecord.key == key
        )
    )
    if record is None:
        return None
    if record.created_at < utcnow() - IDEMPOTENCY_TTL:
        db.session.delete(record)
        db.session.flush()
        return None
    if record.fingerprint != fingerprint:
        raise ApiProblem(
            422,
            "this Idempotency-Key was used with another request; use a new key",
            [{"field": "Idempotency-Key", "message": "reused with another body"}],
        )
    try:
        body = secret_box().decrypt(record.body)
    except InvalidToken:  # kept under a key since retired (WEBHOOK_ENCRYPTION_KEYS)
        log.warning("idempotency record unreadable, key reused token_id=%s", token_id)
        db.session.delete(record)
        db.session.flush()
        return None
    response = Response(body, status=record.status, headers=record.headers)
    response.headers[REPLAYED_HEADER] = "true"
    return response


def _record(token_id: int, key: str, fingerprint: str, response: Response) -> None:
    """Keep the answer; the token's records past 24 h (this key's among them) go."""
    db.session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.token_id == token_id,
            (IdempotencyRecord.key == key)
            | (IdempotencyRecord.created_at < utcnow() - IDEMPOTENCY_TTL),
        )
    )
    db.session.add(
        IdempotencyRecord(
            token_id=token_id,
            key=key,
            fingerprint=fingerprint,
            status=response.status_code,
            # Encrypted like endpoint secrets: a create or rotate answer carries one.
            body=secret_box().encrypt(response.get_data(as_text=True)),
            headers={h: response.headers[h] for h in KEPT_HEADERS if h in response.headers},
        )
    )


def _run(view, args, kwargs, key: str | None, fingerprint: str, token_id: int) -> Response:
    g.api_after_commit = []
    try:
        response = make_response(view(*args, **kwargs))
    except BaseException:
        db.session.rollback()
        raise
    if response.status_code >= 400:
        db.session.rollback()
        return response
    if key is not None:
        _record(token_id, key, fingerprint, response)
    try:
        db.session.commit()
    except IntegrityError:
        # The same key raced us and won: nothing of ours is kept, answer as it did.
        db.session.rollback()
        replayed = _replay(token_id, key, fingerprint) if key else None
        if replayed is None:
            raise
        return replayed
    for action in g.api_after_commit:
        action()
    return response


def api(
    *,
    admin: bool = False,
    query=None,
    json=None,
    resp: dict | None = None,
    tags: tuple[str, ...] = (),
):
    """Decorate a management view (see the module docstring). `admin`: needs the admin
    scope and an admin user; `resp`: status -> response model for the document."""
    writes = admin or json is not None
    errors = WRITE_ERRORS if writes else READ_ERRORS
    codes = {f"HTTP_{status}": model for status, model in (resp or {}).items()}
    codes.update({f"HTTP_{status}": Problem for status in errors})

    def decorate(view):
        validated = spec.validate(query=query, json=json, resp=Responses(**codes), tags=list(tags))(
            view
        )

        @wraps(validated)
        def wrapper(*args, **kwargs):
            found = _authenticate(admin)
            g.api_principal = found
            _check_query()
            raw = _check_body(json is not None) if request.method in ("POST", "PATCH") else b""
            key = _idempotency_key()
            fingerprint = _fingerprint(raw)
            if key is not None:
                replayed = _replay(found.token.id, key, fingerprint)
                if replayed is not None:
                    db.session.rollback()
                    return replayed
            return _run(validated, args, kwargs, key, fingerprint, found.token.id)

        return wrapper

    return decorate
