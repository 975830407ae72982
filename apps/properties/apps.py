from django.apps import AppConfig


class PropertiesConfig(AppConfig):
    name = "apps.properties"
    label = "properties"
    verbose_name = "Properties and units"

    def ready(self) -> None:
        from apps.properties import (
            caches,  # noqa: F401  (registers the cache drops of cascades and generic writers)
            events,  # noqa: F401  (registers the deleted-row events of cascades)
            services,  # noqa: F401  (registers what a generic writer's save records)
        )
