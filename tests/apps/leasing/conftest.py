import pytest

from tests.apps.api_world import World, build_world


@pytest.fixture
def world(db: None) -> World:
    return build_world()
