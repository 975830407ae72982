"""The shared HTTP world plus plans, features and subscriptions made through the models."""

import datetime
import uuid
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from apps.accounts.models import User
from apps.subscriptions.models import Feature, PlanFeature, Subscription, SubscriptionPlan
from realtime import connections
from tests.apps.api_world import World, build_world


@pytest.fixture
def world(db: None) -> World:
    return build_world()


def make_plan(**fields: Any) -> SubscriptionPlan:
    fields.setdefault("plan_name", f"Plan {uuid.uuid4().hex[:6]}")
    fields.setdefault("price_per_unit", Decimal("2.50"))
    fields.setdefault("minimum_price", Decimal("20.00"))
    return SubscriptionPlan.objects.create(**fields)


def make_feature(**fields: Any) -> Feature:
    fields.setdefault("feature_name", f"Feature {uuid.uuid4().hex[:6]}")
    fields.setdefault("feature_category", "reports")
    return Feature.objects.create(**fields)


def enable(
    plan: SubscriptionPlan, feature: Feature, *, usage_limit: int | None = None, is_enabled: bool = True
) -> PlanFeature:
    return PlanFeature.objects.create(plan=plan, feature=feature, usage_limit=usage_limit, is_enabled=is_enabled)


def subscribe(user: User, plan: SubscriptionPlan, **fields: Any) -> Subscription:
    fields.setdefault("start_date", datetime.date(2026, 1, 1))
    fields.setdefault("unit_count", 10)
    fields.setdefault("current_price", Decimal("25.00"))
    return Subscription.objects.create(user=user, plan=plan, **fields)


@pytest.fixture
def redis_down() -> Iterator[None]:
    """Point the realtime core at a port where no Redis listens."""
    original = connections.current_settings()
    connections.configure(replace(original, redis_url="redis://127.0.0.1:1/0", redis_socket_timeout=0.5))
    yield
    connections.configure(original)
