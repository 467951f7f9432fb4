"""API tokens: a user creates their own (shown once), sees when each was last used, revokes
them; an admin sees and revokes every user's."""

from __future__ import annotations

from flask import Blueprint, abort, make_response, render_template, request, url_for
from flask_login import current_user, login_required

from ..auth import actor
from ..extensions import db
from ..models import SCOPES, ApiToken
from ..security_headers import no_store
from ..services.api_tokens import TokenError, create_token, list_tokens, revoke_token
from .common import done

bp = Blueprint("tokens", __name__, url_prefix="/account/tokens")


def page(status: int = 200, **context):
    tokens = list_tokens(None if current_user.is_admin else current_user)
    body = render_template("account/tokens.html", tokens=tokens, scopes=SCOPES, **context)
    return no_store(make_response(body, status))


@bp.get("")
@login_required
def index():
    return page()


@bp.post("")
@login_required
def create():
    name, scope = request.form.get("name", ""), request.form.get("scope", "read")
    try:
        token, raw = create_token(current_user, name, scope, actor())
    except TokenError as exc:
        db.session.rollback()
        return page(422, errors=exc.errors, name=name)
    db.session.commit()
    return page(201, created=token, raw_token=raw)


@bp.post("/<int:token_id>/revoke")
@login_required
def revoke(token_id: int):
    token = db.session.get(ApiToken, token_id)
    if token is None:
        abort(404)
    if token.user_id != current_user.id and not current_user.is_admin:
        abort(403)
    revoke_token(token, actor())
    db.session.commit()
    return done(f"Token {token.name} revoked.", url_for("tokens.index"))
