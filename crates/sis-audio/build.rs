// opencore-amr (Debian: libopencore-amrnb-dev, libopencore-amrwb-dev).
// libopus (Debian: libopus-dev) is found through pkg-config by audiopus_sys,
// the `opus` crate's binding.
fn main() {
    println!("cargo:rustc-link-lib=opencore-amrnb");
    println!("cargo:rustc-link-lib=opencore-amrwb");
}
