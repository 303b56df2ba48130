//! Payload types: a struct per object schema, an enum per string enumeration or union, each
//! with serde and schemars derives and an implementation of the reporting decoder
//! (`protocol_runtime::decode::Decode`).

use std::collections::BTreeSet;

use proc_macro2::TokenStream;
use quote::quote;

use super::{doc_or, ident, rust_type, variant_renames, Result};
use crate::ir::{EnumVariant, Field, TypeDef, TypeKind, TypeRef, UntaggedVariant};

/// Which named types serde may read on the frame path of `protocol_runtime::frame`: everything
/// but unions (serde's `untagged` buffers the value and retries each alternative with its own,
/// more lenient, deserializer), and types that hold one. A message whose frame type is not
/// admitted is read by the reporting decoder alone.
pub(super) struct FastPath {
    slow: BTreeSet<String>,
}

impl FastPath {
    /// The types serde may read, from every type of the document.
    pub(super) fn of(types: &[TypeDef]) -> Self {
        let mut slow: BTreeSet<String> = types
            .iter()
            .filter(|t| match &t.kind {
                TypeKind::Untagged { .. } => true,
                TypeKind::Struct { .. } | TypeKind::StringEnum { .. } => false,
            })
            .map(|t| t.name.clone())
            .collect();
        // Until nothing changes: a struct holding a slow type is slow.
        loop {
            let before = slow.len();
            for t in types {
                if let TypeKind::Struct { fields } = &t.kind {
                    if fields
                        .iter()
                        .any(|f| names_in(&f.ty).any(|n| slow.contains(n)))
                    {
                        slow.insert(t.name.clone());
                    }
                }
            }
            if slow.len() == before {
                return Self { slow };
            }
        }
    }

    /// Whether serde may read a value of the named type.
    pub(super) fn admits(&self, name: &str) -> bool {
        !self.slow.contains(name)
    }
}

/// The named types a type refers to.
fn names_in(ty: &TypeRef) -> Box<dyn Iterator<Item = &str> + '_> {
    match ty {
        TypeRef::Named { name } => Box::new(std::iter::once(name.as_str())),
        TypeRef::Array { item } => names_in(item),
        TypeRef::Nullable { inner } => names_in(inner),
        _ => Box::new(std::iter::empty()),
    }
}

/// The items of one named type.
pub(super) fn render(def: &TypeDef) -> Result<TokenStream> {
    let name = ident(&def.name)?;
    let docs = doc_or(def.description.as_deref(), || {
        format!("Generated from the schema at `{}`.", def.pointer)
    });
    if let Some(path) = &def.rust_path {
        return reexport(def, path, &docs);
    }
    match &def.kind {
        TypeKind::Struct { fields } => structure(def, &name, &docs, fields),
        TypeKind::StringEnum { variants } => string_enum(&def.name, &docs, variants),
        TypeKind::Untagged { variants } => union(&name, &docs, variants),
    }
}

/// A schema the document maps to an existing Rust type (`x-rust-type`).
fn reexport(def: &TypeDef, path: &str, docs: &TokenStream) -> Result<TokenStream> {
    let path: syn::Path = syn::parse_str(path).map_err(|e| crate::GenerateError::InvalidRust {
        file: "protocol.rs".into(),
        message: format!("`{path}` is not a path: {e}"),
    })?;
    let last = path.segments.last().map(|s| s.ident.to_string());
    if last.as_deref() == Some(def.name.as_str()) {
        return Ok(quote! { #docs pub use #path; });
    }
    let name = ident(&def.name)?;
    Ok(quote! { #docs pub use #path as #name; })
}

impl Field {
    /// A string with `minLength` or `maxLength`, which only the reporting decoder checks.
    fn has_length_limit(&self) -> bool {
        self.ty == TypeRef::String && (self.min_length.is_some() || self.max_length.is_some())
    }

    /// `null` and any value need no `Option`: absent and `null` mean the same to them.
    fn holds_absence(&self) -> bool {
        matches!(self.ty, TypeRef::Null | TypeRef::Any)
    }

    /// How the field is held: `T` when always present and never null, `Option<T>` otherwise.
    fn rust_type(&self) -> Result<TokenStream> {
        let inner = rust_type(&self.ty)?;
        if self.holds_absence() || (self.required && !self.nullable) {
            return Ok(inner);
        }
        Ok(quote!(Option<#inner>))
    }

    /// The serde attribute, when the field needs one:
    /// - `rename`, when the wire name is not the Rust name;
    /// - an optional field has a `default`; when its schema does not admit `null` it is left
    ///   out rather than written as `null`, and `null` is refused on reading
    ///   (`frame::present`), as pydantic refuses it;
    /// - a required nullable field must be present (serde would take a missing `Option` as
    ///   `None`; `frame::nullable` turns that off);
    /// - a string with `minLength` / `maxLength` is read by `frame::text` (or
    ///   `frame::present_text`), which checks them as the reporting decoder does.
    fn serde_attr(&self) -> Option<TokenStream> {
        let mut parts = Vec::new();
        let wire = &self.json_name;
        if self.rust_name.trim_start_matches("r#") != wire {
            parts.push(quote!(rename = #wire));
        }
        let omittable = !self.required && !self.nullable && !self.holds_absence();
        if !self.required {
            parts.push(quote!(default));
        }
        if omittable {
            parts.push(quote!(skip_serializing_if = "Option::is_none"));
        }
        let reader = if self.has_length_limit() {
            let min = self.min_length.unwrap_or(0);
            let max = self
                .max_length
                .map_or_else(|| "{ usize::MAX }".to_owned(), |n| n.to_string());
            Some(if omittable {
                format!("protocol_runtime::frame::present_text::<_, {min}, {max}>")
            } else {
                format!("protocol_runtime::frame::text::<_, _, {min}, {max}>")
            })
        } else if omittable {
            Some("protocol_runtime::frame::present".to_owned())
        } else if self.required && self.nullable && !self.holds_absence() {
            Some("protocol_runtime::frame::nullable".to_owned())
        } else {
            None
        };
        if let Some(reader) = reader {
            parts.push(quote!(deserialize_with = #reader));
        }
        (!parts.is_empty()).then(|| quote!(#[serde(#(#parts),*)]))
    }

    /// The decoder's local for the field: its own name, unless that is one the decoder already
    /// uses.
    fn local(&self) -> Result<proc_macro2::Ident> {
        let bare = self.rust_name.trim_start_matches("r#");
        if ["value", "loc", "errors", "object", "decode"].contains(&bare) {
            return ident(&format!("field_{bare}"));
        }
        ident(&self.rust_name)
    }

    /// `let x = decode::required(object, "x", loc, errors);`, with its length check.
    fn decode_statement(&self) -> Result<TokenStream> {
        let local = self.local()?;
        let wire = &self.json_name;
        // An optional field that is not nullable may be left out but not sent as `null`.
        let read = if self.required {
            quote!(decode::required(object, #wire, loc, errors))
        } else if self.nullable || self.holds_absence() {
            quote!(decode::optional(object, #wire, loc, errors))
        } else {
            quote!(decode::omittable(object, #wire, loc, errors))
        };
        if !self.has_length_limit() {
            return Ok(quote! { let #local = #read; });
        }
        let limit = |n: Option<u64>| match n.and_then(|n| usize::try_from(n).ok()) {
            Some(n) => {
                let n = proc_macro2::Literal::usize_unsuffixed(n);
                quote!(Some(#n))
            }
            None => quote!(None),
        };
        let (min, max) = (limit(self.min_length), limit(self.max_length));
        Ok(quote! {
            let #local = #read;
            let #local = decode::length(#local, #min, #max, &loc.key(#wire), errors);
        })
    }
}

/// A struct and its `Decode`, which reads every field before giving up so that all of a frame's
/// problems are reported at once.
fn structure(
    def: &TypeDef,
    name: &proc_macro2::Ident,
    docs: &TokenStream,
    fields: &[Field],
) -> Result<TokenStream> {
    let frame_note = def.action.as_ref().map(|action| {
        let note = format!(
            " The frame of the `{action}` message; `action` is implied by the enum variant that holds it."
        );
        quote! { #[doc = ""] #[doc = #note] }
    });
    let mut members = Vec::new();
    let mut statements = Vec::new();
    let mut inits = Vec::new();
    for field in fields {
        let field_docs = doc_or(
            field.description.as_deref().or(field.title.as_deref()),
            || format!("The `{}` property.", field.json_name),
        );
        let attr = field.serde_attr();
        let member = ident(&field.rust_name)?;
        let ty = field.rust_type()?;
        members.push(quote! { #field_docs #attr pub #member: #ty });
        statements.push(field.decode_statement()?);
        let local = field.local()?;
        inits.push(quote! { #member: #local? });
    }
    let wire_name = &def.name;
    let object = if fields.is_empty() {
        quote! { decode::object(value, #wire_name, loc, errors)?; }
    } else {
        quote! { let object = decode::object(value, #wire_name, loc, errors)?; }
    };
    Ok(quote! {
        #docs
        #frame_note
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
        pub struct #name {
            #(#members,)*
        }

        impl Decode for #name {
            fn decode(
                value: &serde_json::Value,
                loc: &decode::Loc<'_>,
                errors: &mut Vec<protocol_runtime::ErrorItem>,
            ) -> Option<Self> {
                #object
                #(#statements)*
                Some(Self { #(#inits,)* })
            }
        }
    })
}

/// A string enumeration, `VALUES` and `as_str` for code that needs the wire strings, and its
/// `Decode`.
fn string_enum(name: &str, docs: &TokenStream, variants: &[EnumVariant]) -> Result<TokenStream> {
    let type_name = ident(name)?;
    let (rename_all, renames) =
        variant_renames(variants.iter().map(|v| (v.name.as_str(), v.value.as_str())));
    let container = rename_all.map(|r| quote!(#[serde(#r)]));
    let mut members = Vec::new();
    let mut arms = Vec::new();
    let mut decode_arms = Vec::new();
    for (variant, rename) in variants.iter().zip(renames) {
        let v = ident(&variant.name)?;
        let value = &variant.value;
        let note = format!(" `{value:?}`.");
        members.push(quote! { #[doc = #note] #rename #v });
        arms.push(quote! { Self::#v => #value });
        decode_arms.push(quote! { Some(#value) => Some(Self::#v) });
    }
    let values = variants.iter().map(|v| &v.value);
    Ok(quote! {
        #docs
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
        #container
        pub enum #type_name {
            #(#members,)*
        }

        impl #type_name {
            #[doc = " Every value, in document order."]
            pub const VALUES: &'static [&'static str] = &[#(#values),*];

            #[doc = " The value on the wire."]
            pub fn as_str(&self) -> &'static str {
                match self {
                    #(#arms,)*
                }
            }
        }

        impl Decode for #type_name {
            fn decode(
                value: &serde_json::Value,
                loc: &decode::Loc<'_>,
                errors: &mut Vec<protocol_runtime::ErrorItem>,
            ) -> Option<Self> {
                match value.as_str() {
                    #(#decode_arms,)*
                    _ => {
                        errors.push(decode::enum_error(Self::VALUES, loc));
                        None
                    }
                }
            }
        }
    })
}

/// An untagged union and its `Decode`.
fn union(
    name: &proc_macro2::Ident,
    docs: &TokenStream,
    variants: &[UntaggedVariant],
) -> Result<TokenStream> {
    let mut members = Vec::new();
    let mut attempts = Vec::new();
    for variant in variants {
        let v = ident(&variant.name)?;
        let ty = rust_type(&variant.ty)?;
        let variant_docs = doc_or(variant.description.as_deref(), || {
            format!("The `{}` alternative.", variant.name)
        });
        members.push(quote! { #variant_docs #v(#ty) });
        attempts.push(quote! {
            if let Some(decoded) = Decode::decode(value, loc, &mut problems) {
                return Some(Self::#v(decoded));
            }
        });
    }
    Ok(quote! {
        #docs
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(untagged)]
        pub enum #name {
            #(#members,)*
        }

        impl Decode for #name {
            #[doc = " Tries each alternative in document order; when none fits, reports every"]
            #[doc = " alternative's problems, so the client sees what each would have needed."]
            fn decode(
                value: &serde_json::Value,
                loc: &decode::Loc<'_>,
                errors: &mut Vec<protocol_runtime::ErrorItem>,
            ) -> Option<Self> {
                let mut problems = Vec::new();
                #(#attempts)*
                errors.extend(problems);
                None
            }
        }
    })
}
