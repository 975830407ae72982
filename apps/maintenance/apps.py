from django.apps import AppConfig


class MaintenanceConfig(AppConfig):
    name = "apps.maintenance"
    label = "maintenance"
    verbose_name = "Maintenance management"

    def ready(self) -> None:
        from apps.maintenance import (
            events,  # noqa: F401  (connects the receivers: change events on commit)
            signals,  # noqa: F401  (drops maintenance:counts after commits)
        )
