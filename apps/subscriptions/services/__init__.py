"""Writes of plans, features, subscriptions, usage and pricing recommendations.

Each write runs in one transaction and calls the drops of `apps/subscriptions/caches.py`
for what it wrote, so the seed's caches are dropped after the commit. Callers check
visibility first (`selectors.access_*`); the services check what the caller may change.

Rules:
- plans and features: admins write, everyone authenticated reads;
- a landlord or property manager subscribes themselves to an active, non-custom plan;
  an admin subscribes any active landlord or property manager to any active plan;
- a user has at most one current (active or trial) subscription: a second one is a 409.
  Writes that could create one lock the user's row first (`FOR NO KEY UPDATE`), so two
  concurrent requests cannot both pass the check;
- `current_price` = max(minimum_price, price_per_unit * unit_count) of the plan (a
  missing price counts as 0), unless an admin sets it;
- feature usage counts in total (the seed has no billing period): a use is refused with
  403 when the caller's plan does not enable the feature and with 409 `conflict`
  ("usage limit reached") when `currentUsage` has reached `usageLimit`.

One module per resource, everything importable from here (`from apps.subscriptions import services`):

- `catalog.py`: plans, plan features, features and feature usage;
- `subscriptions.py`: subscriptions and their price;
- `recommendations.py`: pricing recommendations;
- `periods.py`: the end of a subscription's period (expiry, auto-renewal, the expiry notice: the daily job's writes);
- `admin_writes.py`: the admin site's saves and deletes;
- `shared.py`: the errors and helpers they share.
"""

from apps.subscriptions.services.admin_writes import (
    feature_admin_delete,
    feature_admin_save,
    plan_admin_delete,
    plan_admin_save,
    subscription_admin_delete,
    subscription_admin_save,
    usage_admin_delete,
    usage_admin_save,
)
from apps.subscriptions.services.catalog import (
    DUPLICATE_FEATURES,
    FEATURE_FIELDS,
    FEATURE_NOT_ENABLED,
    PLAN_FIELDS,
    UNKNOWN_FEATURES,
    USAGE_LIMIT_REACHED,
    feature_create,
    feature_delete,
    feature_update,
    plan_create,
    plan_deactivate,
    plan_features_set,
    plan_update,
    usage_record,
)
from apps.subscriptions.services.periods import (
    subscription_expiry_notice,
    subscription_period_end,
)
from apps.subscriptions.services.recommendations import (
    ALREADY_APPLIED,
    NO_CURRENT_SUBSCRIPTION,
    ONLY_OWNER_APPLIES,
    RECOMMENDATION_EXPIRED,
    RECOMMENDED_PLAN_UNAVAILABLE,
    TOO_MANY_UNITS_FOR_PLAN,
    UNKNOWN_USER,
    recommendation_apply,
    recommendation_create,
)
from apps.subscriptions.services.shared import (
    ADMIN_ONLY,
    forbidden,
)
from apps.subscriptions.services.subscriptions import (
    ADMIN_ONLY_FIELDS,
    ALREADY_CANCELLED,
    ALREADY_SUBSCRIBED,
    CANNOT_CANCEL_EXPIRED,
    CANNOT_SUBSCRIBE,
    CENT,
    CUSTOM_PLAN_ADMIN_ONLY,
    END_BEFORE_START,
    MAX_PRICE,
    NOT_CURRENT,
    PLAN_NOT_AVAILABLE,
    PRICE_TOO_LARGE,
    SUBSCRIBE_FOR_OTHERS,
    SUBSCRIBER_NOT_ELIGIBLE,
    SUBSCRIBER_TYPES,
    SUBSCRIPTION_ADMIN_FIELDS,
    SUBSCRIPTION_OWNER_FIELDS,
    TOO_MANY_UNITS,
    subscription_cancel,
    subscription_create,
    subscription_price,
    subscription_update,
)

__all__ = [
    "ADMIN_ONLY",
    "ADMIN_ONLY_FIELDS",
    "ALREADY_APPLIED",
    "ALREADY_CANCELLED",
    "ALREADY_SUBSCRIBED",
    "CANNOT_CANCEL_EXPIRED",
    "CANNOT_SUBSCRIBE",
    "CENT",
    "CUSTOM_PLAN_ADMIN_ONLY",
    "DUPLICATE_FEATURES",
    "END_BEFORE_START",
    "FEATURE_FIELDS",
    "FEATURE_NOT_ENABLED",
    "MAX_PRICE",
    "NOT_CURRENT",
    "NO_CURRENT_SUBSCRIPTION",
    "ONLY_OWNER_APPLIES",
    "PLAN_FIELDS",
    "PLAN_NOT_AVAILABLE",
    "PRICE_TOO_LARGE",
    "RECOMMENDATION_EXPIRED",
    "RECOMMENDED_PLAN_UNAVAILABLE",
    "SUBSCRIBER_NOT_ELIGIBLE",
    "SUBSCRIBER_TYPES",
    "SUBSCRIBE_FOR_OTHERS",
    "SUBSCRIPTION_ADMIN_FIELDS",
    "SUBSCRIPTION_OWNER_FIELDS",
    "TOO_MANY_UNITS",
    "TOO_MANY_UNITS_FOR_PLAN",
    "UNKNOWN_FEATURES",
    "UNKNOWN_USER",
    "USAGE_LIMIT_REACHED",
    # the admin site's writes
    "feature_admin_delete",
    "feature_admin_save",
    "feature_create",
    "feature_delete",
    "feature_update",
    "forbidden",
    "plan_admin_delete",
    "plan_admin_save",
    "plan_create",
    "plan_deactivate",
    "plan_features_set",
    "plan_update",
    "recommendation_apply",
    "recommendation_create",
    "subscription_admin_delete",
    "subscription_admin_save",
    "subscription_cancel",
    "subscription_create",
    "subscription_expiry_notice",
    "subscription_period_end",
    "subscription_price",
    "subscription_update",
    "usage_admin_delete",
    "usage_admin_save",
    "usage_record",
]
