"""The OpenAPI document of /api/v1: names of its schemas are unique, errors are declared.

Django Ninja files each model's JSON schema under the model's class name and silently lets a
later model overwrite an earlier one of the same name, so two `UserOut` classes in two apps make
one endpoint's documented response the other's. Such a collision is caught here, by name (for
the schemas the document refers to: flattened query models are filed too, but never referred to).
"""

import json
from typing import Any

import pytest
from ninja.openapi.schema import OpenAPISchema

from pms.api import api
from pms.openapi import ERROR_SCHEMA_NAME


def test_schema_names_are_unique(monkeypatch: pytest.MonkeyPatch) -> None:
    collisions: dict[str, list[Any]] = {}
    original = OpenAPISchema.add_schema_definitions

    def add_schema_definitions(self: OpenAPISchema, definitions: dict[str, Any]) -> None:
        for name, definition in definitions.items():
            if name in self.schemas and self.schemas[name] != definition:
                collisions.setdefault(name, [self.schemas[name]]).append(definition)
        original(self, definitions)

    monkeypatch.setattr(OpenAPISchema, "add_schema_definitions", add_schema_definitions)
    document = json.dumps(api.get_openapi_schema(path_prefix="/api/v1/"))
    collisions = {name: found for name, found in collisions.items() if f'"#/components/schemas/{name}"' in document}
    assert not collisions, "distinct schemas share a name (rename one): " + ", ".join(sorted(collisions))


def test_every_operation_declares_its_errors() -> None:
    document = api.get_openapi_schema(path_prefix="/api/v1/")
    assert ERROR_SCHEMA_NAME in document["components"]["schemas"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "default" in responses, (method, path)
            if operation.get("security"):
                assert {"401", "429"} <= set(responses), (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
            for status, response in responses.items():
                if status == "default" or str(status)[0] in "45":
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"
                    }, (method, path, status)
