// The same rpath as sis-engine's: one build script for both packages.
include!("../sis-engine/build.rs");
