from django.apps import AppConfig


class MaintenanceConfig(AppConfig):
    name = "apps.maintenance"
    label = "maintenance"
    verbose_name = "Maintenance management"

    def ready(self) -> None:
        from apps.maintenance import (
            caches,  # noqa: F401  (registers the counts drops of cascades)
            events,  # noqa: F401  (registers the deleted-row events of cascades)
        )
