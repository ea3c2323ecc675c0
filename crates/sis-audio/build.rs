// opencore-amr (Debian: libopencore-amrnb-dev, libopencore-amrwb-dev).
fn main() {
    println!("cargo:rustc-link-lib=opencore-amrnb");
    println!("cargo:rustc-link-lib=opencore-amrwb");
}
