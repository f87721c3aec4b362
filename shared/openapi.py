"""Build an OpenAPI 3.1 document from the same pydantic models the routes validate with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Operation:
    path: str
    method: str
    summary: str
    responses: dict[int, type[BaseModel] | None]
    body: type[BaseModel] | None = None
    form: type[BaseModel] | None = None
    security: list[str] = field(default_factory=list)
    parameters: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[int, list[str]] = field(default_factory=dict)


def _operation_id(op: Operation) -> str:
    slug = op.path.strip("/").replace("/", "_").replace("{", "").replace("}", "").replace(".", "_")
    return f"{op.method.lower()}_{slug or 'root'}"


def _schema(model: type[BaseModel], components: dict[str, Any], mode: str) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF, mode="validation" if mode == "in" else "serialization")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": REF.format(model=model.__name__)}


def build_openapi(
    title: str,
    version: str,
    operations: list[Operation],
    error_model: type[BaseModel],
    security_schemes: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    error_ref = _schema(error_model, components, "out")
    for op in operations:
        responses: dict[str, Any] = {}
        for status, model in op.responses.items():
            description = "OK" if status < 400 else "Error"
            entry: dict[str, Any] = {"description": description}
            if model is not None:
                ref = error_ref if model is error_model else _schema(model, components, "out")
                entry["content"] = {"application/json": {"schema": ref}}
            if op.headers.get(status):
                entry["headers"] = {h: {"schema": {"type": "string"}} for h in op.headers[status]}
            responses[str(status)] = entry
        operation: dict[str, Any] = {
            "summary": op.summary,
            "operationId": _operation_id(op),
            "responses": responses,
        }
        if op.parameters:
            operation["parameters"] = op.parameters
        if op.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema(op.body, components, "in")}},
            }
        if op.form is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {"schema": _schema(op.form, components, "in")}
                },
            }
        operation["security"] = [{name: []} for name in op.security] if op.security else []
        paths.setdefault(op.path, {})[op.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": security_schemes},
    }
