"""One pass of a worker's maintenance thread (sweeper, retention) in its own app context.

A pass that fails must never kill the worker: Redis being away skips it with a warning, any
other error is logged and rolled back, and the next pass tries again."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask
from redis.exceptions import RedisError

from ..extensions import db


def run_guarded_pass(app: Flask, log: logging.Logger, what: str, step: Callable[[], object]):
    with app.app_context():
        try:
            step()
        except RedisError as exc:
            log.warning("%s skipped, Redis unavailable: %s", what, exc)
        except Exception:
            log.exception("%s failed", what)
            db.session.rollback()
        finally:
            db.session.remove()
