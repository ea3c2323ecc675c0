//! Authentication logic of the SIS API, free of I/O: the server feeds it
//! headers, bodies, stored rows and the clock.

pub mod secrets;
pub mod sign;
pub mod throttle;

pub mod callback;
pub use secrets::MasterKey;
pub use sign::{Authorization, RequestParts, SignError};
pub use throttle::FailureLimiter;
