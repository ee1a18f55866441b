"""Domain events: CloudEvents 1.0, a transactional outbox, and an event bus chosen by URL.

A service wires it like this::

    # models.py: the outbox table joins the service's own metadata (and migrations)
    outbox = Outbox(ServiceBase.metadata)

    # repository / service code, inside the request's session
    await outbox.add(session, CloudEvent(source="/inwire/synthex",
                                         type="inwire.synthex.dataset.created",
                                         subject=dataset.id, data={...},
                                         inwireorg=principal.org))

    # app lifespan
    bus = open_event_bus(settings.events_url)
    relay = OutboxRelay(db, bus, outbox)
    relay.start()
    ...
    await relay.stop()
    await bus.close()

and a consumer (FlowForge, Observe, Stream) reads with ``bus.consume("flowforge-triggers",
handler, "inwire.synthex.")`` or ``async with bus.subscribe(...) as sub``. Delivery is at
least once everywhere: consumers deduplicate on ``event.id``.
"""

from inwire.kit.events.bus import (
    Delivery,
    EventBus,
    Handler,
    Start,
    Subscription,
    TypeFilter,
    open_event_bus,
    retry_delay,
)
from inwire.kit.events.cloudevent import CloudEvent
from inwire.kit.events.outbox import Outbox, OutboxRelay, outbox_table

__all__ = [
    "CloudEvent",
    "Delivery",
    "EventBus",
    "Handler",
    "Outbox",
    "OutboxRelay",
    "Start",
    "Subscription",
    "TypeFilter",
    "open_event_bus",
    "outbox_table",
    "retry_delay",
]
