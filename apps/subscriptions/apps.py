from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "apps.subscriptions"
    label = "subscriptions"
    verbose_name = "Pricing and subscriptions"

    def ready(self) -> None:
        from apps.subscriptions import caches  # noqa: F401  (registers the cache drops of cascades)
