"""The fresh-queue dispatcher reads the delivery id from the job id (`delivery-<id>-<n>`)."""

from __future__ import annotations

import pytest

from webhook_admin.delivery.fresh_dispatcher import delivery_id_of
from webhook_admin.queues import job_id_for


@pytest.mark.parametrize("attempts", [0, 3, None])
def test_reads_back_the_delivery_id_of_every_job_id_we_make(attempts):
    assert delivery_id_of(job_id_for(4217, attempts)) == 4217


@pytest.mark.parametrize("job_id", ["bulk-retry-1", "delivery-x-0", "delivery-12", ""])
def test_anything_else_is_not_a_delivery(job_id):
    assert delivery_id_of(job_id) is None
