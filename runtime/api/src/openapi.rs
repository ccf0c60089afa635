//! The OpenAPI 3.1 document of the API.

use serde_json::{json, Value};

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn id_param() -> Value {
    json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" }, "description": "the pipeline's name" })
}

fn pipeline_op(summary: &str, errors: &[(&str, &str)]) -> Value {
    let mut responses = json!({ "200": { "description": "the pipeline", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Pipeline" } } } } });
    for (code, why) in errors {
        responses[*code] = error_response(why);
    }
    json!({ "summary": summary, "parameters": [id_param()], "responses": responses })
}

/// The pipelines part of the document.
fn pipeline_paths() -> Value {
    let pipeline = json!({ "$ref": "#/components/schemas/Pipeline" });
    json!({
        "/api/v1/pipelines": {
            "get": {
                "summary": "The node's pipelines",
                "responses": { "200": { "description": "pipelines", "content": { "application/json": { "schema": { "type": "array", "items": pipeline } } } } }
            },
            "post": {
                "summary": "Create a pipeline from a spec (YAML or JSON; operators name registry plugins as NAME@VERSION) and start it; stored only if it starts",
                "requestBody": { "required": true, "content": { "application/yaml": { "schema": { "type": "string" } }, "application/json": { "schema": { "type": "object" } } } },
                "responses": {
                    "201": { "description": "created and running", "content": { "application/json": { "schema": pipeline } } },
                    "400": error_response("an invalid spec (the message names line and field) or a plugin not in the registry"),
                    "401": error_response("missing token"),
                    "409": error_response("a pipeline with this name exists"),
                    "422": error_response("the job failed to start (e.g. a plugin's open failed)")
                }
            }
        },
        "/api/v1/pipelines/{id}": {
            "get": pipeline_op("Status: per node records in and out and plugin version, the last checkpoint, the last swap", &[("404", "no such pipeline")]),
            "delete": pipeline_op("Stop the pipeline (no savepoint) and delete it with its checkpoints", &[("401", "missing token"), ("404", "no such pipeline")])
        },
        "/api/v1/pipelines/{id}/stop": {
            "post": pipeline_op("Take a savepoint, then stop; it stays stopped across node restarts until started", &[("401", "missing token"), ("404", "no such pipeline")])
        },
        "/api/v1/pipelines/{id}/start": {
            "post": pipeline_op("Start a stopped pipeline; it resumes from its latest checkpoint", &[("401", "missing token"), ("404", "no such pipeline"), ("409", "it is running"), ("422", "the job failed to start")])
        },
        "/api/v1/pipelines/{id}/checkpoints": {
            "get": {
                "summary": "Stored checkpoints (newest first) and savepoints",
                "parameters": [id_param()],
                "responses": { "200": { "description": "checkpoints", "content": { "application/json": { "schema": { "type": "object" } } } }, "404": error_response("no such pipeline") }
            }
        },
        "/api/v1/pipelines/{id}/operators/{op}/swap": {
            "post": {
                "summary": "Hot swap: the operator runs another plugin version from the next checkpoint barrier on, keeping its state; the new version is tried (instantiated and opened) first, and rolled back if the job fails before a later checkpoint completes",
                "parameters": [id_param(), { "name": "op", "in": "path", "required": true, "schema": { "type": "string" } }],
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["plugin"],
                    "properties": {
                        "plugin": { "type": "string", "description": "NAME@VERSION in the registry" },
                        "probation": { "type": "string", "description": "the new version runs at least this long before the checkpoint that confirms it (default 5s)" }
                    }
                } } } },
                "responses": {
                    "200": { "description": "every task switched (swap.status 'switched'; 'confirmed' after the next checkpoint)", "content": { "application/json": { "schema": pipeline } } },
                    "400": error_response("a bad request body"),
                    "401": error_response("missing token"),
                    "404": error_response("no such pipeline, operator or plugin version"),
                    "409": error_response("the pipeline is not running, another swap is in probation, or the operator already runs that version"),
                    "422": error_response("the new version failed to instantiate or open; nothing changed")
                }
            }
        }
    })
}

pub fn document() -> Value {
    let mut doc = base();
    if let (Some(paths), Value::Object(more)) = (doc["paths"].as_object_mut(), pipeline_paths()) {
        paths.extend(more);
    }
    doc["components"]["schemas"]["Pipeline"] = json!({
        "type": "object",
        "required": ["id", "status", "plugins"],
        "properties": {
            "id": { "type": "string" },
            "status": { "type": "string", "enum": ["starting", "running", "restarting", "stopped", "finished", "failed"] },
            "plugins": { "type": "object", "additionalProperties": { "type": "string" }, "description": "operator -> NAME@VERSION it runs" },
            "restarts": { "type": "integer" },
            "error": { "type": ["string", "null"] },
            "resumed_from": { "type": ["string", "null"] },
            "nodes": { "type": "array", "items": { "type": "object" } },
            "checkpoints": { "type": "object" },
            "swap": { "type": "object", "description": "the last swap: operator, from, to, status (pending, switched, confirmed, rolled-back, refused), epoch, switch_ms, reason" },
            "savepoint": { "type": "string", "description": "after a stop: the savepoint taken" }
        }
    });
    doc
}

fn base() -> Value {
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
                        { "name": "name", "in": "query", "schema": { "type": "string" }, "description": "required unless a multipart field gives it" },
                        { "name": "version", "in": "query", "schema": { "type": "string" }, "description": "required unless a multipart field gives it" }
                    ],
                    "requestBody": { "required": true, "content": {
                        "application/wasm": { "schema": { "type": "string", "format": "binary" } },
                        "multipart/form-data": { "schema": { "type": "object", "required": ["file"], "properties": {
                            "file": { "type": "string", "format": "binary" },
                            "name": { "type": "string", "description": "instead of the query parameter" },
                            "version": { "type": "string", "description": "instead of the query parameter" }
                        } } }
                    } },
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
