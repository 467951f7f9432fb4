"""Logged-in sessions for the security tests that go through the pages."""

from __future__ import annotations

from tests.views.conftest import (  # noqa: F401  (shared fixtures)
    admin,
    fresh_login_per_request,
    viewer,
)
