from django.apps import AppConfig


class FinanceConfig(AppConfig):
    name = "apps.finance"
    label = "finance"
    verbose_name = "Financial management"

    def ready(self) -> None:
        from apps.finance import caches  # noqa: F401  (registers the transactions:recent drop of cascades)
