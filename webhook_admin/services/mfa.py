"""Two-factor authentication: TOTP (RFC 6238, pyotp) with one-time recovery codes.

The TOTP secret is encrypted at rest like the endpoints' signing secrets (SecretBox); a code
is accepted for the current 30-second step or one step either side (clock drift), and only
for a step later than the last one accepted, so a code seen over a shoulder cannot be used
again. Recovery codes carry 80 random bits each and are stored as their SHA-256; using one
is one conditional UPDATE, so two requests cannot both spend it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC

import pyotp
import segno
from sqlalchemy import delete, func, or_, select, update

from ..clock import utcnow
from ..extensions import db
from ..models import ROLE_ADMIN, AppSetting, RecoveryCode, User
from .audit import record_audit
from .endpoint_secrets import secret_box

ISSUER = "SoftPOS Webhooks"
RECOVERY_CODES = 10
REQUIRE_ADMIN_MFA = "require_admin_mfa"


class MfaError(ValueError):
    pass


def _now():
    return utcnow().replace(tzinfo=UTC)


def start_enrolment(user: User) -> str:
    """A new pending secret for this user (not in force until a code confirms it)."""
    if user.mfa_enabled:
        raise MfaError("two-factor authentication is already on; turn it off first")
    secret = pyotp.random_base32()
    user.totp_secret_encrypted = secret_box().encrypt(secret)
    user.totp_last_step = None
    db.session.flush()
    return secret


def pending_secret(user: User) -> str | None:
    if user.mfa_enabled or user.totp_secret_encrypted is None:
        return None
    return secret_box().decrypt(user.totp_secret_encrypted)


def provisioning_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def qr_data_uri(uri: str) -> str:
    """The otpauth:// URI as an SVG QR code in a data: URI (the CSP allows data: images)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


def _matching_step(secret: str, code: str) -> int | None:
    code = "".join((code or "").split())
    if len(code) != 6 or not code.isdigit():
        return None
    totp, now = pyotp.TOTP(secret), _now()
    step = totp.timecode(now)
    for offset in (0, -1, 1):
        if hmac.compare_digest(totp.at(now, counter_offset=offset), code):
            return step + offset
    return None


def _accept_step(user: User, step: int) -> bool:
    """Record `step` as used unless it (or a later one) already was: one conditional UPDATE."""
    result = db.session.execute(
        update(User)
        .where(
            User.id == user.id,
            or_(User.totp_last_step.is_(None), User.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(user, ["totp_last_step"])
    return result.rowcount == 1


def confirm_enrolment(user: User, code: str) -> list[str]:
    """Turn MFA on once a code from the authenticator matches; returns the recovery codes."""
    secret = pending_secret(user)
    if secret is None:
        raise MfaError("start the set-up again: there is no pending authenticator")
    step = _matching_step(secret, code)
    if step is None or not _accept_step(user, step):
        raise MfaError("that code does not match; check the authenticator's clock and retry")
    user.totp_enabled_at = utcnow()
    db.session.flush()
    codes = new_recovery_codes(user)
    record_audit(user.email, "user.mfa_enable", "user", user.id)
    return codes


def verify_totp(user: User, code: str) -> bool:
    if not user.mfa_enabled or user.totp_secret_encrypted is None:
        return False
    step = _matching_step(secret_box().decrypt(user.totp_secret_encrypted), code)
    return step is not None and _accept_step(user, step)


def _hash_code(code: str) -> str:
    normalised = "".join(ch for ch in (code or "").lower() if ch.isalnum())
    return hashlib.sha256(normalised.encode()).hexdigest()


def new_recovery_codes(user: User) -> list[str]:
    """Replace the user's recovery codes with fresh ones; returns them in clear, once."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()
        code = "-".join(raw[i : i + 4] for i in range(0, 16, 4))
        db.session.add(RecoveryCode(user_id=user.id, code_hash=_hash_code(code)))
        codes.append(code)
    db.session.flush()
    return codes


def use_recovery_code(user: User, code: str) -> bool:
    """Spend one unused recovery code of this user (True), or refuse (False)."""
    if not user.mfa_enabled:
        return False
    result = db.session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == _hash_code(code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def recovery_codes_left(user: User) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    )


def reset_mfa(user: User) -> None:
    """Forget the user's authenticator and recovery codes."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    user.totp_secret_encrypted = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.session.flush()


def admin_mfa_required() -> bool:
    setting = db.session.get(AppSetting, REQUIRE_ADMIN_MFA)
    return bool(setting and setting.value.get("on"))


def set_admin_mfa_required(on: bool, actor: str) -> None:
    setting = db.session.get(AppSetting, REQUIRE_ADMIN_MFA)
    before = bool(setting and setting.value.get("on"))
    if setting is None:
        setting = AppSetting(name=REQUIRE_ADMIN_MFA, value={}, updated_by=actor)
        db.session.add(setting)
    setting.value = {"on": bool(on)}
    setting.updated_at, setting.updated_by = utcnow(), actor
    db.session.flush()
    record_audit(
        actor, "settings.require_admin_mfa", "settings", None, {"on": before}, {"on": bool(on)}
    )


def must_enrol(user: User) -> bool:
    """An admin without MFA while it is required for every admin."""
    return user.role == ROLE_ADMIN and not user.mfa_enabled and admin_mfa_required()
