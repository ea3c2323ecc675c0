//! Test-only helpers. Nothing in the server depends on this crate.
