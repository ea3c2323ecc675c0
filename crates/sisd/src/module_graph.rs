//! Build checks over the source of this crate: the modules of
//! `crates/sisd/src` form no import cycle, and SIS codes are chosen only in
//! `errors.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Modules that exist only in tests (they may reach anything).
const TEST_MODULES: [&str; 2] = ["module_graph", "router_tests"];

/// The crate's modules (one file each) and their source, tests left out.
fn sources() -> BTreeMap<String, String> {
    sources_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

/// The modules in `dir` and their source, tests left out.
fn sources_in(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("an entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a UTF-8 name")
            .to_string();
        if TEST_MODULES.contains(&name.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable source");
        out.insert(name, without_tests(&text));
    }
    out
}

/// The code before its `#[cfg(test)] mod tests` (tests may use anything),
/// without comment lines.
fn without_tests(text: &str) -> String {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The modules `text` refers to: `crate::x` (in `use` or in paths) and
/// `use crate::{x, y::z}`. An item of the crate root counts as `main`.
fn references(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut add = |name: &str| {
        if modules.contains(name) {
            out.insert(name.to_string());
        } else if !name.is_empty() {
            out.insert("main".to_string());
        }
    };
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(is_ident) {
            continue; // e.g. `sis_crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item.trim().chars().take_while(|c| is_ident(*c)).collect();
                add(&name);
            }
        } else {
            let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
            add(&name);
        }
    }
    out
}

/// Each module's references to the others.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let sources = sources();
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    sources
        .iter()
        .map(|(name, text)| {
            // the root declares every module; a module that reaches back
            // to an item of the root closes a cycle
            let mut refs = if name == "main" {
                modules.clone()
            } else {
                references(text, &modules)
            };
            refs.remove(name);
            (name.clone(), refs)
        })
        .collect()
}

/// A cycle, as the modules on it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_string(), Mark::Open);
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, marks, path) {
                return Some(c);
            }
        }
        path.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if let Some(c) = visit(node, graph, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[test]
fn sisd_modules_have_no_import_cycle() {
    let graph = graph();
    assert!(graph.len() > 10, "the modules were not found: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "import cycle in crates/sisd/src: {}\nthe graph: {graph:#?}",
            cycle.join(" -> ")
        );
    }
}

/// sisd's other modules and the job crate, whose failures sisd maps.
#[test]
fn sis_codes_are_chosen_in_errors_rs() {
    let jobs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sis-jobs/src");
    let files = sources()
        .into_iter()
        .filter(|(name, _)| name != "errors")
        .map(|(name, text)| (format!("sisd/src/{name}.rs"), text))
        .chain(
            sources_in(&jobs)
                .into_iter()
                .map(|(name, text)| (format!("sis-jobs/src/{name}.rs"), text)),
        );
    for (file, text) in files {
        for needle in ["SisCode::", "ApiError::new(", "ApiError::invalid("] {
            assert!(
                !text.contains(needle),
                "{file} uses {needle}: SIS codes are chosen in sisd/src/errors.rs"
            );
        }
    }
}

#[test]
fn the_checks_find_what_they_look_for() {
    let modules: BTreeSet<String> = ["a", "b", "c", "main"].map(String::from).into();
    let refs = references(
        "use crate::a::X;\nuse crate::{b, c::Y};\nlet x = crate::SOME_ITEM; sis_crate::a;",
        &modules,
    );
    assert_eq!(refs, ["a", "b", "c", "main"].map(String::from).into());
    let g = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    assert_eq!(find_cycle(&g(&[("a", "b"), ("b", "c")])), None);
    let cycle = find_cycle(&g(&[("a", "b"), ("b", "c"), ("c", "a")])).expect("a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4);
    assert!(without_tests("x\n#[cfg(test)]\nmod tests {crate::y}").trim() == "x");
}
