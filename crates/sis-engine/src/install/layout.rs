//! Recognising sherpa-onnx models as published (an unpacked release archive,
//! or a single model file) and inferring their manifest: the file names of
//! the official layouts, then the ONNX metadata (`onnx_meta.rs`) for what the
//! names leave open (streaming or not; paraformer, SenseVoice, NeMo CTC or
//! punctuation; a Silero VAD by its inputs).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::onnx_meta::{self, OnnxInfo};
use crate::pack::PackKind;

/// What a directory was recognised as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The directory holding the files (the given one, or its subdirectory).
    pub dir: PathBuf,
    pub kind: PackKind,
    pub model_type: String,
    /// (file name in `dir`, role), in role order.
    pub files: Vec<(String, String)>,
    /// Guessed from the token table (`zh` when it holds CJK characters).
    pub language: Option<String>,
}

/// What every recognised layout is, for messages.
pub const KNOWN_LAYOUTS: &str = "encoder-*.onnx, decoder-*.onnx, joiner-*.onnx and tokens.txt \
(transducer); encoder.onnx, decoder.onnx and tokens.txt (streaming paraformer); \
model.onnx and tokens.txt (paraformer, SenseVoice or NeMo CTC, told apart by the model's metadata); \
model.onnx alone (CT-Transformer punctuation); silero_vad.onnx (Silero VAD); \
.int8.onnx variants of each";

/// Recognises the models in `dir` or, failing that, in one of its immediate
/// subdirectories (a release archive's top directory). An error names the
/// files a recognisable layout is missing, or the layouts it knows.
pub fn infer(dir: &Path) -> Result<Layout, String> {
    let mut near_misses = Vec::new();
    let mut candidates = vec![dir.to_path_buf()];
    candidates.extend(subdirs(dir));
    for c in &candidates {
        match infer_in(c) {
            Ok(Some(layout)) => return Ok(layout),
            Ok(None) => {}
            Err(missing) => near_misses.push(missing),
        }
    }
    match near_misses.into_iter().next() {
        Some(m) => Err(m),
        None => Err(format!(
            "no model files recognised in {} (known layouts: {KNOWN_LAYOUTS})",
            dir.display()
        )),
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Regular files in `dir` (links are not followed: an archive's link could
/// point anywhere).
fn file_names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The ONNX file for one transducer part (`encoder`, `decoder`, `joiner`):
/// `PART-*.onnx` or `PART.onnx`, preferring int8 (or, for the decoder, the
/// fp32 file: the official pairing, and int8 decoders cost accuracy for
/// little speed).
fn part(names: &BTreeSet<String>, stem: &str) -> Option<String> {
    let matching: Vec<&String> = names
        .iter()
        .filter(|n| {
            n.ends_with(".onnx")
                && n.strip_prefix(stem)
                    .is_some_and(|rest| rest.starts_with('-') || rest.starts_with('.'))
        })
        .collect();
    let int8 = |n: &&&String| n.ends_with(".int8.onnx");
    let want_int8 = stem != "decoder";
    matching
        .iter()
        .find(|n| int8(n) == want_int8)
        .or_else(|| matching.first())
        .map(|n| n.to_string())
}

fn first_of(names: &BTreeSet<String>, choices: &[&str]) -> Option<String> {
    choices
        .iter()
        .find(|c| names.contains(**c))
        .map(|c| c.to_string())
}

fn meta(dir: &Path, name: &str) -> Result<OnnxInfo, String> {
    let bytes = fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"))?;
    onnx_meta::parse(&bytes).map_err(|e| format!("{name}: not a valid ONNX model: {e}"))
}

/// A Silero VAD's graph inputs: upstream v5/v6 (`input, state, sr`) and
/// k2-fsa's v4 export (`x, h, c`).
fn is_silero(info: &OnnxInfo) -> bool {
    let inputs: Vec<&str> = info.inputs.iter().map(String::as_str).collect();
    inputs == ["input", "state", "sr"] || inputs == ["x", "h", "c"]
}

fn missing_message(what: &str, dir: &Path, needed: &[(&str, Option<String>)]) -> String {
    let missing: Vec<&str> = needed
        .iter()
        .filter(|(_, f)| f.is_none())
        .map(|(n, _)| *n)
        .collect();
    format!(
        "{} looks like a {what} but is missing {}",
        dir.display(),
        missing.join(", ")
    )
}

fn language(dir: &Path, tokens: &str) -> Option<String> {
    let text = fs::read_to_string(dir.join(tokens)).ok()?;
    let cjk = text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
    Some(if cjk { "zh" } else { "en" }.to_string())
}

fn layout(
    dir: &Path,
    kind: PackKind,
    model_type: &str,
    files: Vec<(Option<String>, &str)>,
) -> Layout {
    let files: Vec<(String, String)> = files
        .into_iter()
        .filter_map(|(f, role)| Some((f?, role.to_string())))
        .collect();
    let tokens = files.iter().find(|(_, r)| r == "tokens").map(|(f, _)| f);
    let language = match kind {
        PackKind::OfflineAsr | PackKind::StreamingAsr => tokens.and_then(|t| language(dir, t)),
        _ => None,
    };
    Layout {
        dir: dir.to_path_buf(),
        kind,
        model_type: model_type.to_string(),
        files,
        language,
    }
}

/// `Ok(None)`: nothing here looks like a model; `Err`: something does, but
/// files are missing or its type cannot be told.
fn infer_in(dir: &Path) -> Result<Option<Layout>, String> {
    let names = file_names(dir);
    let tokens = first_of(&names, &["tokens.txt"]);
    let (encoder, decoder, joiner) = (
        part(&names, "encoder"),
        part(&names, "decoder"),
        part(&names, "joiner"),
    );
    if encoder.is_some() || decoder.is_some() || joiner.is_some() {
        // a paraformer's encoder and decoder, without a joiner
        if joiner.is_none() {
            if let (Some(enc), Some(_)) = (&encoder, &decoder) {
                if meta(dir, enc)?.metadata.contains_key("lfr_window_size") {
                    let needed = [("tokens.txt", tokens.clone())];
                    if tokens.is_none() {
                        return Err(missing_message("streaming paraformer", dir, &needed));
                    }
                    return Ok(Some(layout(
                        dir,
                        PackKind::StreamingAsr,
                        "paraformer",
                        vec![
                            (encoder, "encoder"),
                            (decoder, "decoder"),
                            (tokens, "tokens"),
                        ],
                    )));
                }
            }
        }
        let needed = [
            ("encoder-*.onnx", encoder.clone()),
            ("decoder-*.onnx", decoder.clone()),
            ("joiner-*.onnx", joiner.clone()),
            ("tokens.txt", tokens.clone()),
        ];
        if needed.iter().any(|(_, f)| f.is_none()) {
            return Err(missing_message("transducer", dir, &needed));
        }
        let Some(enc) = &encoder else {
            return Ok(None);
        };
        // a streaming encoder takes its caches as inputs; an offline one
        // takes the features and their lengths
        let kind = if meta(dir, enc)?.inputs.len() > 2 {
            PackKind::StreamingAsr
        } else {
            PackKind::OfflineAsr
        };
        return Ok(Some(layout(
            dir,
            kind,
            "transducer",
            vec![
                (encoder, "encoder"),
                (decoder, "decoder"),
                (joiner, "joiner"),
                (tokens, "tokens"),
            ],
        )));
    }
    if let Some(model) = first_of(&names, &["model.int8.onnx", "model.onnx"]) {
        let info = meta(dir, &model)?;
        let has = |k: &str| info.metadata.contains_key(k);
        let (kind, model_type) = if has("punctuations") {
            let files = vec![(Some(model), "model")];
            return Ok(Some(layout(
                dir,
                PackKind::Punctuation,
                "ct_transformer",
                files,
            )));
        } else if is_silero(&info) {
            let files = vec![(Some(model), "model")];
            return Ok(Some(layout(dir, PackKind::Vad, "silero_vad", files)));
        } else if has("lang_zh") || has("with_itn") {
            (PackKind::OfflineAsr, "sense_voice")
        } else if has("lfr_window_size") {
            (PackKind::OfflineAsr, "paraformer")
        } else if has("subsampling_factor") && has("normalize_type") {
            let streaming = has("cache_last_channel_dim1");
            let kind = if streaming {
                PackKind::StreamingAsr
            } else {
                PackKind::OfflineAsr
            };
            (kind, "nemo_ctc")
        } else {
            return Err(format!(
                "{}: cannot tell the model type of {model} from its metadata \
                 (paraformer, SenseVoice, NeMo CTC and CT-Transformer models are \
                 recognised); write a pack.toml for it (docs/PACKS.md)",
                dir.display()
            ));
        };
        if tokens.is_none() {
            return Err(format!(
                "{} holds a {model_type} model ({model}) but is missing tokens.txt",
                dir.display()
            ));
        }
        return Ok(Some(layout(
            dir,
            kind,
            model_type,
            vec![(Some(model), "model"), (tokens, "tokens")],
        )));
    }
    // a Silero VAD by name, or any lone model whose inputs are a Silero VAD's
    let onnx: Vec<&String> = names.iter().filter(|n| n.ends_with(".onnx")).collect();
    let vad = first_of(&names, &["silero_vad.onnx"]).or_else(|| match onnx.as_slice() {
        [only] => Some(only.to_string()),
        _ => None,
    });
    if let Some(vad) = vad {
        let info = meta(dir, &vad)?;
        if is_silero(&info) {
            return Ok(Some(layout(
                dir,
                PackKind::Vad,
                "silero_vad",
                vec![(Some(vad), "model")],
            )));
        }
        return Err(format!(
            "{}: {vad} is not a model this installer recognises (known layouts: {KNOWN_LAYOUTS})",
            dir.display()
        ));
    }
    Ok(None)
}
