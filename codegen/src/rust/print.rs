//! Prints a syntax tree the way a person lays out a file: `prettyplease` for everything inside
//! an item, and a blank line between items, at every level (top level, modules, `impl` and
//! `trait` blocks). prettyplease alone puts items on consecutive lines.

use syn::{File, Item, ItemMod};

/// The items of a file, spaced out; consecutive `use` items stay together.
pub(crate) fn items(items: &[Item]) -> String {
    let mut out = String::new();
    let mut previous_was_use = false;
    for item in items {
        // Plain imports stay together; a documented re-export is an item of its own.
        let is_use = matches!(item, Item::Use(u) if u.attrs.is_empty());
        if !(out.is_empty() || is_use && previous_was_use) {
            out.push('\n');
        }
        out.push_str(&item_text(item));
        previous_was_use = is_use;
    }
    out
}

/// One item; a module, `impl` or `trait` with several members is opened so that its members
/// are spaced out too.
fn item_text(item: &Item) -> String {
    match item {
        Item::Mod(ItemMod {
            content: Some((brace, inner)),
            ..
        }) if !inner.is_empty() => {
            let Item::Mod(mut shell) = item.clone() else {
                return unparse(item);
            };
            shell.content = Some((*brace, Vec::new()));
            open(&unparse(&Item::Mod(shell)), &indent(&items(inner)))
        }
        Item::Impl(imp) if imp.items.len() > 1 => {
            let mut shell = imp.clone();
            shell.items.clear();
            let alone = imp.items.iter().map(|member| {
                let mut alone = shell.clone();
                alone.items = vec![member.clone()];
                Item::Impl(alone)
            });
            block(&Item::Impl(shell.clone()), alone)
        }
        Item::Trait(tr) if tr.items.len() > 1 => {
            let mut shell = tr.clone();
            shell.items.clear();
            let alone = tr.items.iter().map(|member| {
                let mut alone = shell.clone();
                alone.items = vec![member.clone()];
                Item::Trait(alone)
            });
            block(&Item::Trait(shell.clone()), alone)
        }
        _ => unparse(item),
    }
}

/// An `impl` or `trait` block: `shell` (the block with no members) opened around its members,
/// each printed inside a copy of the block that holds only it, a blank line between them.
fn block(shell: &Item, alone: impl Iterator<Item = Item>) -> String {
    let body = alone
        .map(|one| body_of(&unparse(&one)))
        .collect::<Vec<_>>()
        .join("\n");
    open(&unparse(shell), &body)
}

/// prettyplease's text of one item, alone in a file.
fn unparse(item: &Item) -> String {
    prettyplease::unparse(&File {
        shebang: None,
        attrs: Vec::new(),
        items: vec![item.clone()],
    })
}

/// `header {}` (an empty block as prettyplease prints it) opened around `body`.
fn open(shell: &str, body: &str) -> String {
    let head = shell
        .trim_end()
        .strip_suffix("{}")
        .unwrap_or(shell.trim_end());
    format!("{head}{{\n{body}}}\n")
}

/// The lines between the first line ending in `{` and the last line of a printed block.
fn body_of(block: &str) -> String {
    let lines: Vec<&str> = block.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.ends_with('{'))
        .map_or(0, |i| i + 1);
    let end = lines.len().saturating_sub(1).max(start);
    let mut out = lines[start..end].join("\n");
    out.push('\n');
    out
}

/// `text` one level (four spaces) deeper, blank lines left empty.
fn indent(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if !line.is_empty() {
            out.push_str("    ");
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn items_are_spaced_at_every_level() {
        let file: syn::File = syn::parse_quote! {
            use a::b;
            use c::d;
            const X: u8 = 1;
            pub mod m {
                struct S;
                impl S {
                    fn f() {}
                    fn g() {}
                }
            }
        };
        assert_eq!(
            super::items(&file.items),
            "use a::b;\nuse c::d;\n\nconst X: u8 = 1;\n\npub mod m {\n    struct S;\n\n    impl S {\n        fn f() {}\n\n        fn g() {}\n    }\n}\n"
        );
    }
}
