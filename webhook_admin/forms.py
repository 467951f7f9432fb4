"""Forms: WTForms for the simple ones, a small parser for the endpoint form's dynamic rows."""

from __future__ import annotations

from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import (
    BooleanField,
    EmailField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional, Regexp

from .models import ROLES
from .services.endpoints import EndpointInput

EVENT_TYPE_NAME = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=255)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class CodeForm(FlaskForm):
    code = StringField("Code", validators=[DataRequired(), Length(max=64)])


class ChangePasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=1024)])
    new = PasswordField("New password", validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField("New password again", validators=[DataRequired(), Length(max=1024)])


class PasswordConfirmForm(FlaskForm):
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class InviteUserForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=255)])
    role = SelectField("Role", choices=list(ROLES), default="viewer")


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=list(ROLES))


class CategoryForm(FlaskForm):
    name = StringField("Category name", validators=[DataRequired(), Length(max=80)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=2000)])


class EventTypeForm(FlaskForm):
    name = StringField(
        "Event type name",
        validators=[
            DataRequired(),
            Length(max=120),
            Regexp(EVENT_TYPE_NAME, message="use dotted lower-case names like refund.created"),
        ],
    )
    category = SelectField("Category", choices=[])
    description = TextAreaField("Description", validators=[Optional(), Length(max=2000)])
    trigger_condition = TextAreaField(
        "When it fires (for receivers' developers)", validators=[Optional(), Length(max=2000)]
    )
    example_payload = TextAreaField("Example payload (JSON)", validators=[Optional()])
    json_schema = TextAreaField("JSON Schema of data (Draft 2020-12)", validators=[Optional()])
    archived = BooleanField("Archived")
    expires_after_seconds = IntegerField(
        "Delivery deadline (seconds after the event occurred; empty: none)",
        validators=[Optional()],
    )


def parse_endpoint_form(form: MultiDict) -> tuple[EndpointInput, dict[str, str]]:
    """Read the add/edit webhook form; errors the service cannot see (shape) come back here."""
    errors: dict[str, str] = {}
    category = (form.get("category") or "").strip() or None
    all_events = [v for v in form.getlist("all_events") if v]
    all_category_events = False
    if all_events:
        if category is None and len(all_events) == 1:
            category = all_events[0]
        if all_events != [category]:
            errors["event_types"] = "'All events' can only be chosen for the webhook's category"
        all_category_events = True
    headers: dict[str, str] = {}
    for name, value in zip(form.getlist("header_name"), form.getlist("header_value"), strict=False):
        if name.strip():
            headers[name.strip()] = value.strip()
        elif value.strip():
            errors["custom_headers"] = "a header value needs a name"
    timeout = None
    raw_timeout = (form.get("timeout_seconds") or "").strip()
    if raw_timeout:
        try:
            timeout = float(raw_timeout)
        except ValueError:
            errors["timeout_seconds"] = f"timeout must be a number of seconds, got {raw_timeout!r}"
    data = EndpointInput(
        url=(form.get("url") or "").strip(),
        event_types=[v for v in form.getlist("event_types") if v],
        category=category,
        all_category_events=all_category_events,
        description=(form.get("description") or "").strip(),
        merchant_id=(form.get("merchant_id") or "").strip() or None,
        custom_headers=headers,
        timeout_seconds=timeout,
    )
    return data, errors
