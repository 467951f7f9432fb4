"""The fresh-queue dispatcher reads the delivery id from the job id
(`<prefix>_delivery-<id>-<n>`)."""

from __future__ import annotations

import pytest

from webhook_admin.delivery.fresh_dispatcher import delivery_id_of
from webhook_admin.queues import job_id_for


@pytest.mark.parametrize("attempts", [0, 3, None])
def test_reads_back_the_delivery_id_of_every_job_id_we_make(app, attempts):
    job_id = job_id_for(4217, attempts)
    assert job_id.startswith(app.config["SETTINGS"].queue_prefix + "_delivery-4217-")
    assert delivery_id_of(job_id) == 4217


@pytest.mark.parametrize("job_id", ["wa-1_delivery-9-0", "delivery-9-0", "a-b_c_delivery-9-x1f"])
def test_reads_the_delivery_id_after_any_prefix(job_id):
    assert delivery_id_of(job_id) == 9


@pytest.mark.parametrize(
    "job_id",
    ["bulk-retry-1", "delivery-x-0", "delivery-12", "", "wa-1delivery-9-0", "delivery-9-0-1"],
)
def test_anything_else_is_not_a_delivery(job_id):
    assert delivery_id_of(job_id) is None


def test_a_popped_delivery_waiting_behind_its_endpoint_cap_is_not_resent_by_the_sweeper(
    app, add_endpoint, post_event
):
    """The dispatcher pops jobs faster than a capped endpoint takes them; while they wait
    unclaimed the sweeper must see them as live (it used to queue every one again), and
    their job hashes must not outlive the staleness window by much."""
    from datetime import timedelta

    from sqlalchemy import update

    from webhook_admin.delivery.fresh_dispatcher import POPPED_JOB_TTL_SECONDS, FreshDispatcher
    from webhook_admin.delivery.runner import DeliveryRunner
    from webhook_admin.delivery.sweeper import sweep_once
    from webhook_admin.extensions import db
    from webhook_admin.models import Delivery
    from webhook_admin.queues import FRESH, get_redis, queue_name

    add_endpoint("http://127.0.0.1:9/hook")
    for n in range(3):
        post_event(event_id=f"evt_parked_{n}")
    db.session.execute(
        update(Delivery).values(next_attempt_at=Delivery.next_attempt_at - timedelta(seconds=30))
    )
    db.session.commit()
    redis = get_redis()
    dispatcher = FreshDispatcher(DeliveryRunner(app, threads=1), redis, queue_name(FRESH))

    job_ids = dispatcher._take_batch()

    assert len(job_ids) == 3
    assert sweep_once()["requeued"] == 0
    for job_id in job_ids:
        assert redis.hget(f"rq:job:{job_id}", "status") == b"started"
        assert 0 < redis.ttl(f"rq:job:{job_id}") <= POPPED_JOB_TTL_SECONDS
