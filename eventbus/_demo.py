"""The storefront demo: ``python -m eventbus demo``.

It is the example of Inngest's "Sending events" page, run in-process: three events in one
send, two functions on the checkout event (fan-out), and a second checkout with the same
``id`` (deduplicated: stored, but it starts no run).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import eventbus


def build_client(clock: eventbus.Clock | None = None) -> eventbus.Inngest:
    """The storefront app: a client and its functions."""
    client = eventbus.Inngest(app_id="acme-storefront-app", clock=clock)
    checkout = eventbus.TriggerEvent(event="storefront/cart.checkout.completed")

    @client.create_function(fn_id="send-receipt", trigger=checkout)
    async def send_receipt(ctx: eventbus.Context) -> dict[str, Any]:
        account = ctx.event.data["account"]
        return {"emailed": account["email"], "cart": ctx.event.data["cartId"]}

    @client.create_function(fn_id="update-inventory", trigger=checkout)
    async def update_inventory(ctx: eventbus.Context) -> dict[str, Any]:
        return {"reserved": len(ctx.event.data["itemIds"])}

    @client.create_function(
        fn_id="track-coupon",
        trigger=eventbus.TriggerEvent(
            event="storefront/coupon.used", expression="event.data.discount >= 10"
        ),
    )
    async def track_coupon(ctx: eventbus.Context) -> dict[str, Any]:
        return {"coupon": ctx.event.data["code"], "discount": ctx.event.data["discount"]}

    @client.create_function(
        fn_id="welcome-loyalty-member",
        trigger=eventbus.TriggerEvent(event="storefront/loyalty.program.joined"),
    )
    async def welcome(ctx: eventbus.Context) -> str:
        return f"welcome, account {ctx.event.data['accountId']}"

    return client


CHECKOUT = {
    "id": "cart-checkout-completed-ed12c8bde",
    "name": "storefront/cart.checkout.completed",
    "data": {
        "cartId": "ed12c8bde",
        "itemIds": ["9f08sdh84", "sdf098487", "0fnun498n"],
        "account": {"id": 123, "email": "test@example.com"},
    },
}


async def run_demo(out: Callable[[str], None] = print) -> eventbus.Inngest:
    """Send the storefront events, wait for the runs, and print what happened."""
    client = build_client()
    async with client:
        ids = await client.send(
            [
                CHECKOUT,
                {"name": "storefront/coupon.used", "data": {"code": "SAVE20", "discount": 20}},
                {"name": "storefront/loyalty.program.joined", "data": {"accountId": 123}},
            ]
        )
        out("sent 3 events in one request:")
        for event_id in ids:
            event = client.get_event(event_id)
            assert event is not None
            out(f"  {event_id}  {event.name}")
        # The same checkout again (a double click): same id, so no function runs again.
        (dup_id,) = await client.send(CHECKOUT)
        out("sent the checkout again with the same id:")
        out(f"  {dup_id}  deduplicated={client.get_event(dup_id).deduplicated}")  # type: ignore[union-attr]
        await client.settle()

        out("runs:")
        for event_id in [*ids, dup_id]:
            event = client.get_event(event_id)
            assert event is not None
            runs = client.runs(event_id=event_id)
            if not runs:
                out(f"  {event.name}: no run" + (" (deduplicated)" if event.deduplicated else ""))
            for run in runs:
                out(f"  {event.name} -> {run.function_id}: {run.status.value} {run.output!r}")
        finished = client.events(name="inngest/function.finished")
        out(f"system events: {len(finished)} x inngest/function.finished")
    return client
