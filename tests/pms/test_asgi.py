"""The process-level tuning the ASGI entry point applies when it is loaded."""

import gc
import importlib


def test_loading_the_asgi_app_freezes_startup_objects_and_widens_the_young_generation() -> None:
    module = importlib.import_module("pms.asgi")

    assert module.application is not None
    # Django and the app's modules, built at import, are out of the cycle collector's sight.
    assert gc.get_freeze_count() > 10_000
    assert gc.get_threshold()[0] == 10_000
