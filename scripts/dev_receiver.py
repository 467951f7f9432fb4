"""A local webhook receiver for trying webhook-admin out: verifies and prints each delivery.

    .venv/bin/python scripts/dev_receiver.py --secret whsec_... [--port 8765]

It is also the shortest example of what a receiver must do: verify the Standard Webhooks
signature over the raw body, answer 2xx quickly, and deduplicate on `webhook-id`."""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

TOLERANCE = 5 * 60


def verify(secret: str, headers, body: bytes) -> bool:
    """Plain-hmac verification, no library needed."""
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "0")
    if abs(time.time() - int(timestamp)) > TOLERANCE:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [s.split(",", 1)[1] for s in headers.get("webhook-signature", "").split() if "," in s]
    return any(hmac.compare_digest(expected, o) for o in offered)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--secret", required=True, help="the endpoint's whsec_ signing secret")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    seen: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if not verify(args.secret, self.headers, body):
                self.send_response(401)
                self.end_headers()
                print("rejected: bad signature")
                return
            event_id = self.headers["webhook-id"]
            duplicate = event_id in seen
            seen.add(event_id)
            event = json.loads(body)
            print(f"{'duplicate ' if duplicate else ''}{event['type']} {event_id}: {event['data']}")
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    print(f"listening on http://127.0.0.1:{args.port}/ (Ctrl-C to stop)")
    HTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
