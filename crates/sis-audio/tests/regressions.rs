//! Replays every input in `testdata/regressions/` (found by fuzzing, see its
//! README) through both APIs with the fuzz targets' checks, at three chunk
//! sizes: no panic, even a contained one, no disagreement between `decode`
//! and `stream::open`, an answer within a time limit, and no more than 256
//! MiB allocated for an input. Alone in its test binary: it installs a
//! panic hook.
#![allow(clippy::unwrap_used)]

mod common;
mod fuzz;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Allocations are counted; one that takes an input's total past
/// [`MAX_MIB`] is refused (and aborts this test, as it would abort a server).
#[global_allocator]
static ALLOCATOR: fuzz::Counting = fuzz::Counting;
const MAX_MIB: usize = 256;

/// Generous for a debug build on a busy machine; each input takes milliseconds.
const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn committed_regression_inputs() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/regressions");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no inputs in {}", dir.display());
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("input.dat");
    let mut failures = Vec::new();
    for path in &inputs {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !readme.contains(&name) {
            failures.push(format!("{name}: no line in testdata/regressions/README.md"));
        }
        let Some(format) = fuzz::regression_format(path) else {
            failures.push(format!(
                "{name}: the name does not start with an audio_format"
            ));
            continue;
        };
        let bytes = std::fs::read(path).unwrap();
        // the first chunk's size must not change any answer
        for chunk_ms in [10, 1000, 10_000] {
            let before = PANICS.load(Ordering::SeqCst);
            let t = Instant::now();
            let base = fuzz::CURRENT.load(Ordering::SeqCst);
            fuzz::LIMIT.store(base + MAX_MIB * 1024 * 1024, Ordering::SeqCst);
            let v = fuzz::exercise(format, &bytes, &file, chunk_ms);
            fuzz::LIMIT.store(0, Ordering::SeqCst);
            let took = t.elapsed();
            let refused = fuzz::REFUSED.swap(0, Ordering::SeqCst);
            if refused > 0 {
                failures.push(format!(
                    "{name}: an allocation of {refused} bytes was refused"
                ));
            }
            eprintln!(
                "{name} as {format}, {chunk_ms} ms chunks: {} in {took:?}",
                v.class()
            );
            for p in v.problems {
                failures.push(format!("{name} ({chunk_ms} ms chunks): {p}"));
            }
            if PANICS.load(Ordering::SeqCst) != before {
                failures.push(format!("{name}: a decoder panicked"));
            }
            if took > LIMIT {
                failures.push(format!("{name}: took {took:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
