// Binaries and tests find the sherpa-onnx libraries without LD_LIBRARY_PATH:
// sherpa-onnx-sys copies them next to the binaries (target/<profile>/), and the
// set-up directory is added as a fallback.
fn main() {
    println!("cargo:rerun-if-env-changed=SHERPA_ONNX_LIB_DIR");
    let mut rpath = String::from("$ORIGIN:$ORIGIN/..");
    if let Ok(dir) = std::env::var("SHERPA_ONNX_LIB_DIR") {
        rpath.push(':');
        rpath.push_str(&dir);
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{rpath}");
}
