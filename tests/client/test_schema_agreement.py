"""The client and the server's OpenAPI schema agree: every /api/v1 operation has a client
method that calls that method and path, every client method's operation exists, list methods
take every query parameter, and the typed results name exactly the schema's fields."""

from __future__ import annotations

import inspect
import json
import re
import typing
from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator
from sluice_client import OPERATIONS, Sluice, types

# TypedDict in the client → component in the schema.
SHAPES = {
    types.Contact: "Contact",
    types.Result: "Result",
    types.Attempt: "Attempt",
    types.Phone: "Phone",
    types.Accepted: "Accepted",
    types.BulkAccepted: "BulkAccepted",
    types.BulkAcceptedContact: "BulkAcceptedContact",
    types.Bulk: "Bulk",
    types.Credits: "Credits",
    types.CallbackSecret: "CallbackSecret",
    types.Event: "Event",
    types.Endpoint: "Endpoint",
    types.EndpointWithSecret: "EndpointWithSecret",
    types.EndpointEnabled: "EndpointEnabled",
    types.Delivery: "Delivery",
    types.DeliveryAttempt: "DeliveryAttempt",
    types.Recover: "Recover",
    types.Pagination: "Pagination",
    types.ContactList: "List",
    types.ListEntry: "ListEntry",
    types.Import: "Import",
    types.RowError: "RowError",
    types.Export: "Export",
}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True)))


def api_operations(schema) -> dict[str, tuple[str, str, dict]]:
    return {
        op["operationId"]: (method.upper(), path, op)
        for path, item in schema["paths"].items()
        if path.startswith("/api/v1/")
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    }


def test_every_operation_has_a_method_and_every_method_an_operation(schema):
    server = api_operations(schema)
    assert set(OPERATIONS) == set(server), (
        f"only in the schema: {sorted(set(server) - set(OPERATIONS))}; "
        f"only in the client: {sorted(set(OPERATIONS) - set(server))}"
    )
    for operation_id, (method, path, name) in OPERATIONS.items():
        assert server[operation_id][:2] == (method, path), operation_id
        assert callable(getattr(Sluice, name, None)), name


class Recorder:
    """A stand-in for the HTTP session: records the one request a method makes."""

    headers: dict[str, str]

    def __init__(self) -> None:
        self.headers = {}
        self.calls: list[tuple[str, str, dict]] = []

    def request(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs))

        class Answer:
            status_code = 200
            content = b'{"data": [], "pagination": {"next_cursor": null, "has_more": false}}'
            headers: typing.ClassVar[dict[str, str]] = {}

            def json(self):
                return json.loads(self.content)

            def iter_content(self, chunk_size=None):
                yield self.content

            def close(self):
                pass

        return Answer()


def _arguments(method) -> tuple[list[Any], dict[str, Any]]:
    """Placeholder values for a method's required parameters."""
    args, kwargs = [], {}
    for name, parameter in inspect.signature(method).parameters.items():
        if name == "self" or parameter.default is not inspect.Parameter.empty:
            continue
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        value: Any = {"contacts": [], "file": b"first_name,last_name\r\nAda,Lovelace\r\n"}.get(
            name, f"{name}-value"
        )
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
            kwargs[name] = value
        else:
            args.append(value)
    return args, kwargs


@pytest.mark.parametrize("operation_id", sorted(OPERATIONS))
def test_each_method_calls_its_operation(operation_id):
    method, path, name = OPERATIONS[operation_id]
    recorder = Recorder()
    client = Sluice("sk_test_x", base_url="http://sluice.invalid", session=recorder)
    bound = getattr(client, name)
    args, kwargs = _arguments(bound)
    bound(*args, **kwargs)
    (sent_method, url, options), *_ = recorder.calls
    assert sent_method == method
    pattern = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(path))
    assert re.fullmatch(f"http://sluice.invalid{pattern}", url), (url, path)
    assert ("Idempotency-Key" in options["headers"]) == (method == "POST")


def test_list_methods_take_every_query_parameter(schema):
    server = api_operations(schema)
    for operation_id, (_, _, name) in OPERATIONS.items():
        query = {
            p["name"] for p in server[operation_id][2].get("parameters", []) if p["in"] == "query"
        }
        accepted = set(inspect.signature(getattr(Sluice, name)).parameters)
        assert query <= accepted, (name, query - accepted)


def test_request_fields_are_the_schemas(schema):
    """``enrich``'s named parameters plus its free ``**fields`` cover the request body."""
    body = schema["components"]["schemas"]["EnrichRequest"]["properties"]
    named = set(inspect.signature(Sluice.enrich).parameters) - {"self", "idempotency_key", "fields"}
    assert named <= set(body)
    webhook = schema["components"]["schemas"]["EndpointCreateRequest"]["properties"]
    named = set(inspect.signature(Sluice.create_webhook).parameters) - {"self", "idempotency_key"}
    assert named == set(webhook)


@pytest.mark.parametrize("shape", list(SHAPES), ids=lambda s: s.__name__)
def test_typed_results_name_exactly_the_schemas_fields(schema, shape):
    component = schema["components"]["schemas"][SHAPES[shape]]
    assert set(typing.get_type_hints(shape)) == set(component["properties"])
