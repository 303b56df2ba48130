//! The generator's output for every fixture document of `codegen/tests/fixtures/`, each in its
//! own module, so that `cargo build` proves every snapshot compiles (not only the room chat
//! protocol), and the tests below exercise it: decode the documents' examples, dispatch to a
//! handler, and round-trip through serde.

macro_rules! fixture {
    ($name:ident) => {
        #[doc = concat!("Generated from `codegen/tests/fixtures/", stringify!($name), ".yaml`.")]
        pub mod $name {
            include!(concat!(env!("OUT_DIR"), "/", stringify!($name), ".rs"));
        }
    };
}

fixture!(nested_types);
fixture!(two_channels);
fixture!(two_parameters);
fixture!(unions);
