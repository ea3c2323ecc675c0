//! Text processing around recognition and synthesis.
//!
//! Architecture invariant: pure functions over strings; no I/O, no engine.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod itn;
pub mod punct;
pub mod tn;
mod zh;

pub use itn::{digit_norm, normalize, Piece};
pub use tn::{normalize_for_speech, split_sentences};
