from django.apps import AppConfig


class CommonConfig(AppConfig):
    """Plumbing shared by the domain apps; its one table is the integration layer's intent log."""

    name = "apps.common"
    label = "common"
    verbose_name = "Shared plumbing"

    def ready(self) -> None:
        from apps.common import lookups

        lookups.register()  # `field__any=[...]` for every field (apps/common/lookups.py)
