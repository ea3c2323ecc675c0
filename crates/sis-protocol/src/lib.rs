//! The Huawei Cloud SIS wire format.
//!
//! Architecture invariant: this is the only crate that knows SIS JSON field
//! names, SIS error codes and their HTTP statuses. It turns request bodies into
//! validated `sis-core` values and `sis-core` values into response bodies.
//! It performs no I/O and knows nothing about audio decoding or engines.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod error;
pub mod flash;
pub mod iam;
pub mod openai;
pub mod query;
pub mod rasr;
pub mod short_audio;
pub mod transcriber;
pub mod tts;
pub mod vocabulary;

pub use error::{ApiError, SisCode};
