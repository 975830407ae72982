import pytest

from tests.apps.api_world import World, build_world
from tests.consumers.conftest import connect, realtime_core  # noqa: F401  (socket fixtures for the invitation tests)


@pytest.fixture
def world(db: None) -> World:
    return build_world()
