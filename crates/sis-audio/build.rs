// opencore-amr (Debian: libopencore-amrnb-dev, libopencore-amrwb-dev).
// LAME (Debian: libmp3lame-dev), LGPL: always the shared library, never a
// static one, so no LGPL code is compiled into our binaries.
// libopus (Debian: libopus-dev) is found through pkg-config by audiopus_sys,
// the `opus` crate's binding.
fn main() {
    println!("cargo:rustc-link-lib=opencore-amrnb");
    println!("cargo:rustc-link-lib=opencore-amrwb");
    println!("cargo:rustc-link-lib=dylib=mp3lame");
}
