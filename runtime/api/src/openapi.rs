//! The OpenAPI 3.1 document of the API.

use serde_json::{json, Value};

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

pub fn document() -> Value {
    let plugin = json!({ "$ref": "#/components/schemas/PluginVersion" });
    let plugins = json!({ "type": "array", "items": plugin });
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Weir control plane", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/api/v1/plugins": {
                "get": {
                    "summary": "Every plugin version in the registry",
                    "responses": { "200": { "description": "plugin versions", "content": { "application/json": { "schema": plugins } } } }
                },
                "post": {
                    "summary": "Upload a component (the request body); it is validated before it is stored",
                    "parameters": [
                        { "name": "name", "in": "query", "required": true, "schema": { "type": "string" } },
                        { "name": "version", "in": "query", "required": true, "schema": { "type": "string" } }
                    ],
                    "requestBody": { "required": true, "content": { "application/wasm": { "schema": { "type": "string", "format": "binary" } } } },
                    "responses": {
                        "201": { "description": "stored (or already stored with the same content)", "content": { "application/json": { "schema": plugin } } },
                        "400": error_response("not a component of a supported weir:operator world, or a bad name or version"),
                        "401": error_response("the node has a token and the request did not carry it"),
                        "409": error_response("this name and version are stored with other content"),
                        "413": error_response("larger than the node's upload limit")
                    }
                }
            },
            "/api/v1/plugins/{name}": {
                "get": {
                    "summary": "The versions of one plugin",
                    "parameters": [{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }],
                    "responses": {
                        "200": { "description": "its versions", "content": { "application/json": { "schema": plugins } } },
                        "404": error_response("no such plugin")
                    }
                }
            },
            "/api/v1/plugins/{name}/{version}": {
                "delete": {
                    "summary": "Remove a plugin version",
                    "parameters": [
                        { "name": "name", "in": "path", "required": true, "schema": { "type": "string" } },
                        { "name": "version", "in": "path", "required": true, "schema": { "type": "string" } }
                    ],
                    "responses": {
                        "200": { "description": "removed", "content": { "application/json": { "schema": plugin } } },
                        "401": error_response("missing token"),
                        "404": error_response("no such plugin or version")
                    }
                }
            },
            "/metrics": { "get": { "summary": "Prometheus metrics", "responses": { "200": { "description": "text exposition format" } } } }
        },
        "components": {
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" } } },
                "PluginVersion": {
                    "type": "object",
                    "required": ["name", "version", "digest", "world", "size", "uploaded_ms"],
                    "properties": {
                        "name": { "type": "string" },
                        "version": { "type": "string" },
                        "digest": { "type": "string", "description": "sha256 of the component, hex" },
                        "world": { "type": "string" },
                        "size": { "type": "integer" },
                        "uploaded_ms": { "type": "integer" }
                    }
                }
            }
        }
    })
}
