from django.apps import AppConfig


class PmsConfig(AppConfig):
    name = "pms"
    verbose_name = "PMS wiring"

    def ready(self) -> None:
        from pms import wiring

        wiring.configure()
