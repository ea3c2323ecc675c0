//! Text post-processing of recognised text.
//!
//! Architecture invariant: pure functions over strings; no I/O, no engine.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod itn;
pub mod punct;

pub use itn::{digit_norm, normalize, Piece};
