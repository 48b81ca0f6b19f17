"""Drives Herald through a client generated from its OpenAPI document by
openapi-python-client: the proof that the document is useful, not only valid.

Run by tests/it/suite/openapi_client.rs with HERALD_URL and HERALD_KEY set and the
generated package on PYTHONPATH."""

import os

from herald_client import AuthenticatedClient
from herald_client.api.deliveries import list_delivery_events
from herald_client.api.events import create_event
from herald_client.api.webhooks import create_webhook
from herald_client.models import ErrorBody, EventIn, EventInData, EventOut, ListOutDeliveryOut, WebhookIn, WebhookOut

client = AuthenticatedClient(base_url=os.environ["HERALD_URL"], token=os.environ["HERALD_KEY"])

webhook = create_webhook.sync(
    client=client,
    body=WebhookIn(url="https://example.com/generated-client", event_types=["order.*"]),
)
assert isinstance(webhook, WebhookOut), webhook
assert webhook.signing_secret.startswith("whsec_"), webhook

event = create_event.sync(
    client=client,
    body=EventIn(event_type="order.filled", data=EventInData.from_dict({"order_id": "o_42"})),
)
assert isinstance(event, EventOut), event
assert event.deliveries == 1, event

deliveries = list_delivery_events.sync(client=client, webhook_id=webhook.id, limit=10)
assert isinstance(deliveries, ListOutDeliveryOut), deliveries
assert [d.event_id for d in deliveries.data] == [event.id], deliveries

refused = create_event.sync(
    client=client,
    body=EventIn(event_type="order.nope", data=EventInData.from_dict({})),
)
assert isinstance(refused, ErrorBody), refused
assert refused.error.code == "unknown_event_type" and refused.error.param == "event_type", refused

print("generated client: webhook", webhook.id, "event", event.id, "delivery", deliveries.data[0].id)
