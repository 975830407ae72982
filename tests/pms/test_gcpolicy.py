"""The serving process's garbage collector: tuned when `pms.asgi` is loaded, unless PMS_GC_TUNE=0."""

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pms.gcpolicy import GEN0_THRESHOLD, OLDER_THRESHOLDS, tune

ROOT = Path(__file__).resolve().parents[2]
PROBE = "import gc, json, pms.asgi; print(json.dumps([gc.get_threshold(), gc.get_freeze_count()]))"


class Trash:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_tune_freezes_what_is_left_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    Trash()  # garbage before the freeze: collected, not frozen
    try:
        assert tune() == before
        assert gc.get_threshold() == (GEN0_THRESHOLD, *OLDER_THRESHOLDS)
        assert gc.get_freeze_count() > frozen_before
        assert not [o for o in gc.get_objects() if isinstance(o, Trash)]
    finally:
        # This pytest process keeps CPython's collector (PMS_GC_TUNE=0): put it back.
        gc.set_threshold(*before)
        gc.unfreeze()


@pytest.mark.parametrize(("setting", "tuned"), [("1", True), ("", True), ("0", False)])
def test_a_process_that_loads_the_asgi_app_is_tuned_unless_told_not_to(setting: str, tuned: bool) -> None:
    env = dict(os.environ, PMS_DEBUG="1", DJANGO_SETTINGS_MODULE="pms.settings", PMS_GC_TUNE=setting)
    result = subprocess.run(  # noqa: S603  (our own interpreter, a fixed probe)
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    thresholds, frozen = json.loads(result.stdout.strip().splitlines()[-1])
    if tuned:
        assert thresholds == [GEN0_THRESHOLD, *OLDER_THRESHOLDS]
        assert frozen > 10_000  # Django and the apps, built at import
    else:
        assert thresholds == [700, 10, 10] and frozen == 0
