"""Settings come from PMS_* variables; production mode refuses an insecure secret key."""

import os
import subprocess
import sys

import pytest

CHECK = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"


def run_settings(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PMS_")}
    clean.update(env, DJANGO_SETTINGS_MODULE="pms.settings")
    return subprocess.run([sys.executable, "-c", CHECK], env=clean, capture_output=True, text=True, timeout=60)


def test_debug_is_off_by_default_and_requires_a_real_secret_key() -> None:
    result = run_settings()
    assert result.returncode != 0
    assert "PMS_SECRET_KEY must be set" in result.stderr


def test_short_secret_key_is_refused_in_production() -> None:
    assert run_settings(PMS_SECRET_KEY="too-short").returncode != 0


def test_production_starts_with_a_real_secret_key() -> None:
    result = run_settings(PMS_SECRET_KEY="k" * 20 + "9f8e7d6c5b4a3f2e1d0c")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_malformed_boolean_is_a_clear_configuration_error(value: str) -> None:
    result = run_settings(PMS_DEBUG=value)
    assert result.returncode != 0 and "PMS_DEBUG must be a boolean" in result.stderr


@pytest.mark.parametrize("value", ["ten", "-5", "NaN"])
def test_malformed_late_fee_setting_is_a_clear_configuration_error(value: str) -> None:
    result = run_settings(PMS_DEBUG="1", PMS_LATE_FEE_PERCENT=value)
    assert result.returncode != 0 and "PMS_LATE_FEE_PERCENT must be a" in result.stderr
