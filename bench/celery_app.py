"""The Celery peer: `celery -A bench.celery_app worker ...` (broker: BENCH_CELERY_BROKER)."""

from .baselines import celery_app

app = celery_app()
