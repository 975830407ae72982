from django.apps import AppConfig


class LeasingConfig(AppConfig):
    name = "apps.leasing"
    label = "leasing"
    verbose_name = "Tenants and leases"

    def ready(self) -> None:
        from apps.leasing import (
            events,  # noqa: F401  (registers the deleted-row events of cascades)
            services,  # noqa: F401  (registers what a generic writer's save records)
        )
