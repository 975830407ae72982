from django.apps import AppConfig


class LeasingConfig(AppConfig):
    name = "apps.leasing"
    label = "leasing"
    verbose_name = "Tenants and leases"
