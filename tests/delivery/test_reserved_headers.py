"""One list of the header names the sender owns (shared/headers.py): the envelope sets exactly
its part, and a custom header may use none of them."""

from __future__ import annotations

import pytest

from webhook_admin.delivery.envelope import build_request
from webhook_admin.services.endpoints import validate_custom_headers
from webhook_admin.shared.headers import ENVELOPE_HEADERS, RESERVED_HEADERS, TRANSPORT_HEADERS

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_the_envelope_sets_exactly_the_envelope_headers_and_a_custom_one_beside_them():
    request = build_request("evt_1", b"{}", [SECRET], {"X-Team": "payments"}, 1_700_000_000)
    names = {name.lower() for name in request.headers}
    assert names - {"x-team"} == ENVELOPE_HEADERS
    assert RESERVED_HEADERS == ENVELOPE_HEADERS | TRANSPORT_HEADERS


@pytest.mark.parametrize("name", sorted(RESERVED_HEADERS))
def test_no_custom_header_may_take_a_reserved_name_in_any_case(name):
    for spelling in (name, name.upper(), name.title()):
        problem = validate_custom_headers({spelling: "x"})
        assert problem == f"{spelling!r} is set by the sender and cannot be overridden"
