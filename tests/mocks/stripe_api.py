"""A local stand-in for the Stripe API (Checkout Sessions) and Stripe's webhook signatures.

`StripeApiServer` listens on 127.0.0.1 (ephemeral port) and records every request; point the
`stripe` library at it with `stripe.api_base = server.url`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

_ids = itertools.count(1)


def stripe_signature(*, payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header exactly as Stripe builds it."""
    t = int(time.time()) if timestamp is None else timestamp
    signed = f"{t}.".encode() + payload
    v1 = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={t},v1={v1}"


def checkout_event(
    *,
    event_type: str,
    session_id: str,
    amount_total: int,
    org_id: int,
    topup_id: int,
    payment_status: str = "paid",
    event_id: str | None = None,
    currency: str = "usd",
    customer: str | None = None,
    payment_intent: str | None = None,
) -> bytes:
    event = {
        "id": event_id or f"evt_test_{next(_ids)}",
        "object": "event",
        "type": event_type,
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": session_id,
                "object": "checkout.session",
                "mode": "payment",
                "amount_total": amount_total,
                "currency": currency,
                "customer": customer,
                "payment_status": payment_status,
                "client_reference_id": str(topup_id),
                "metadata": {"org_id": str(org_id), "topup_id": str(topup_id)},
                "payment_intent": payment_intent,
            }
        },
    }
    return json.dumps(event).encode()


def _event(event_type: str, obj: dict, event_id: str | None) -> bytes:
    return json.dumps(
        {
            "id": event_id or f"evt_test_{next(_ids)}",
            "object": "event",
            "type": event_type,
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "data": {"object": obj},
        }
    ).encode()


def charge_refunded_event(
    *,
    charge_id: str,
    payment_intent: str | None,
    amount: int,
    amount_refunded: int,
    metadata: dict | None = None,
    event_id: str | None = None,
) -> bytes:
    """`charge.refunded`: a Charge whose `amount_refunded` is the running total (cents)."""
    return _event(
        "charge.refunded",
        {
            "id": charge_id,
            "object": "charge",
            "amount": amount,
            "amount_captured": amount,
            "amount_refunded": amount_refunded,
            "currency": "usd",
            "paid": True,
            "captured": True,
            "refunded": amount_refunded >= amount,
            "payment_intent": payment_intent,
            "metadata": metadata or {},
            "status": "succeeded",
        },
        event_id,
    )


def dispute_event(
    *,
    event_type: str,
    dispute_id: str,
    charge_id: str,
    payment_intent: str | None,
    amount: int,
    status: str,
    reason: str = "fraudulent",
    event_id: str | None = None,
) -> bytes:
    """`charge.dispute.created` / `.closed`: a Dispute naming its charge and amount (cents)."""
    return _event(
        event_type,
        {
            "id": dispute_id,
            "object": "dispute",
            "amount": amount,
            "charge": charge_id,
            "currency": "usd",
            "payment_intent": payment_intent,
            "reason": reason,
            "status": status,
            "is_charge_refundable": False,
            "metadata": {},
        },
        event_id,
    )


class StripeApiServer:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                params = dict(parse_qsl(body, keep_blank_values=True))
                server.requests.append(
                    {"path": self.path, "params": params, "auth": self.headers.get("Authorization")}
                )
                if self.path == "/v1/payment_intents":
                    # Off-session charges: `cus_declined` is declined like a real card would be.
                    if params.get("customer") == "cus_declined":
                        self._send(
                            402,
                            {
                                "error": {
                                    "type": "card_error",
                                    "code": "card_declined",
                                    "message": "Your card was declined.",
                                }
                            },
                        )
                        return
                    self._send(
                        200,
                        {
                            "id": f"pi_test_{next(_ids)}",
                            "object": "payment_intent",
                            "amount": int(params.get("amount", 0)),
                            "currency": params.get("currency"),
                            "customer": params.get("customer"),
                            "status": "succeeded",
                        },
                    )
                    return
                if self.path != "/v1/checkout/sessions":
                    self._send(
                        404, {"error": {"message": "not mocked", "type": "invalid_request_error"}}
                    )
                    return
                session_id = f"cs_test_{next(_ids)}"
                self._send(
                    200,
                    {
                        "id": session_id,
                        "object": "checkout.session",
                        "mode": params.get("mode"),
                        "amount_total": int(
                            params.get("line_items[0][price_data][unit_amount]", 0)
                        ),
                        "currency": params.get("line_items[0][price_data][currency]"),
                        "client_reference_id": params.get("client_reference_id"),
                        "metadata": {
                            k[len("metadata[") : -1]: v
                            for k, v in params.items()
                            if k.startswith("metadata[")
                        },
                        "payment_status": "unpaid",
                        "url": f"https://checkout.stripe.test/pay/{session_id}",
                    },
                )

            def do_GET(self):  # noqa: N802 - http.server's naming
                server.requests.append(
                    {"path": self.path, "params": {}, "auth": self.headers.get("Authorization")}
                )
                if self.path.startswith("/v1/payment_methods"):
                    self._send(
                        200,
                        {
                            "object": "list",
                            "data": [{"id": "pm_test_card", "object": "payment_method"}],
                            "has_more": False,
                            "url": "/v1/payment_methods",
                        },
                    )
                    return
                self._send(404, {"error": {"message": "not mocked"}})

            def _send(self, status: int, data: dict) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> StripeApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
