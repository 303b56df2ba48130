//! One module per channel: its address and parameters, the two direction enums, the handler
//! trait with one method per `receive` operation, and `dispatch`.

use proc_macro2::TokenStream;
use quote::quote;

use super::types::FastPath;
use super::{doc, doc_or, ident, paragraphs, variant_renames, Result};
use crate::ir::{Channel, MessageUse, Operation, Parameter, QueryParameter};

/// The module of one channel.
pub(super) fn render(channel: &Channel, fast: &FastPath) -> Result<TokenStream> {
    let module = ident(&channel.module)?;
    let docs = doc_or(
        paragraphs(&[&channel.title, &channel.summary, &channel.description]).as_deref(),
        || format!("The `{}` channel, at `{}`.", channel.id, channel.address),
    );
    let id = &channel.id;
    let address = &channel.address;
    let params = params(&channel.parameters)?;
    let query = query(&channel.query)?;
    let incoming = direction(
        "Incoming",
        "Messages a client sends on this channel (the server's `receive` operations).",
        &channel.incoming,
        fast,
    )?;
    let outgoing = direction(
        "Outgoing",
        "Messages the server sends on this channel (its `send` operations and replies). Only\nthese can be sent: anything else does not compile.",
        &channel.outgoing,
        fast,
    )?;
    let handler = handler(&channel.handlers)?;
    let dispatch = dispatch(&channel.handlers)?;
    Ok(quote! {
        #docs
        pub mod #module {
            use super::*;
            use protocol_runtime::{Dispatched, Framed};

            #[doc = " The channel's id in the document."]
            pub const CHANNEL: &str = #id;

            #[doc = " The channel's address; `{name}` stands for a parameter."]
            pub const ADDRESS: &str = #address;

            #params
            #query
            #incoming
            #outgoing
            #handler
            #dispatch
        }
    })
}

/// `Params`: one field per address parameter, parsed from a request path by the runtime, with
/// each parameter's allowed values (its `enum`) checked after decoding.
fn params(parameters: &[Parameter]) -> Result<TokenStream> {
    let mut fields = Vec::new();
    let mut names = Vec::new();
    let mut checks = Vec::new();
    for p in parameters {
        let name = ident(&p.rust_name)?;
        let mut docs = doc_or(p.description.as_deref(), || {
            format!("The `{{{}}}` parameter of the address.", p.name)
        });
        if !p.allowed.is_empty() {
            let listed: Vec<String> = p.allowed.iter().map(|a| format!("{a:?}")).collect();
            let note = format!(
                " One of {} ([`Params::from_path`] refuses any other value).",
                listed.join(", ")
            );
            docs.extend(quote! { #[doc = ""] #[doc = #note] });
            let wire = &p.name;
            let allowed = &p.allowed;
            checks.push(quote! {
                protocol_runtime::path::check_allowed(#wire, &#name, &[#(#allowed),*])?;
            });
        }
        fields.push(quote! { #docs pub #name: String });
        names.push(name);
    }
    Ok(quote! {
        #[doc = " The parameters of [`ADDRESS`]."]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub struct Params {
            #(#fields,)*
        }

        #[doc = " Why [`Params::from_path`] refused a path."]
        pub use protocol_runtime::ParamsError;

        impl Params {
            #[doc = " Parses a request path (without its query) against [`ADDRESS`]: the literal parts"]
            #[doc = " must match, and each parameter is the percent-decoded text of its place in the path"]
            #[doc = " (within one segment; `a%20b` is `a b`, `caf%C3%A9` is `café`). An empty value, a"]
            #[doc = " value that does not decode to UTF-8, or one outside the parameter's allowed values"]
            #[doc = " is refused, naming the parameter. A decoded value may contain `/` (from `%2F`);"]
            #[doc = " rules beyond the document's are the caller's."]
            pub fn from_path(path: &str) -> Result<Self, ParamsError> {
                let [#(#names),*] = protocol_runtime::path::parameters(ADDRESS, path)?;
                #(#checks)*
                Ok(Self { #(#names),* })
            }

            #[doc = " The concrete address, each parameter percent-encoded."]
            pub fn address(&self) -> String {
                protocol_runtime::path::address(ADDRESS, [#(&self.#names),*])
            }
        }
    })
}

/// `Query`, for a channel whose WebSocket binding declares query parameters: one optional
/// field per parameter, parsed from a handshake's query string by the runtime. Nothing for a
/// channel without them.
fn query(parameters: &[QueryParameter]) -> Result<TokenStream> {
    if parameters.is_empty() {
        return Ok(TokenStream::new());
    }
    let mut fields = Vec::new();
    let mut parses = Vec::new();
    let mut pairs = Vec::new();
    for q in parameters {
        let name = ident(&q.rust_name)?;
        let wire = &q.name;
        let docs = doc_or(q.description.as_deref(), || {
            format!("The `{wire}` query parameter (`None` when the query has none).")
        });
        fields.push(quote! { #docs pub #name: Option<String> });
        parses.push(quote! { #name: protocol_runtime::path::query_parameter(query, #wire)? });
        pairs.push(quote! { (#wire, self.#name.as_deref()) });
    }
    Ok(quote! {
        #[doc = " The query parameters of the handshake (the WebSocket binding's `query`), each"]
        #[doc = " optional."]
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub struct Query {
            #(#fields,)*
        }

        #[doc = " Why [`Query::from_query`] refused a query string."]
        pub use protocol_runtime::QueryError;

        impl Query {
            #[doc = " Reads a request's query string (the text after `?`, `None` without one): each"]
            #[doc = " parameter is the percent-decoded text of its first occurrence, `+` read as a"]
            #[doc = " space; unknown parameters are ignored. A value that does not decode to UTF-8 is"]
            #[doc = " refused, naming the parameter; rules beyond the document's are the caller's."]
            pub fn from_query(query: Option<&str>) -> Result<Self, QueryError> {
                Ok(Self { #(#parses,)* })
            }

            #[doc = " The query string (without `?`) of the parameters that are set, percent-encoded;"]
            #[doc = " empty when none is."]
            pub fn to_query(&self) -> String {
                protocol_runtime::path::query_string(&[#(#pairs),*])
            }
        }
    })
}

/// A direction enum, its inherent API and its `protocol_runtime::Messages` implementation.
fn direction(
    name: &str,
    enum_doc: &str,
    uses: &[MessageUse],
    fast: &FastPath,
) -> Result<TokenStream> {
    let enum_name = ident(name)?;
    let enum_docs = doc(enum_doc);
    let (rename_all, renames) =
        variant_renames(uses.iter().map(|u| (u.variant.as_str(), u.action.as_str())));
    let tag = match rename_all {
        Some(rename_all) => quote!(#[serde(tag = "action", #rename_all)]),
        None => quote!(#[serde(tag = "action")]),
    };
    let mut variants = Vec::new();
    let mut action_arms = Vec::new();
    let mut deserialize_arms = Vec::new();
    let mut decode_arms = Vec::new();
    for (u, rename) in uses.iter().zip(renames) {
        let variant = ident(&u.variant)?;
        let frame = ident(&u.frame_type)?;
        let action = &u.action;
        let docs = doc_or(u.summary.as_deref(), || format!("The `{action}` message."));
        variants.push(quote! { #docs #rename #variant(#frame) });
        action_arms.push(quote! { Self::#variant(_) => #action });
        if fast.admits(&u.frame_type) {
            deserialize_arms
                .push(quote! { #action => Deserialize::deserialize(fields).map(Self::#variant) });
        }
        decode_arms
            .push(quote! { #action => Decode::decode(frame, loc, errors).map(Self::#variant) });
    }
    let mut sorted: Vec<&str> = uses.iter().map(|u| u.action.as_str()).collect();
    sorted.sort_unstable();
    let action_body = if uses.is_empty() {
        quote!(match *self {})
    } else {
        quote!(match self { #(#action_arms,)* })
    };
    // A direction with no messages reads nothing: every frame names an unknown action.
    let frame_args = if uses.is_empty() {
        quote!(_frame: &serde_json::Value, _loc: &decode::Loc<'_>, _errors: &mut Vec<protocol_runtime::ErrorItem>)
    } else {
        quote!(frame: &serde_json::Value, loc: &decode::Loc<'_>, errors: &mut Vec<protocol_runtime::ErrorItem>)
    };
    // Without a message serde may read, every frame goes to the reporting decoder.
    let fields = if deserialize_arms.is_empty() {
        quote!(_fields)
    } else {
        quote!(fields)
    };
    let deserialize_body = if deserialize_arms.is_empty() {
        quote!(Err(protocol_runtime::frame::walker_only(action)))
    } else {
        quote! {
            match action {
                #(#deserialize_arms,)*
                _ => Err(protocol_runtime::frame::walker_only(action)),
            }
        }
    };
    let decode_body = if decode_arms.is_empty() {
        quote! { let _ = action; None }
    } else {
        quote! {
            match action {
                #(#decode_arms,)*
                _ => None,
            }
        }
    };
    Ok(quote! {
        #enum_docs
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
        #tag
        pub enum #enum_name {
            #(#variants,)*
        }

        impl #enum_name {
            #[doc = " Every action, sorted (the order error messages list them in)."]
            pub const ACTIONS: &'static [&'static str] = &[#(#sorted),*];

            #[doc = " The message's action."]
            pub fn action(&self) -> &'static str {
                #action_body
            }

            #[doc = " Reads a text frame: in one pass with serde when the frame is valid, and with the"]
            #[doc = " reporting decoder, which lists every problem in the protocol's error format, when"]
            #[doc = " it is not."]
            pub fn decode_text(
                text: &str,
            ) -> Result<Framed<Self>, Vec<protocol_runtime::ErrorItem>> {
                protocol_runtime::decode_text(text)
            }

            #[doc = " Reads a text frame with serde alone; `None` when serde refuses it."]
            pub fn deserialize_text(text: &str) -> Option<Framed<Self>> {
                protocol_runtime::deserialize_text(text)
            }

            #[doc = " Reads a frame already parsed as JSON with the reporting decoder."]
            pub fn decode_value(
                value: &serde_json::Value,
            ) -> Result<Framed<Self>, Vec<protocol_runtime::ErrorItem>> {
                protocol_runtime::decode_value(value)
            }
        }

        impl protocol_runtime::Messages for #enum_name {
            const ACTIONS: &'static [&'static str] = #enum_name::ACTIONS;

            fn deserialize_message<'de, D: serde::Deserializer<'de>>(
                action: &str,
                #fields: D,
            ) -> Result<Self, D::Error> {
                #deserialize_body
            }

            fn decode_message(action: &str, #frame_args) -> Option<Self> {
                #decode_body
            }
        }
    })
}

/// The `Handler` trait: one method per receive operation, returning the reply message when the
/// operation has one. Methods return `impl Future + Send` so a runtime can run handlers on a
/// multi-threaded executor without boxing every call.
fn handler(handlers: &[Operation]) -> Result<TokenStream> {
    let mut methods = Vec::new();
    for op in handlers {
        let [message] = op.messages.as_slice() else {
            continue;
        };
        let method = ident(&op.method)?;
        let frame = ident(&message.frame_type)?;
        let mut docs = doc_or(
            paragraphs(&[&op.summary, &op.description]).as_deref(),
            || format!("Handles the `{}` message.", message.action),
        );
        let (reply, note) = match &op.reply {
            Some(reply) => {
                let ty = ident(&reply.frame_type)?;
                let note = format!(
                    " Operation `{}`; its return value is sent back as `{}`, carrying the request's `ref`.",
                    op.id, reply.action
                );
                (quote!(#ty), note)
            }
            None => (quote!(()), format!(" Operation `{}`.", op.id)),
        };
        docs.extend(quote! { #[doc = ""] #[doc = #note] });
        methods.push(quote! {
            #docs
            fn #method(
                &self,
                ctx: &mut Ctx,
                message: #frame,
            ) -> impl std::future::Future<Output = Result<#reply, Self::Error>> + Send;
        });
    }
    Ok(quote! {
        #[doc = " The server side of the channel: one method per `receive` operation. Implement it and"]
        #[doc = " hand frames to [`dispatch`]. `Ctx` is the runtime's per-connection context (how a"]
        #[doc = " handler reaches its connection, groups and layers); this crate knows nothing about it."]
        pub trait Handler<Ctx: Send>: Send + Sync {
            #[doc = " Why a handler failed. It is logged by the runtime; the client only learns that the"]
            #[doc = " action failed."]
            type Error: std::fmt::Display + Send;

            #(#methods)*
        }
    })
}

/// `dispatch`: decode, call the handler of the message, and frame its reply with the request's
/// `ref`. Undecodable frames and failed handlers are outcomes, not errors: the runtime answers
/// them with `error` frames and keeps the connection open.
fn dispatch(handlers: &[Operation]) -> Result<TokenStream> {
    let mut arms = Vec::new();
    for op in handlers {
        let [message] = op.messages.as_slice() else {
            continue;
        };
        let method = ident(&op.method)?;
        let variant = ident(&message.variant)?;
        let action = &message.action;
        let outcome = match &op.reply {
            Some(reply) => {
                let reply_variant = ident(&reply.variant)?;
                quote! {
                    let reply = handler.#method(ctx, message).await.map(Outgoing::#reply_variant);
                    Dispatched::replied(#action, reply, &frame.envelope)
                }
            }
            None => quote! {
                let result = handler.#method(ctx, message).await;
                Dispatched::handled(#action, result, &frame.envelope)
            },
        };
        arms.push(quote! { Incoming::#variant(message) => { #outcome } });
    }
    let unused = handlers.is_empty().then(|| {
        quote! { let _ = (handler, ctx); }
    });
    Ok(quote! {
        #[doc = " Reads one text frame and runs the matching handler method."]
        #[doc = ""]
        #[doc = " Frames are handled one at a time by the caller's loop, so a client's frames take"]
        #[doc = " effect in the order it sent them."]
        pub async fn dispatch<Ctx: Send, H: Handler<Ctx>>(
            handler: &H,
            ctx: &mut Ctx,
            text: &str,
        ) -> Dispatched<Outgoing, H::Error> {
            let frame = match Incoming::decode_text(text) {
                Ok(frame) => frame,
                Err(errors) => return Dispatched::Rejected { errors },
            };
            #unused
            match frame.message {
                #(#arms)*
            }
        }
    })
}
