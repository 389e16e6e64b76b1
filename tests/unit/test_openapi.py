"""Every JSON body the API answers with is described in /openapi.json, field by field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kibitz.api.app import create_app
from kibitz.runtime.bootstrap import bootstrap
from kibitz.settings import load_settings


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_api_route_documents_its_2xx_body_with_named_properties(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, demo=False, cpu_workers=0)
    doc = create_app(bootstrap(settings)).openapi()
    untyped = []
    checked = 0
    for path, operations in doc["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if not code.startswith("2"):
                    continue
                content = response.get("content") or {}
                for media, body in content.items():
                    schema = _resolve(doc, body.get("schema") or {})
                    checked += 1
                    if media == "audio/wav":
                        ok = schema.get("format") == "binary"
                    else:
                        ok = bool(schema.get("properties"))
                    if not ok:
                        untyped.append(f"{method.upper()} {path} {code} {media}")
                if not content:
                    untyped.append(f"{method.upper()} {path} {code}: no body described")
    assert checked >= 29
    assert untyped == []
