from django.apps import AppConfig


class MaintenanceConfig(AppConfig):
    name = "apps.maintenance"
    label = "maintenance"
    verbose_name = "Maintenance management"

    def ready(self) -> None:
        from apps.maintenance import (
            events,  # noqa: F401  (registers the deleted-row events of cascades)
            signals,  # noqa: F401  (drops maintenance:counts after commits)
        )
