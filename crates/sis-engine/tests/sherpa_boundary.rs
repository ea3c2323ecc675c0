//! The sealed engine boundary, as a test: sherpa-onnx is named only in
//! `src/sherpa.rs`, only that module may allow the clippy lints that
//! `clippy.toml` configures to keep it there, every sherpa-onnx item that
//! module imports is on that list, and no other crate depends on sherpa-onnx.
//! (`cargo clippy` enforces the list itself; this catches what clippy cannot
//! see, and a list or an `allow` that drifted.)
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// The crate's name as code spells it (built so this file does not contain it).
fn crate_ident() -> String {
    ["sherpa", "onnx"].join("_")
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn crate_sources() -> Vec<PathBuf> {
    let root = manifest_dir();
    let mut files = vec![root.join("build.rs")];
    for dir in ["src", "tests", "benches", "examples"] {
        rust_files(&root.join(dir), &mut files);
    }
    files.retain(|f| f.is_file());
    files
}

fn sherpa_rs() -> PathBuf {
    manifest_dir().join("src").join("sherpa.rs")
}

/// Lines of `text` that mention `needle`, as "file:line: text".
fn mentions(file: &Path, text: &str, needle: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .map(|(i, l)| format!("{}:{}: {}", file.display(), i + 1, l.trim()))
        .collect()
}

#[test]
fn sherpa_is_named_only_in_sherpa_rs() {
    let ident = crate_ident();
    let sources = crate_sources();
    assert!(sources.len() > 5, "found only {sources:?}");
    let mut found = Vec::new();
    for f in &sources {
        if *f == sherpa_rs() {
            continue;
        }
        found.extend(mentions(f, &std::fs::read_to_string(f).unwrap(), &ident));
    }
    assert!(
        found.is_empty(),
        "sherpa-onnx used outside src/sherpa.rs (wrap it there instead):\n{}",
        found.join("\n")
    );
    // and the scan sees the one module that does use it
    let sherpa = std::fs::read_to_string(sherpa_rs()).unwrap();
    assert!(!mentions(&sherpa_rs(), &sherpa, &ident).is_empty());
}

#[test]
fn only_sherpa_rs_allows_the_boundary_lints() {
    // built from parts, like the crate's name, so this file passes its own scan
    let lints = ["types", "methods", "fields"].map(|what| format!("disallowed_{what}"));
    let mut found = Vec::new();
    for f in crate_sources() {
        if f == sherpa_rs() {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for lint in &lints {
            found.extend(mentions(&f, &text, lint));
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
    let sherpa = std::fs::read_to_string(sherpa_rs()).unwrap();
    // the module's own `#![allow(...)]`, however it is wrapped
    let allow = sherpa
        .find("#![allow(")
        .map(|i| &sherpa[i..])
        .and_then(|a| a.find(")]").map(|j| &a[..j]))
        .unwrap_or_default();
    for lint in lints {
        assert!(
            allow.contains(&format!("clippy::{lint}")),
            "src/sherpa.rs must allow clippy::{lint}: {allow}"
        );
    }
}

#[test]
fn every_item_sherpa_rs_imports_is_disallowed_elsewhere() {
    let ident = crate_ident();
    let config = std::fs::read_to_string(manifest_dir().join("clippy.toml")).unwrap();
    let sherpa = std::fs::read_to_string(sherpa_rs()).unwrap();
    // the names in `use <crate>::{...};`
    let start = sherpa
        .find(&format!("use {ident}::{{"))
        .expect("sherpa.rs imports the crate's items in one `use`");
    let list = &sherpa[start..];
    let list = &list[list.find('{').unwrap() + 1..list.find('}').unwrap()];
    let names: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    assert!(names.len() >= 5, "{names:?}");
    let missing: Vec<&&str> = names
        .iter()
        .filter(|n| !config.contains(&format!("path = \"{ident}::{n}\"")))
        .collect();
    assert!(
        missing.is_empty(),
        "clippy.toml does not disallow {missing:?}: rerun tools/sherpa_boundary_clippy.py"
    );
    for key in [
        "disallowed-types",
        "disallowed-fields",
        "disallowed-methods",
    ] {
        assert!(config.contains(&format!("{key} = [")), "{key}");
    }
}

#[test]
fn no_other_crate_depends_on_sherpa() {
    let crates = manifest_dir().join("..");
    let mut found = Vec::new();
    for e in std::fs::read_dir(&crates).unwrap().flatten() {
        let toml = e.path().join("Cargo.toml");
        if e.path().ends_with("sis-engine") || !toml.is_file() {
            continue;
        }
        // a dependency is a key (`sherpa-onnx = ...`, `sherpa-onnx.workspace`)
        // or a renamed one's `package`; descriptions may name the project
        let text = std::fs::read_to_string(&toml).unwrap();
        for (i, line) in text.lines().enumerate() {
            let l = line.trim_start().replace('_', "-");
            if l.starts_with("sherpa-onnx") || l.contains("package = \"sherpa-onnx") {
                found.push(format!("{}:{}: {line}", toml.display(), i + 1));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// Whether `line` has `word` as a whole identifier (`Engine`, not `EngineError`).
fn has_ident(line: &str, word: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    line.match_indices(word).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

#[test]
fn the_scheduler_stream_workers_and_file_pipeline_never_see_the_registry() {
    // they get the chosen model, a VadSource and the Postprocessor; the
    // registry (and the Engine around it) stays in lib.rs and registry.rs
    let src = manifest_dir().join("src");
    let mut files = Vec::new();
    for f in ["batch.rs", "file.rs"] {
        files.push(src.join(f));
    }
    rust_files(&src.join("stream"), &mut files);
    files.push(src.join("stream.rs"));
    let mut found = Vec::new();
    for f in files.iter().filter(|f| !f.ends_with("tests.rs")) {
        let text = std::fs::read_to_string(f).unwrap();
        for (i, line) in text.lines().enumerate() {
            if ["Registry", "Engine"].iter().any(|w| has_ident(line, w)) {
                found.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(files.len() >= 4, "{files:?}");
    assert!(found.is_empty(), "{}", found.join("\n"));
}
