"""factory-boy factories for webhook endpoints, events and deliveries."""

from __future__ import annotations

import factory
from django.utils import timezone

from apps.webhooks import signing
from apps.webhooks.models import Delivery, Endpoint, Event
from tests.factories import AccountFactory


class EndpointFactory(factory.django.DjangoModelFactory):
    """An endpoint row as the API would create it (no URL policy check: that is the point of
    building rows directly, e.g. to simulate a host that re-resolved after creation)."""

    class Meta:
        model = Endpoint

    account = factory.SubFactory(AccountFactory)
    # Sandbox by default, like ContactFactory and the ``api`` client (an sk_test_ key).
    sandbox = True
    url = factory.Sequence(lambda n: f"http://127.0.0.1:9/hook/{n}")
    events = factory.LazyFunction(lambda: list(Event.TYPES))
    events_key = factory.LazyAttribute(lambda o: ",".join(sorted(o.events)))
    secret = factory.LazyFunction(signing.secret_generate)


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    account = factory.SubFactory(AccountFactory)
    sandbox = True
    type = Event.CONTACT_ENRICHED
    created_at = factory.LazyFunction(timezone.now)
    body = factory.LazyAttribute(
        lambda o: f'{{"id":"{o.id}","type":"{o.type}","created_at":"x","data":{{}}}}'
    )
    id = factory.Sequence(lambda n: f"evt_test{n:020d}")


class DeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Delivery

    endpoint = factory.SubFactory(EndpointFactory)
    account = factory.LazyAttribute(lambda o: o.endpoint.account)
    event = factory.SubFactory(
        EventFactory,
        account=factory.SelfAttribute("..account"),
        sandbox=factory.SelfAttribute("..endpoint.sandbox", default=True),
    )
    next_attempt_at = factory.LazyFunction(timezone.now)
    published_at = factory.LazyFunction(timezone.now)
