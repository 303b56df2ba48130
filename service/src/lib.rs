//! The room chat service.
