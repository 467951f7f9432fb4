"""Code N+1 of the example migration (tests/deploy/example_migration): today's code plus the
one change that release makes to the model, `Delivery.priority`, which its ingest writes (its
default, 1) and its workers read with every delivery they load. Run as a real process:

    python -m tests.deploy.next_release worker [worker.py arguments]
    python -m tests.deploy.next_release web PORT

Never imported by the test process itself: its models stay those of code N."""

from __future__ import annotations

import sys

from sqlalchemy import SmallInteger
from sqlalchemy.orm import mapped_column

PRIORITY_WRITTEN_BY_N1 = 1


def install() -> None:
    """What release N+1's models/event.py would declare on Delivery."""
    from webhook_admin.models import Delivery

    Delivery.priority = mapped_column(
        SmallInteger, nullable=False, default=PRIORITY_WRITTEN_BY_N1, server_default="0"
    )


def main(argv: list[str]) -> int:
    install()
    if argv[0] == "worker":
        sys.argv = ["worker.py", *argv[1:]]
        import worker

        return worker.main(argv[1:])
    from werkzeug.serving import make_server

    from webhook_admin import create_app

    server = make_server("127.0.0.1", int(argv[1]), create_app(), threaded=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
