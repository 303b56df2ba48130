//! Schemas become types: a named struct per object schema, a string enum per enumeration, an
//! untagged union per `oneOf`/`anyOf` of several types, and a [`ir::TypeRef`] for every value.
//!
//! A named type is registered (under the pointer of its schema) before its parts are lowered, so
//! that a schema reached again through a `$ref`, recursion included, resolves to the name
//! instead of being lowered twice. Names are claimed once per schema; a second schema with the
//! same name is refused, as is a type that would contain itself without an array in between.

use std::collections::{BTreeSet, HashMap};

use indexmap::IndexMap;

use super::refs::check_variant_name;
use super::refs::identifier;
use super::{Lowering, Result, DOC_ONLY_KEYWORDS, ENVELOPE_PROPERTIES};
use crate::error::GenerateError;
use crate::ir;
use crate::model::{Schema, TypeNames};
use crate::naming::{escape_pointer, field_name, pascal_case, ts_property_name};

impl<'d> Lowering<'d> {
    /// Registers the struct for a message frame: every property but `action` and the envelope.
    pub(super) fn frame_type(
        &mut self,
        schema: &'d Schema,
        pointer: &str,
        component: Option<&str>,
        key: &str,
        action: &str,
    ) -> Result<String> {
        if let Some(existing) = self.types.get(pointer) {
            return Ok(existing.name.clone());
        }
        let name =
            type_name(schema, component).unwrap_or_else(|| format!("{}Message", pascal_case(key)));
        self.claim_name(&name, pointer)?;
        check_keywords(schema, pointer)?;
        let placeholder = ir::TypeDef {
            name: name.clone(),
            description: schema.description.clone(),
            pointer: pointer.to_owned(),
            kind: ir::TypeKind::Struct { fields: Vec::new() },
            action: Some(action.to_owned()),
            rust_path: rust_path(schema, pointer)?,
        };
        self.types.insert(pointer.to_owned(), placeholder);
        let fields = self.fields(schema, pointer, |prop| {
            prop == "action" || ENVELOPE_PROPERTIES.contains(&prop)
        })?;
        if let Some(t) = self.types.get_mut(pointer) {
            t.kind = ir::TypeKind::Struct { fields };
        }
        Ok(name)
    }

    /// The fields of an object schema, but those `skip` names (a frame's `action` and envelope
    /// keys, which the direction enums and `Envelope` hold). Titles and descriptions of a
    /// `$ref`'d property come from the property when it has them, else from its component, so
    /// that generated docs say what the author wrote nearest to the field.
    pub(super) fn fields(
        &mut self,
        schema: &'d Schema,
        pointer: &str,
        skip: impl Fn(&str) -> bool,
    ) -> Result<Vec<ir::Field>> {
        for required in &schema.required {
            if schema.properties.get(required.as_str()).is_none() {
                return Err(GenerateError::RequiredNotAProperty {
                    pointer: format!("{pointer}/required"),
                    name: required.clone(),
                });
            }
        }
        let mut fields = Vec::new();
        let mut rust_names = BTreeSet::new();
        for (prop, prop_schema) in &schema.properties {
            if skip(prop) {
                continue;
            }
            let prop_pointer = format!("{pointer}/properties/{}", escape_pointer(prop));
            let (ty, nullable) = self.type_ref(prop_schema, &prop_pointer)?;
            let rust_name = field_name(prop);
            identifier(&rust_name, &prop_pointer, || {
                format!("the property name `{prop}` gives no field name")
            })?;
            if !rust_names.insert(rust_name.clone()) {
                return Err(GenerateError::NameTaken {
                    pointer: prop_pointer,
                    detail: format!("property maps to the field name `{rust_name}` that another property already has"),
                });
            }
            // Descriptions and titles of a `$ref`'d property come from the referenced schema.
            let described = self.follow(prop_schema, &prop_pointer)?;
            fields.push(ir::Field {
                json_name: prop.clone(),
                rust_name,
                ts_name: ts_property_name(prop),
                ty,
                required: schema.required.iter().any(|r| r == prop),
                nullable,
                title: prop_schema
                    .title
                    .clone()
                    .or_else(|| described.title.clone()),
                description: prop_schema
                    .description
                    .clone()
                    .or_else(|| described.description.clone()),
                min_length: described.min_length,
                max_length: described.max_length,
            });
        }
        Ok(fields)
    }

    /// The type of a value, and whether it also accepts `null`.
    pub(super) fn type_ref(
        &mut self,
        schema: &'d Schema,
        pointer: &str,
    ) -> Result<(ir::TypeRef, bool)> {
        if let Some(reference) = &schema.reference {
            let (target, at, name) = self.resolve_schema_ref(reference, pointer)?;
            // A schema reached again while it is being lowered is fine once it has a named
            // type (objects and titled unions register theirs before lowering their parts);
            // anything else (an array of itself, a nullable alias of itself) has no finite type.
            if self.visiting.contains(&at) && !self.types.contains_key(&at) {
                return Err(GenerateError::InfiniteType {
                    pointer: at,
                    detail: format!("the schema contains itself through the `$ref` at {pointer} with no object or titled union in between, so it has no finite type; expected the recursion to pass through an object property"),
                });
            }
            self.visiting.push(at.clone());
            let lowered = self.named_or_inline(target, &at, Some(&name));
            self.visiting.pop();
            return lowered;
        }
        check_keywords(schema, pointer)?;
        self.named_or_inline(schema, pointer, None)
    }

    /// The type of a schema that is not a `$ref`: a scalar, an array, or a named type (object,
    /// enumeration, union), and whether `null` is also allowed. A schema with no type is any
    /// value, unless its `enum` or `properties` say which type it means.
    pub(super) fn named_or_inline(
        &mut self,
        schema: &'d Schema,
        pointer: &str,
        component: Option<&str>,
    ) -> Result<(ir::TypeRef, bool)> {
        check_keywords(schema, pointer)?;
        if let Some(alternatives) = schema.one_of.as_ref().or(schema.any_of.as_ref()) {
            let keyword = if schema.one_of.is_some() {
                "oneOf"
            } else {
                "anyOf"
            };
            return self.union(schema, alternatives, keyword, pointer, component);
        }
        let (type_name_str, nullable) = match &schema.type_names {
            None => {
                if schema.enumeration.is_some() {
                    ("string".to_owned(), false)
                } else if !schema.properties.is_empty() {
                    ("object".to_owned(), false)
                } else {
                    return Ok((ir::TypeRef::Any, false));
                }
            }
            Some(TypeNames::One(t)) => (t.clone(), false),
            Some(TypeNames::Many(ts)) => {
                let non_null: Vec<&String> = ts.iter().filter(|t| *t != "null").collect();
                let nullable = non_null.len() < ts.len();
                match non_null.as_slice() {
                    [] => ("null".to_owned(), false),
                    [only] => ((*only).clone(), nullable),
                    _ => {
                        return Err(GenerateError::UnsupportedType {
                            pointer: format!("{pointer}/type"),
                            detail: "a value of several non-null types is not supported; expected one type, optionally with `null`".into(),
                        })
                    }
                }
            }
        };
        let ty = match type_name_str.as_str() {
            "string" if schema.enumeration.is_some() => self.string_enum(schema, pointer, component)?,
            "string" => ir::TypeRef::String,
            "integer" => ir::TypeRef::Integer,
            "number" => ir::TypeRef::Number,
            "boolean" => ir::TypeRef::Boolean,
            "null" => ir::TypeRef::Null,
            "array" => match &schema.items {
                None => ir::TypeRef::Array {
                    item: Box::new(ir::TypeRef::Any),
                },
                Some(items) => {
                    let (item, item_nullable) = self.type_ref(items, &format!("{pointer}/items"))?;
                    let item = if item_nullable {
                        ir::TypeRef::Nullable { inner: Box::new(item) }
                    } else {
                        item
                    };
                    ir::TypeRef::Array { item: Box::new(item) }
                }
            },
            "object" if schema.properties.is_empty() => ir::TypeRef::Any,
            "object" => self.object(schema, pointer, component)?,
            other => {
                return Err(GenerateError::UnsupportedType {
                    pointer: format!("{pointer}/type"),
                    detail: format!("unknown type `{other}`; expected string, integer, number, boolean, null, array or object"),
                })
            }
        };
        if schema.enumeration.is_some() && type_name_str != "string" {
            return Err(GenerateError::UnsupportedType {
                pointer: format!("{pointer}/enum"),
                detail: "only string enumerations are supported".into(),
            });
        }
        Ok((ty, nullable))
    }

    /// A `oneOf` / `anyOf`: `T | null` when only one alternative is not `null` (pydantic writes
    /// `Optional[T]` so), else a named union whose alternatives are tried in document order.
    fn union(
        &mut self,
        schema: &'d Schema,
        alternatives: &'d [Schema],
        keyword: &str,
        pointer: &str,
        component: Option<&str>,
    ) -> Result<(ir::TypeRef, bool)> {
        let non_null: Vec<(usize, &Schema)> = alternatives
            .iter()
            .enumerate()
            .filter(|(_, s)| !is_null_schema(s))
            .collect();
        let nullable = non_null.len() < alternatives.len();
        if let [(i, only)] = non_null.as_slice() {
            let (ty, inner_nullable) = self.type_ref(only, &format!("{pointer}/{keyword}/{i}"))?;
            return Ok((ty, nullable || inner_nullable));
        }
        let construct = format!("a `{keyword}` of several types");
        let (name, new) = self.declare(schema, pointer, component, &construct)?;
        if !new {
            return Ok((named(&name), nullable));
        }
        let mut variants: Vec<ir::UntaggedVariant> = Vec::new();
        for (i, alternative) in non_null {
            let alt_pointer = format!("{pointer}/{keyword}/{i}");
            let (ty, alt_nullable) = self.type_ref(alternative, &alt_pointer)?;
            let ty = if alt_nullable {
                ir::TypeRef::Nullable {
                    inner: Box::new(ty),
                }
            } else {
                ty
            };
            // A variant is named by its alternative's title, or else by its type
            // (`String`, `IntegerList`, ...).
            let described = self.follow(alternative, &alt_pointer)?;
            let variant_name = described
                .title
                .as_deref()
                .map(pascal_case)
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| variant_name_for(&ty));
            check_variant_name(&variant_name, &alt_pointer, || {
                "the alternative's title".to_owned()
            })?;
            if variants.iter().any(|v| v.name == variant_name) {
                return Err(GenerateError::NameTaken {
                    pointer: alt_pointer,
                    detail: format!("two alternatives are both named `{variant_name}`; give them distinct `title`s"),
                });
            }
            variants.push(ir::UntaggedVariant {
                name: variant_name,
                ty,
                description: described.description.clone(),
            });
        }
        // Listed behind its alternatives' types, which read first in the generated file.
        if let Some(mut t) = self.types.shift_remove(pointer) {
            t.kind = ir::TypeKind::Untagged { variants };
            self.types.insert(pointer.to_owned(), t);
        }
        Ok((named(&name), nullable))
    }

    /// The name of the type the schema at `pointer` defines, claimed and registered (with no
    /// parts yet) when it is reached for the first time; `None` when it was registered before.
    /// Registering before the parts are lowered lets a part that refers back to the type (through
    /// an array) resolve to its name instead of recursing. A schema with neither a title nor a
    /// component name is refused, naming the `construct` that needs one.
    fn declare(
        &mut self,
        schema: &'d Schema,
        pointer: &str,
        component: Option<&str>,
        construct: &str,
    ) -> Result<(String, bool)> {
        if let Some(existing) = self.types.get(pointer) {
            return Ok((existing.name.clone(), false));
        }
        let name = type_name(schema, component).ok_or_else(|| GenerateError::MissingTitle {
            pointer: pointer.to_owned(),
            construct: construct.to_owned(),
        })?;
        self.claim_name(&name, pointer)?;
        let placeholder = ir::TypeDef {
            name: name.clone(),
            description: schema.description.clone(),
            pointer: pointer.to_owned(),
            kind: ir::TypeKind::Struct { fields: Vec::new() },
            action: None,
            rust_path: rust_path(schema, pointer)?,
        };
        self.types.insert(pointer.to_owned(), placeholder);
        Ok((name, true))
    }

    /// Sets the shape of a type [`Self::declare`] registered.
    fn define(&mut self, pointer: &str, kind: ir::TypeKind) {
        if let Some(t) = self.types.get_mut(pointer) {
            t.kind = kind;
        }
    }

    /// The struct of an object schema with properties (one without is any JSON object, held as
    /// a value: there is nothing to name).
    pub(super) fn object(
        &mut self,
        schema: &'d Schema,
        pointer: &str,
        component: Option<&str>,
    ) -> Result<ir::TypeRef> {
        let (name, new) = self.declare(schema, pointer, component, "an inline object schema")?;
        if new {
            let fields = self.fields(schema, pointer, |_| false)?;
            self.define(pointer, ir::TypeKind::Struct { fields });
        }
        Ok(named(&name))
    }

    /// The enum of a string enumeration. Each value must give its own variant name, since the
    /// variant is how Rust code spells the value.
    pub(super) fn string_enum(
        &mut self,
        schema: &'d Schema,
        pointer: &str,
        component: Option<&str>,
    ) -> Result<ir::TypeRef> {
        let (name, new) = self.declare(schema, pointer, component, "an enumeration")?;
        if !new {
            return Ok(named(&name));
        }
        let mut variants: Vec<ir::EnumVariant> = Vec::new();
        for (i, value) in schema.enumeration.iter().flatten().enumerate() {
            let Some(value) = value.as_str() else {
                return Err(GenerateError::UnsupportedType {
                    pointer: format!("{pointer}/enum/{i}"),
                    detail: format!("enumeration value `{value}` is not a string; only string enumerations are supported"),
                });
            };
            let variant = pascal_case(value);
            check_variant_name(&variant, &format!("{pointer}/enum/{i}"), || {
                format!("enumeration value `{value}`")
            })?;
            if variants.iter().any(|v| v.name == variant) {
                return Err(GenerateError::NameTaken {
                    pointer: format!("{pointer}/enum/{i}"),
                    detail: format!(
                        "enumeration value `{value}` does not give a distinct variant name"
                    ),
                });
            }
            variants.push(ir::EnumVariant {
                name: variant,
                value: value.to_owned(),
            });
        }
        self.define(pointer, ir::TypeKind::StringEnum { variants });
        Ok(named(&name))
    }

    /// Takes a type name for the schema at `pointer`, refusing a name the generated code uses
    /// itself or another schema already took: two Rust types cannot share a name, and picking
    /// one schema over the other silently would generate the wrong type.
    pub(super) fn claim_name(&mut self, name: &str, pointer: &str) -> Result<()> {
        if RESERVED_TYPE_NAMES.contains(&name) {
            return Err(GenerateError::NameTaken {
                pointer: pointer.to_owned(),
                detail: format!("the type name `{name}` is reserved by the generated code; choose another `title`"),
            });
        }
        match self.names.get(name) {
            Some(other) if other != pointer => Err(GenerateError::NameTaken {
                pointer: pointer.to_owned(),
                detail: format!("the type name `{name}` is already taken by the schema at {other}; give one of them another `title`"),
            }),
            _ => {
                self.names.insert(name.to_owned(), pointer.to_owned());
                Ok(())
            }
        }
    }
}

/// Refuses a named type that contains itself other than through an array. Rust needs an
/// indirection to hold a value inside a value of the same type, and the generated types only have
/// one where JSON has one that can be empty: an array (`struct Node { next: Option<Node> }` has no
/// finite size; `struct Node { children: Vec<Node> }` does).
pub(super) fn check_finite(types: &IndexMap<String, ir::TypeDef>) -> Result<()> {
    /// The named types `ty` holds inline (arrays hold theirs on the heap).
    fn inline_names<'a>(ty: &'a ir::TypeRef, out: &mut Vec<&'a str>) {
        match ty {
            ir::TypeRef::Named { name } => out.push(name),
            ir::TypeRef::Nullable { inner } => inline_names(inner, out),
            _ => {}
        }
    }
    let by_name: HashMap<&str, &ir::TypeDef> =
        types.values().map(|t| (t.name.as_str(), t)).collect();
    let contains = |def: &'_ ir::TypeDef| {
        let mut out = Vec::new();
        match &def.kind {
            ir::TypeKind::Struct { fields } => {
                for f in fields {
                    inline_names(&f.ty, &mut out);
                }
            }
            ir::TypeKind::Untagged { variants } => {
                for v in variants {
                    inline_names(&v.ty, &mut out);
                }
            }
            ir::TypeKind::StringEnum { .. } => {}
        }
        // Reversed, so that popping visits them in document order.
        out.into_iter()
            .rev()
            .map(str::to_owned)
            .collect::<Vec<String>>()
    };
    // Depth-first search; `path` holds the types being visited, `done` those known to be finite.
    let mut done: BTreeSet<String> = BTreeSet::new();
    for start in types.values() {
        if done.contains(&start.name) {
            continue;
        }
        let mut path: Vec<(String, Vec<String>)> = vec![(start.name.clone(), contains(start))];
        while let Some((_, pending)) = path.last_mut() {
            let Some(next) = pending.pop() else {
                if let Some((name, _)) = path.pop() {
                    done.insert(name);
                }
                continue;
            };
            if done.contains(&next) {
                continue;
            }
            if let Some(at) = path.iter().position(|(name, _)| *name == next) {
                let mut cycle: Vec<String> = path[at..]
                    .iter()
                    .map(|(name, _)| format!("`{name}`"))
                    .collect();
                cycle.push(format!("`{next}`"));
                let pointer = by_name
                    .get(next.as_str())
                    .map(|t| t.pointer.clone())
                    .unwrap_or_default();
                return Err(GenerateError::InfiniteType {
                    pointer,
                    detail: format!("the type `{next}` contains itself ({}) other than through an array, so it would have no finite size; expected the recursion to pass through an array (`type: array` with `items`)", cycle.join(" -> ")),
                });
            }
            if let Some(def) = by_name.get(next.as_str()) {
                path.push((next, contains(def)));
            }
        }
    }
    Ok(())
}

/// Names the generated file already uses at its top level (the prelude and its imports) or in
/// every channel module, which a schema title must not take.
pub(super) const RESERVED_TYPE_NAMES: [&str; 25] = [
    "Self",
    // Imported by the generated file and its channel modules.
    "Decode",
    "Dispatched",
    "Framed",
    "Send",
    "Sync",
    "Sized",
    // Items of every channel module, which sees the payload types through `use super::*`.
    "Params",
    "ParamsError",
    "Incoming",
    "Outgoing",
    "Handler",
    "Ctx",
    "H",
    "Option",
    "Result",
    "String",
    "Vec",
    "Box",
    "Some",
    "None",
    "Ok",
    "Err",
    "Serialize",
    "Deserialize",
];

/// The `x-rust-type` of a schema: a Rust path (`protocol_runtime::ErrorItem`) the Rust target
/// uses instead of generating a type, for a shape the runtime already provides.
pub(super) fn rust_path(schema: &Schema, pointer: &str) -> Result<Option<String>> {
    let Some(value) = schema.extra.get("x-rust-type") else {
        return Ok(None);
    };
    let path = value.as_str().unwrap_or_default();
    let is_path = !path.is_empty()
        && path.split("::").all(|segment| {
            segment.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if !is_path {
        return Err(GenerateError::RustType {
            pointer: format!("{pointer}/x-rust-type"),
            found: value.to_string(),
        });
    }
    Ok(Some(path.to_owned()))
}

/// A reference to the named type `name`.
pub(super) fn named(name: &str) -> ir::TypeRef {
    ir::TypeRef::Named {
        name: name.to_owned(),
    }
}

/// A schema's type name: its `title`, else the name of the component it is, in `PascalCase`.
pub(super) fn type_name(schema: &Schema, component: Option<&str>) -> Option<String> {
    schema
        .title
        .as_deref()
        .or(component)
        .map(pascal_case)
        .filter(|n| !n.is_empty())
}

/// The variant name of an untitled union alternative, from its type (`String`, `IntegerList`).
pub(super) fn variant_name_for(ty: &ir::TypeRef) -> String {
    match ty {
        ir::TypeRef::String => "String".into(),
        ir::TypeRef::Integer => "Integer".into(),
        ir::TypeRef::Number => "Number".into(),
        ir::TypeRef::Boolean => "Boolean".into(),
        ir::TypeRef::Null => "Null".into(),
        ir::TypeRef::Any => "Value".into(),
        ir::TypeRef::Array { item } => format!("{}List", variant_name_for(item)),
        ir::TypeRef::Nullable { inner } => format!("Optional{}", variant_name_for(inner)),
        ir::TypeRef::Named { name } => name.clone(),
    }
}

/// `type: 'null'` (the `None` of pydantic's `Optional[T]` written as `anyOf`).
pub(super) fn is_null_schema(s: &Schema) -> bool {
    matches!(&s.type_names, Some(TypeNames::One(t)) if t == "null") && s.reference.is_none()
}

/// Refuses a keyword the generator does not enforce (`pattern`, `minimum`, ...): generated code
/// that accepted values the schema forbids would break the contract quietly. Extensions (`x-`)
/// and keywords that only document a value are accepted.
pub(super) fn check_keywords(schema: &Schema, pointer: &str) -> Result<()> {
    for keyword in schema.extra.keys() {
        if keyword.starts_with("x-") || DOC_ONLY_KEYWORDS.contains(&keyword.as_str()) {
            continue;
        }
        return Err(GenerateError::UnsupportedKeyword {
            pointer: pointer.to_owned(),
            keyword: keyword.clone(),
        });
    }
    Ok(())
}
