//! Each message's frame schema as one self-contained JSON Schema: what a validator of frames
//! needs, and what the docs show. Component schemas are written once under `$defs` and every
//! `$ref` points there, which keeps the output linear in the document even when references fan
//! out, and lets a recursive schema refer to itself.

use indexmap::IndexMap;
use serde_json::Value;

use super::{Lowering, Result, DOC_ONLY_KEYWORDS};
use crate::model::{Schema, TypeNames};
use crate::naming::escape_pointer;

impl Lowering<'_> {
    /// The frame schema as one self-contained JSON Schema (what a validator of frames needs, and
    /// what docs show): the schema itself, with each component it uses written once under
    /// `$defs` and every `$ref` pointing there. Writing each component once, instead of in place
    /// at every use, keeps the output linear in the document even when references fan out, and
    /// lets a recursive schema refer to itself.
    pub(super) fn resolved_json(&self, schema: &Schema, pointer: &str) -> Result<Value> {
        let mut defs = IndexMap::new();
        let mut root = self.schema_json(schema, pointer, &mut defs)?;
        if !defs.is_empty() {
            if let Value::Object(root) = &mut root {
                root.insert("$defs".into(), Value::Object(defs.into_iter().collect()));
            }
        }
        Ok(root)
    }

    /// One schema as JSON; the components it refers to are added to `defs` (by name), each once.
    pub(super) fn schema_json(
        &self,
        schema: &Schema,
        pointer: &str,
        defs: &mut IndexMap<String, Value>,
    ) -> Result<Value> {
        if let Some(reference) = &schema.reference {
            let (target, at, name) = self.resolve_schema_ref(reference, pointer)?;
            if !defs.contains_key(&name) {
                // Claimed before the component is written, so a reference back to it (recursion)
                // stops here.
                defs.insert(name.clone(), Value::Null);
                let written = self.schema_json(target, &at, defs)?;
                defs.insert(name.clone(), written);
            }
            return Ok(serde_json::json!({ "$ref": format!("#/$defs/{}", escape_pointer(&name)) }));
        }
        let mut out = serde_json::Map::new();
        if let Some(t) = &schema.title {
            out.insert("title".into(), Value::String(t.clone()));
        }
        if let Some(d) = &schema.description {
            out.insert("description".into(), Value::String(d.clone()));
        }
        match &schema.type_names {
            Some(TypeNames::One(t)) => {
                out.insert("type".into(), Value::String(t.clone()));
            }
            Some(TypeNames::Many(ts)) => {
                out.insert(
                    "type".into(),
                    Value::Array(ts.iter().cloned().map(Value::String).collect()),
                );
            }
            None => {}
        }
        if !schema.properties.is_empty() {
            let mut props = serde_json::Map::new();
            for (name, prop) in &schema.properties {
                let prop_pointer = format!("{pointer}/properties/{}", escape_pointer(name));
                props.insert(name.clone(), self.schema_json(prop, &prop_pointer, defs)?);
            }
            out.insert("properties".into(), Value::Object(props));
        }
        if !schema.required.is_empty() {
            out.insert(
                "required".into(),
                Value::Array(schema.required.iter().cloned().map(Value::String).collect()),
            );
        }
        if let Some(items) = &schema.items {
            out.insert(
                "items".into(),
                self.schema_json(items, &format!("{pointer}/items"), defs)?,
            );
        }
        if let Some(e) = &schema.enumeration {
            out.insert("enum".into(), Value::Array(e.clone()));
        }
        if let Some(c) = &schema.constant {
            out.insert("const".into(), c.clone());
        }
        for (keyword, alternatives) in [("oneOf", &schema.one_of), ("anyOf", &schema.any_of)] {
            if let Some(alternatives) = alternatives {
                let mut resolved = Vec::new();
                for (i, a) in alternatives.iter().enumerate() {
                    resolved.push(self.schema_json(
                        a,
                        &format!("{pointer}/{keyword}/{i}"),
                        defs,
                    )?);
                }
                out.insert(keyword.into(), Value::Array(resolved));
            }
        }
        if let Some(n) = schema.min_length {
            out.insert("minLength".into(), Value::from(n));
        }
        if let Some(n) = schema.max_length {
            out.insert("maxLength".into(), Value::from(n));
        }
        for keyword in DOC_ONLY_KEYWORDS {
            if let Some(v) = schema.extra.get(keyword) {
                out.insert(keyword.into(), v.clone());
            }
        }
        Ok(Value::Object(out))
    }
}
