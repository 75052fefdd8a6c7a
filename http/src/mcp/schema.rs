//! Tool schemas every MCP client in use can load. schemars writes "any JSON value" as the
//! boolean schema `true` (valid JSON Schema), and Claude Code before 2.1.3xx rejects a tool
//! list holding one: `claude mcp list` says "tools fetch failed" and offers none of the
//! tools. So every boolean subschema becomes its object form — `true` → `{}`, `false` →
//! `{"not": {}}` — in every position where JSON Schema takes a schema, and nowhere else
//! (`"default": true` stays).

use rmcp::handler::server::router::tool::ToolRouter;
use serde_json::{Map, Value};

/// Keywords whose value is one schema.
const SCHEMA_KEYWORDS: &[&str] = &[
    "additionalProperties",
    "items",
    "additionalItems",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
];
/// Keywords whose value is an array of schemas.
const SCHEMA_ARRAY_KEYWORDS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems", "items"];
/// Keywords whose value maps names to schemas.
const SCHEMA_MAP_KEYWORDS: &[&str] = &["properties", "patternProperties", "$defs", "definitions", "dependentSchemas"];

/// Rewrites the input and output schema of every tool of `router`.
pub fn make_loadable<S>(router: &mut ToolRouter<S>) {
    for route in router.map.values_mut() {
        let input = &mut route.attr.input_schema;
        rewrite_object(std::sync::Arc::make_mut(input));
        if let Some(output) = &mut route.attr.output_schema {
            rewrite_object(std::sync::Arc::make_mut(output));
        }
    }
}

/// Rewrites the subschemas of one schema object in place.
fn rewrite_object(schema: &mut Map<String, Value>) {
    for (keyword, value) in schema.iter_mut() {
        let keyword = keyword.as_str();
        if SCHEMA_KEYWORDS.contains(&keyword) {
            rewrite_schema(value);
        }
        if SCHEMA_ARRAY_KEYWORDS.contains(&keyword) {
            if let Value::Array(schemas) = value {
                schemas.iter_mut().for_each(rewrite_schema);
            }
        }
        if SCHEMA_MAP_KEYWORDS.contains(&keyword) {
            if let Value::Object(schemas) = value {
                schemas.values_mut().for_each(rewrite_schema);
            }
        }
    }
}

/// Rewrites a value in a schema position: a boolean becomes its object form, an object has
/// its own subschemas rewritten.
fn rewrite_schema(value: &mut Value) {
    match value {
        Value::Bool(true) => *value = Value::Object(Map::new()),
        Value::Bool(false) => *value = serde_json::json!({"not": {}}),
        Value::Object(schema) => rewrite_object(schema),
        _ => {}
    }
}

/// Where in `schema` a boolean subschema is, if anywhere: a JSON pointer.
#[cfg(test)]
pub fn boolean_subschema(schema: &Map<String, Value>) -> Option<String> {
    fn at(value: &Value, path: String) -> Option<String> {
        match value {
            Value::Bool(_) => Some(path),
            Value::Object(schema) => within(schema, &path),
            _ => None,
        }
    }
    fn within(schema: &Map<String, Value>, path: &str) -> Option<String> {
        for (keyword, value) in schema {
            let here = format!("{path}/{keyword}");
            if SCHEMA_KEYWORDS.contains(&keyword.as_str()) {
                if let Some(found) = at(value, here.clone()) {
                    return Some(found);
                }
            }
            match value {
                Value::Array(items) if SCHEMA_ARRAY_KEYWORDS.contains(&keyword.as_str()) => {
                    for (index, item) in items.iter().enumerate() {
                        if let Some(found) = at(item, format!("{here}/{index}")) {
                            return Some(found);
                        }
                    }
                }
                Value::Object(map) if SCHEMA_MAP_KEYWORDS.contains(&keyword.as_str()) => {
                    for (name, item) in map {
                        if let Some(found) = at(item, format!("{here}/{name}")) {
                            return Some(found);
                        }
                    }
                }
                _ => {}
            }
        }
        None
    }
    within(schema, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_in_schema_positions_become_objects_and_other_booleans_stay() {
        let mut schema = serde_json::json!({
            "type": "object",
            "properties": {"value": true, "never": false, "flag": {"type": "boolean", "default": true}},
            "additionalProperties": false,
            "anyOf": [true, {"items": true}],
            "$defs": {"Any": true},
        });
        let Value::Object(map) = &mut schema else { unreachable!("an object literal") };
        assert!(boolean_subschema(map).is_some());
        rewrite_object(map);
        assert_eq!(boolean_subschema(map), None, "{schema}");
        assert_eq!(schema["properties"]["value"], serde_json::json!({}));
        assert_eq!(schema["properties"]["never"], serde_json::json!({"not": {}}));
        assert_eq!(schema["properties"]["flag"]["default"], Value::Bool(true));
        assert_eq!(schema["additionalProperties"], serde_json::json!({"not": {}}));
        assert_eq!(schema["anyOf"][1]["items"], serde_json::json!({}));
    }

    #[test]
    fn every_tool_schema_the_coordinator_serves_is_free_of_boolean_subschemas() {
        // As schemars writes it, `retrieve_data`'s result has `"value": true` (the schema that
        // Claude Code 2.1.197 rejects): the walk sees it.
        let raw = super::super::CoordinatorMcp::raw_tools();
        let retrieve = raw.iter().find(|tool| tool.name == "retrieve_data").expect("retrieve_data is a tool");
        let output = retrieve.output_schema.as_ref().expect("retrieve_data has an output schema");
        assert_eq!(boolean_subschema(output).as_deref(), Some("/properties/value"), "{output:?}");
        let tools = super::super::CoordinatorMcp::loadable_tools();
        assert!(tools.len() >= 9, "{} tools", tools.len());
        for tool in tools {
            assert_eq!(boolean_subschema(&tool.input_schema), None, "input schema of {}", tool.name);
            if let Some(output) = &tool.output_schema {
                assert_eq!(boolean_subschema(output), None, "output schema of {}", tool.name);
            }
        }
    }
}
