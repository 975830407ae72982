from django.apps import AppConfig


class CommonConfig(AppConfig):
    """Plumbing shared by the domain apps; its one table is the integration layer's intent log."""

    name = "apps.common"
    label = "common"
    verbose_name = "Shared plumbing"
