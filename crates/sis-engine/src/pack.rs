//! Model packs: a directory with a `pack.toml` manifest and the files it lists.
//!
//! ```toml
//! name = "zh-tiny-ctc-offline"
//! kind = "offline_asr"          # offline_asr | streaming_asr | vad | punctuation | tts
//! model_type = "nemo_ctc"       # see required_roles
//! language = "zh"
//! sample_rate = 16000
//! properties = ["chinese_16k_common", "chinese_8k_common"]
//! resample_8k = true            # 8 kHz properties served by this 16 kHz model
//! description = "..."
//! license = "Apache-2.0"        # optional
//! source = "https://... sha256 ..." # optional: where the files came from
//! test_only = true              # optional: recognises synthetic test speech only
//! [[files]]
//! path = "model.onnx"
//! sha256 = "..."
//! role = "model"               # optional for model.onnx / tokens.txt
//! ```
//!
//! A `tts` pack has no `properties`: it lists the SIS voices it serves with
//! the speaker id each is synthesised with (`[speakers]`,
//! `chinese_xiaoyan_common = 0`), and its `sample_rate` is the model's
//! output rate (any from 8000 to 48000).
//!
//! `docs/PACKS.md` documents every field, the kinds, model types and roles.
//! The manifest itself is not hashed: editing it (e.g. `properties`) needs
//! no rehash; the files it lists are.
//!
//! A `test_only` pack (the committed packs under `testdata/models`) is
//! loaded like any other, but the server warns at start and in `/health`, and
//! `sisd models list` marks it, so nobody mistakes it for a real model; and a
//! real pack serving the same property wins over it (`registry.rs`).
//!
//! Checking a pack ([`Pack::check`]) never calls sherpa-onnx: it reads the
//! manifest, hashes the files, parses the ONNX metadata and the token table,
//! and rejects anything sherpa-onnx would reject by ending the process.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::onnx_meta;

pub const MANIFEST: &str = "pack.toml";

/// What the server says (log at start, `/health`) when it serves a
/// `test_only` pack.
pub const TEST_ONLY_WARNING: &str = "serving test packs that only recognise synthetic test speech";

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum PackKind {
    OfflineAsr,
    StreamingAsr,
    Vad,
    Punctuation,
    Tts,
}

impl PackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PackKind::OfflineAsr => "offline_asr",
            PackKind::StreamingAsr => "streaming_asr",
            PackKind::Vad => "vad",
            PackKind::Punctuation => "punctuation",
            PackKind::Tts => "tts",
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// `pack.toml` (read here; written by the installer with `toml`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub kind: PackKind,
    pub model_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default = "default_rate")]
    pub sample_rate: u32,
    #[serde(default)]
    pub properties: Vec<String>,
    #[serde(default)]
    pub resample_8k: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The model's licence, as its publisher states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Where the files came from (a URL or a path, and the archive's sha256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// A pack that only recognises synthetic test speech (the committed
    /// test packs): loaded, but flagged everywhere it shows.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test_only: bool,
    /// A TTS pack's voices: SIS voice `property` → speaker id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub speakers: BTreeMap<String, i64>,
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// The manifest as `pack.toml` text.
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| format!("cannot write {MANIFEST}: {e}"))
    }
}

fn default_rate() -> u32 {
    16000
}

/// The files each model type needs, by role.
pub fn required_roles(kind: PackKind, model_type: &str) -> Option<&'static [&'static str]> {
    use PackKind::*;
    Some(match (kind, model_type) {
        (OfflineAsr, "nemo_ctc" | "zipformer_ctc" | "wenet_ctc" | "paraformer" | "sense_voice") => {
            &["model", "tokens"]
        }
        (OfflineAsr | StreamingAsr, "transducer") => &["encoder", "decoder", "joiner", "tokens"],
        (StreamingAsr, "nemo_ctc" | "zipformer2_ctc") => &["model", "tokens"],
        (StreamingAsr, "paraformer") => &["encoder", "decoder", "tokens"],
        (Vad, "silero_vad") => &["model"],
        (Punctuation, "ct_transformer") => &["model"],
        (Tts, "vits") => &["model", "tokens", "lexicon"],
        _ => return None,
    })
}

/// (role, integer keys, other keys).
type MetadataRule = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

/// Metadata sherpa-onnx reads from a model file of `role` with a reader that
/// ends the process when the key is missing (or, for the integers, not an
/// integer): (role, integer keys, other keys). Checked by [`Pack::check`].
/// (nemo_ctc has its own, stricter check below.)
fn required_metadata(kind: PackKind, model_type: &str) -> &'static [MetadataRule] {
    use PackKind::*;
    match (kind, model_type) {
        // offline-paraformer-model.cc
        (OfflineAsr, "paraformer") => &[(
            "model",
            &["vocab_size", "lfr_window_size", "lfr_window_shift"],
            &["neg_mean", "inv_stddev"],
        )],
        // offline-sense-voice-model.cc (the language and ITN ids: below)
        (OfflineAsr, "sense_voice") => &[(
            "model",
            &[
                "vocab_size",
                "lfr_window_size",
                "lfr_window_shift",
                "normalize_samples",
            ],
            &[],
        )],
        // online-transducer-model.cc picks the encoder's code by its
        // model_type; every transducer decoder reads these two
        (StreamingAsr, "transducer") => &[
            ("encoder", &[], &["model_type"]),
            ("decoder", &["vocab_size", "context_size"], &[]),
        ],
        (OfflineAsr, "transducer") => &[("decoder", &["vocab_size", "context_size"], &[])],
        // offline-ct-transformer-model.cc
        (Punctuation, "ct_transformer") => &[(
            "model",
            &["vocab_size"],
            &["tokens", "punctuations", "unk_symbol"],
        )],
        // offline-tts-vits-model.cc (their values: check_vits)
        (Tts, "vits") => &[(
            "model",
            &["sample_rate", "n_speakers"],
            &["language", "comment"],
        )],
        _ => &[],
    }
}

/// SenseVoice models other than FunASR-Nano exports also carry these.
const SENSE_VOICE_IDS: &[&str] = &[
    "with_itn",
    "without_itn",
    "lang_auto",
    "lang_zh",
    "lang_en",
    "lang_ja",
    "lang_ko",
    "lang_yue",
];

/// The encoder model types sherpa-onnx's online transducer knows; any other
/// ends the process.
pub const ONLINE_TRANSDUCER_TYPES: &[&str] = &[
    "conformer",
    "ebranchformer",
    "lstm",
    "zipformer",
    "zipformer2",
];

/// The encoder model types sherpa-onnx's offline recognizer accepts for a
/// transducer. The project sets no `model_type` in the recognizer config,
/// so the recognizer opens the encoder and reads its `model_type`
/// (`offline-recognizer-impl.cc:348-442`): conformer, zipformer and
/// zipformer2 select the icefall transducer, the two NeMo types the NeMo
/// one; any other value, or none, ends the process (measured with 2.0.1:
/// `lstm` and a missing key both exit with status 255).
pub const OFFLINE_TRANSDUCER_TYPES: &[&str] = &[
    "conformer",
    "zipformer",
    "zipformer2",
    "EncDecHybridRNNTCTCBPEModel",
    "EncDecRNNTBPEModel",
];

/// Feature dimension sherpa-onnx feeds a transducer (the project keeps
/// sherpa-onnx's default feature config).
const TRANSDUCER_FEATURE_DIM: i64 = 80;

/// The integer metadata sherpa-onnx's online `lstm` transducer reads from
/// the encoder (`online-lstm-transducer-model.cc:109-113`); missing ends the
/// process (measured: `T`, status 255); zero gives a zero-size chunk.
const LSTM_ENCODER_KEYS: &[&str] = &[
    "num_encoder_layers",
    "T",
    "decode_chunk_len",
    "rnn_hidden_size",
    "d_model",
];

/// A pack whose manifest has been read (files not yet checked).
#[derive(Clone, Debug)]
pub struct Pack {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

#[derive(Debug, thiserror::Error)]
#[error("model pack {pack}: {problem}")]
pub struct PackError {
    pub pack: String,
    pub problem: String,
}

fn err(dir: &Path, problem: impl Into<String>) -> PackError {
    PackError {
        pack: dir.display().to_string(),
        problem: problem.into(),
    }
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

impl Pack {
    /// Reads `dir/pack.toml`.
    pub fn open(dir: &Path) -> Result<Pack, PackError> {
        let text = fs::read_to_string(dir.join(MANIFEST))
            .map_err(|e| err(dir, format!("cannot read {MANIFEST}: {e}")))?;
        let manifest: Manifest =
            toml::from_str(&text).map_err(|e| err(dir, format!("invalid {MANIFEST}: {e}")))?;
        Ok(Pack {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Path of the file with `role` (explicit, or inferred from the file name).
    pub fn file(&self, role: &str) -> Option<PathBuf> {
        let m = &self.manifest;
        let explicit = m.files.iter().find(|f| f.role.as_deref() == Some(role));
        let inferred = || {
            m.files.iter().find(|f| {
                f.role.is_none()
                    && match role {
                        "tokens" => f.path.ends_with("tokens.txt"),
                        "model" => f.path.ends_with(".onnx"),
                        _ => false,
                    }
            })
        };
        explicit.or_else(inferred).map(|f| self.dir.join(&f.path))
    }

    /// Everything short of loading: manifest sanity, files present with the
    /// right sha256, ONNX metadata and token table acceptable to sherpa-onnx.
    pub fn check(&self) -> Result<(), PackError> {
        let m = &self.manifest;
        let d = &self.dir;
        if m.name.is_empty() || m.name.contains(['/', '\\']) || m.name.starts_with('.') {
            return Err(err(d, format!("invalid pack name '{}'", m.name)));
        }
        let rate_ok = match m.kind {
            PackKind::Tts => (8000..=48000).contains(&m.sample_rate),
            _ => m.sample_rate == 8000 || m.sample_rate == 16000,
        };
        if !rate_ok {
            return Err(err(
                d,
                format!(
                    "sample_rate {} not supported (8000 or 16000)",
                    m.sample_rate
                ),
            ));
        }
        let roles = required_roles(m.kind, &m.model_type).ok_or_else(|| {
            err(
                d,
                format!(
                    "model_type '{}' is not supported for kind '{}'",
                    m.model_type,
                    m.kind.as_str()
                ),
            )
        })?;
        for p in &m.properties {
            let prop = sis_core::Property::parse(p)
                .ok_or_else(|| err(d, format!("invalid property '{p}'")))?;
            if prop.sample_rate() != m.sample_rate && !(m.resample_8k && prop.sample_rate() == 8000)
            {
                return Err(err(
                    d,
                    format!(
                        "property {p} is {} Hz but the model is {} Hz (set resample_8k = true to serve 8 kHz by resampling)",
                        prop.sample_rate(),
                        m.sample_rate
                    ),
                ));
            }
        }
        if matches!(m.kind, PackKind::OfflineAsr | PackKind::StreamingAsr)
            && m.properties.is_empty()
        {
            return Err(err(d, "an ASR pack must list the properties it serves"));
        }
        if m.kind == PackKind::Tts {
            if !m.properties.is_empty() {
                return Err(err(
                    d,
                    "a tts pack lists its voices under [speakers], not properties",
                ));
            }
            if m.speakers.is_empty() {
                return Err(err(
                    d,
                    "a tts pack must list the voices it serves ([speakers])",
                ));
            }
            for (voice, sid) in &m.speakers {
                if crate::tts::voice(voice).is_none() {
                    return Err(err(d, format!("[speakers]: {voice} is not a SIS voice")));
                }
                if *sid < 0 {
                    return Err(err(d, format!("[speakers]: {voice} has a negative id")));
                }
            }
        } else if !m.speakers.is_empty() {
            return Err(err(d, "only a tts pack lists [speakers]"));
        }
        for f in &m.files {
            if f.path.contains("..") || Path::new(&f.path).is_absolute() {
                return Err(err(
                    d,
                    format!("file path '{}' must stay inside the pack", f.path),
                ));
            }
            let p = d.join(&f.path);
            let got = sha256_file(&p).map_err(|e| err(d, format!("file {}: {e}", f.path)))?;
            if !got.eq_ignore_ascii_case(&f.sha256) {
                return Err(err(
                    d,
                    format!(
                        "file {}: sha256 {got} does not match the manifest's {}",
                        f.path, f.sha256
                    ),
                ));
            }
        }
        for role in roles {
            if self.file(role).is_none() {
                return Err(err(
                    d,
                    format!("no '{role}' file listed for model_type {}", m.model_type),
                ));
            }
        }
        self.check_contents()
    }

    /// The ONNX metadata and inputs/outputs of the file with `role`.
    pub(crate) fn onnx(&self, role: &str) -> Result<onnx_meta::OnnxInfo, PackError> {
        let p = self
            .file(role)
            .ok_or_else(|| err(&self.dir, format!("no {role} file")))?;
        let bytes = fs::read(&p).map_err(|e| err(&self.dir, format!("{}: {e}", p.display())))?;
        onnx_meta::parse(&bytes).map_err(|e| {
            err(
                &self.dir,
                format!("{}: not a valid ONNX model: {e}", p.display()),
            )
        })
    }

    fn check_contents(&self) -> Result<(), PackError> {
        let m = &self.manifest;
        let d = &self.dir;
        let mut onnx_roles: Vec<&str> = vec![];
        if let Some(roles) = required_roles(m.kind, &m.model_type) {
            onnx_roles.extend(
                roles
                    .iter()
                    .filter(|r| !matches!(**r, "tokens" | "lexicon")),
            );
        }
        let mut infos = BTreeMap::new();
        for role in onnx_roles {
            infos.insert(role, self.onnx(role)?);
        }
        let tokens = match self.file("tokens") {
            Some(p) => Some(read_tokens(&p).map_err(|e| err(d, e))?),
            None => None,
        };
        let ctc = m.model_type.ends_with("ctc");
        if let Some(t) = &tokens {
            if ctc
                && !t.contains_key("<blk>")
                && !t.contains_key("<eps>")
                && !t.contains_key("<blank>")
            {
                return Err(err(
                    d,
                    "tokens.txt has no blank symbol (<blk>, <eps> or <blank>)",
                ));
            }
        }
        if m.model_type == "nemo_ctc" {
            let info = &infos["model"];
            let mut keys = vec!["vocab_size", "subsampling_factor"];
            let want_inputs = if m.kind == PackKind::StreamingAsr {
                keys.extend([
                    "window_size",
                    "chunk_shift",
                    "cache_last_channel_dim1",
                    "cache_last_channel_dim2",
                    "cache_last_channel_dim3",
                    "cache_last_time_dim1",
                    "cache_last_time_dim2",
                    "cache_last_time_dim3",
                ]);
                5
            } else {
                2
            };
            for k in &keys {
                match info.int(k) {
                    Some(v) if v > 0 => {}
                    Some(v) => {
                        return Err(err(
                            d,
                            format!("model metadata '{k}' = {v} must be positive"),
                        ))
                    }
                    None => {
                        return Err(err(
                            d,
                            format!("model metadata '{k}' missing or not an integer"),
                        ))
                    }
                }
            }
            if info.inputs.len() != want_inputs {
                return Err(err(
                    d,
                    format!(
                        "nemo_ctc model has {} inputs, expected {want_inputs}",
                        info.inputs.len()
                    ),
                ));
            }
            if let (Some(t), Some(v)) = (&tokens, info.int("vocab_size")) {
                if t.len() as i64 != v + 1 {
                    return Err(err(
                        d,
                        format!(
                            "tokens.txt has {} symbols but the model's vocab_size + blank is {}",
                            t.len(),
                            v + 1
                        ),
                    ));
                }
            }
        }
        for (role, ints, present) in required_metadata(m.kind, &m.model_type) {
            let Some(info) = infos.get(role) else {
                continue;
            };
            let mut ints: Vec<&str> = ints.to_vec();
            let mut present: Vec<&str> = present.to_vec();
            if m.model_type == "sense_voice" {
                let nano = info
                    .metadata
                    .get("comment")
                    .is_some_and(|c| c.contains("Nano"));
                if !nano {
                    ints.extend(SENSE_VOICE_IDS);
                    present.extend(["neg_mean", "inv_stddev"]);
                }
            }
            for k in ints {
                if info.int(k).is_none() {
                    return Err(err(
                        d,
                        format!("{role} model metadata '{k}' missing or not an integer"),
                    ));
                }
            }
            for k in present {
                if !info.metadata.contains_key(k) {
                    return Err(err(d, format!("{role} model metadata '{k}' missing")));
                }
            }
        }
        if (m.kind, m.model_type.as_str()) == (PackKind::StreamingAsr, "transducer") {
            let t = infos["encoder"]
                .metadata
                .get("model_type")
                .map(String::as_str);
            if !t.is_some_and(|t| ONLINE_TRANSDUCER_TYPES.contains(&t)) {
                return Err(err(
                    d,
                    format!(
                        "encoder metadata model_type {:?} is not a streaming transducer ({})",
                        t.unwrap_or(""),
                        ONLINE_TRANSDUCER_TYPES.join(", ")
                    ),
                ));
            }
        }
        if m.model_type == "transducer" {
            check_transducer(m.kind, d, &infos, tokens.as_ref())?;
        }
        if m.model_type == "ct_transformer" {
            check_ct_transformer(d, &infos["model"])?;
        }
        if m.kind == PackKind::Vad {
            let info = &infos["model"];
            if info.inputs.is_empty() {
                return Err(err(d, "VAD model has no inputs"));
            }
        }
        if (m.kind, m.model_type.as_str()) == (PackKind::Tts, "vits") {
            check_vits(self, &infos["model"], tokens.as_ref())?;
        }
        Ok(())
    }
}

/// Marks sherpa-onnx's CT-Transformer punctuation looks up by value in the
/// model's `punctuations` (a throwing `at()`: the process ends when one is
/// missing; `offline-ct-transformer-model.cc`).
const CT_TRANSFORMER_MARKS: &[&str] = &["_", "，", "。", "？", "、"];

/// What a CT-Transformer punctuation model must satisfy
/// (tools/train/punct/README.md, each a way sherpa-onnx 2.0.1 ends the
/// process or misreads the model): `vocab_size` equal to the number of
/// `tokens`; `unk_symbol` one of them; `punctuations` holding every mark of
/// [`CT_TRANSFORMER_MARKS`]; two int32 inputs (token ids, length), the only
/// ones it feeds; an output whose last axis (the classes) is fixed and as
/// wide as `punctuations`.
fn check_ct_transformer(d: &Path, info: &onnx_meta::OnnxInfo) -> Result<(), PackError> {
    let meta = |k: &str| info.metadata.get(k).map(String::as_str).unwrap_or("");
    let tokens: Vec<&str> = meta("tokens").split('|').collect();
    let n = tokens.len();
    if info.int("vocab_size") != Some(n as i64) {
        return Err(err(
            d,
            format!(
                "model metadata has {n} tokens but vocab_size {:?}",
                info.int("vocab_size")
            ),
        ));
    }
    if !tokens.contains(&meta("unk_symbol")) {
        return Err(err(d, "model metadata unk_symbol is not one of its tokens"));
    }
    let marks: Vec<&str> = meta("punctuations").split('|').collect();
    for mark in CT_TRANSFORMER_MARKS {
        if !marks.contains(mark) {
            return Err(err(
                d,
                format!("model metadata punctuations lacks {mark:?}"),
            ));
        }
    }
    let int32 = Some(onnx_meta::INT32);
    if info.input_types.len() != 2 || info.input_types.iter().any(|t| t.elem_type != int32) {
        return Err(err(
            d,
            "the model must take two int32 inputs (token ids, length)",
        ));
    }
    let classes = info
        .output_types
        .first()
        .and_then(|t| t.dim(2).filter(|_| t.rank() == Some(3)));
    if classes != Some(marks.len() as i64) {
        return Err(err(
            d,
            format!(
                "the model's output must be (N, T, {}) with the classes fixed, not {classes:?}",
                marks.len()
            ),
        ));
    }
    Ok(())
}

/// What a VITS pack must satisfy before sherpa-onnx sees it: each rule is a
/// way its load or a synthesis ends the process otherwise
/// (`tools/tts_testpack/FINDINGS.md`): metadata read with exiting readers
/// or selecting a code path the project does not configure, a token table
/// line sherpa-onnx's reader exits on, `sil` without `eos` (a throwing
/// lookup at every synthesis), a speaker id past the model's, and a token id
/// past the model's embedding when the model says its size.
fn check_vits(
    pack: &Pack,
    info: &onnx_meta::OnnxInfo,
    tokens: Option<&BTreeMap<String, i64>>,
) -> Result<(), PackError> {
    let d = &pack.dir;
    let m = &pack.manifest;
    for (k, v) in &info.metadata {
        if let Ok(n) = v.trim().parse::<i64>() {
            if n < 0 {
                return Err(err(d, format!("model metadata '{k}' = {n} is negative")));
            }
        }
    }
    let rate = positive(info, "model", "sample_rate", d)?;
    if rate != i64::from(m.sample_rate) {
        return Err(err(
            d,
            format!(
                "the model's sample_rate is {rate}, the manifest says {}",
                m.sample_rate
            ),
        ));
    }
    let meta = |k: &str| info.metadata.get(k).map(String::as_str).unwrap_or("");
    if !meta("language").eq_ignore_ascii_case("chinese") {
        return Err(err(
            d,
            format!(
                "model metadata language {:?}: only Chinese lexicon VITS models are supported",
                meta("language")
            ),
        ));
    }
    let comment = meta("comment");
    if comment.is_empty() {
        return Err(err(d, "model metadata 'comment' is empty"));
    }
    for flavour in ["piper", "coqui", "melo", "Inflect"] {
        if comment.contains(flavour) {
            return Err(err(
                d,
                format!("a {flavour} VITS model (metadata comment) is not supported"),
            ));
        }
    }
    if !meta("frontend").is_empty() {
        return Err(err(d, "model metadata 'frontend' is set: not supported"));
    }
    for k in ["jieba", "has_g2pw"] {
        if !matches!(meta(k), "" | "0") {
            return Err(err(
                d,
                format!("model metadata '{k}' is set: not supported"),
            ));
        }
    }
    let speakers = info.int("n_speakers").unwrap_or(0);
    for (voice, sid) in &m.speakers {
        if *sid >= speakers.max(1) {
            return Err(err(
                d,
                format!("[speakers]: {voice} = {sid}, but the model has {speakers} speakers"),
            ));
        }
    }
    let Some(tokens) = tokens else {
        return Err(err(d, "no tokens file"));
    };
    if let Some(p) = pack.file("tokens") {
        let text = fs::read_to_string(&p).map_err(|e| err(d, format!("tokens: {e}")))?;
        if let Some((n, _)) = text
            .lines()
            .enumerate()
            .find(|(_, l)| l.split_whitespace().count() > 2)
        {
            return Err(err(
                d,
                format!("tokens.txt line {}: more than 2 fields", n + 1),
            ));
        }
    }
    if tokens.contains_key("sil") && !tokens.contains_key("eos") {
        return Err(err(d, "tokens.txt has sil but no eos"));
    }
    if let Some(n) = info.int("num_tokens") {
        if tokens.len() as i64 > n {
            return Err(err(
                d,
                format!("tokens.txt has {} symbols, the model {n}", tokens.len()),
            ));
        }
    }
    Ok(())
}

fn positive(info: &onnx_meta::OnnxInfo, role: &str, key: &str, d: &Path) -> Result<i64, PackError> {
    match info.int(key) {
        Some(v) if v > 0 => Ok(v),
        Some(v) => Err(err(
            d,
            format!("{role} metadata '{key}' = {v} must be positive"),
        )),
        None => Err(err(
            d,
            format!("{role} metadata '{key}' missing or not an integer"),
        )),
    }
}

/// `what` has the fixed size `want` on `axis`, or a dynamic one.
fn axis_is(
    t: &onnx_meta::TensorType,
    axis: usize,
    want: i64,
    what: &str,
    d: &Path,
) -> Result<(), PackError> {
    match t.dim(axis) {
        Some(got) if got != want => Err(err(
            d,
            format!("{what}: axis {axis} is {got}, the metadata says {want}"),
        )),
        _ => Ok(()),
    }
}

/// What a transducer's three files must satisfy before sherpa-onnx sees
/// them. Each rule is a way the process ends otherwise (`docs/NATIVE.md`):
/// a metadata key read with an exiting reader, an input or output that
/// sherpa-onnx indexes without checking, a shape onnxruntime rejects inside
/// a decode (a C++ exception the Rust side cannot catch), or a token id the
/// symbol table lacks.
fn check_transducer(
    kind: PackKind,
    d: &Path,
    infos: &BTreeMap<&str, onnx_meta::OnnxInfo>,
    tokens: Option<&BTreeMap<String, i64>>,
) -> Result<(), PackError> {
    let (enc, dec, join) = (&infos["encoder"], &infos["decoder"], &infos["joiner"]);
    let enc_type = enc.metadata.get("model_type").map(String::as_str);
    if kind == PackKind::OfflineAsr
        && !enc_type.is_some_and(|t| OFFLINE_TRANSDUCER_TYPES.contains(&t))
    {
        return Err(err(
            d,
            format!(
                "encoder metadata model_type {:?} is not an offline transducer ({})",
                enc_type.unwrap_or(""),
                OFFLINE_TRANSDUCER_TYPES.join(", ")
            ),
        ));
    }
    if enc_type.is_some_and(|t| t.starts_with("EncDec")) {
        // NeMo transducers have their own contract; the probe loads them
        return Ok(());
    }
    // icefall transducers (offline-transducer-model.cc,
    // online-transducer-model.cc and the per-encoder files)
    let vocab = positive(dec, "decoder", "vocab_size", d)?;
    let context = positive(dec, "decoder", "context_size", d)?;
    if dec.inputs.len() != 1 || dec.outputs.len() != 1 {
        // online-recognizer-impl.cc:123-129: a decoder with more than one
        // output selects the NeMo transducer
        return Err(err(
            d,
            format!(
                "decoder has {} inputs and {} outputs, expected 1 and 1",
                dec.inputs.len(),
                dec.outputs.len()
            ),
        ));
    }
    let y = &dec.input_types[0];
    let int_ok = match kind {
        // the online decoder input is always built as int64
        PackKind::StreamingAsr => y.elem_type.is_none_or(|t| t == onnx_meta::INT64),
        _ => y
            .elem_type
            .is_none_or(|t| t == onnx_meta::INT64 || t == onnx_meta::INT32),
    };
    if !int_ok {
        return Err(err(
            d,
            format!(
                "decoder input has element type {:?}, expected int64",
                y.elem_type
            ),
        ));
    }
    axis_is(y, 1, context, "decoder input (N, context_size)", d)?;
    if join.inputs.len() != 2 || join.outputs.is_empty() {
        return Err(err(
            d,
            format!(
                "joiner has {} inputs and {} outputs, expected 2 and 1",
                join.inputs.len(),
                join.outputs.len()
            ),
        ));
    }
    // sherpa-onnx walks the joiner's output in steps of vocab_size
    axis_is(
        &join.output_types[0],
        1,
        vocab,
        "joiner output (N, vocab_size)",
        d,
    )?;
    // every id the joiner can emit is looked up in tokens.txt with a
    // throwing accessor (U1 in docs/NATIVE.md)
    if let Some(t) = tokens {
        if (t.len() as i64) < vocab {
            return Err(err(
                d,
                format!(
                    "tokens.txt has {} symbols but the decoder's vocab_size is {vocab}",
                    t.len()
                ),
            ));
        }
    }
    match kind {
        PackKind::OfflineAsr => {
            // RunEncoder passes (features, lengths) and reads two outputs
            if enc.inputs.len() != 2 || enc.outputs.len() != 2 {
                return Err(err(
                    d,
                    format!(
                        "offline encoder has {} inputs and {} outputs, expected 2 and 2 (x, x_lens -> encoder_out, encoder_out_lens)",
                        enc.inputs.len(),
                        enc.outputs.len()
                    ),
                ));
            }
            axis_is(
                &enc.input_types[0],
                2,
                TRANSDUCER_FEATURE_DIM,
                "encoder input x (N, T, 80)",
                d,
            )?;
        }
        _ if enc_type == Some("lstm") => {
            let mut v = BTreeMap::new();
            for k in LSTM_ENCODER_KEYS {
                v.insert(*k, positive(enc, "encoder", k, d)?);
            }
            // RunEncoder passes (x, h, c) and reads outputs 0, 1 and 2
            if enc.inputs.len() != 3 || enc.outputs.len() != 3 {
                return Err(err(
                    d,
                    format!(
                        "lstm encoder has {} inputs and {} outputs, expected 3 and 3 (x, h, c -> encoder_out, next_h, next_c)",
                        enc.inputs.len(),
                        enc.outputs.len()
                    ),
                ));
            }
            let (x, h, c) = (
                &enc.input_types[0],
                &enc.input_types[1],
                &enc.input_types[2],
            );
            axis_is(x, 1, v["T"], "encoder input x (N, T, 80)", d)?;
            axis_is(
                x,
                2,
                TRANSDUCER_FEATURE_DIM,
                "encoder input x (N, T, 80)",
                d,
            )?;
            // the initial states are made from the metadata
            // (GetEncoderInitStates): h (layers, N, d_model), c (layers, N,
            // rnn_hidden_size)
            axis_is(
                h,
                0,
                v["num_encoder_layers"],
                "encoder input h (num_encoder_layers, N, d_model)",
                d,
            )?;
            axis_is(
                h,
                2,
                v["d_model"],
                "encoder input h (num_encoder_layers, N, d_model)",
                d,
            )?;
            axis_is(
                c,
                0,
                v["num_encoder_layers"],
                "encoder input c (num_encoder_layers, N, rnn_hidden_size)",
                d,
            )?;
            axis_is(
                c,
                2,
                v["rnn_hidden_size"],
                "encoder input c (num_encoder_layers, N, rnn_hidden_size)",
                d,
            )?;
        }
        // zipformer, zipformer2, conformer: many per-layer keys; the probe
        // loads them in a child process
        _ => {}
    }
    Ok(())
}

/// `symbol id` per line; ids unique.
pub fn read_tokens(path: &Path) -> Result<BTreeMap<String, i64>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut map = BTreeMap::new();
    let mut ids = std::collections::BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (sym, id) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("tokens.txt line {}: expected 'symbol id'", n + 1))?;
        let id: i64 = id
            .trim()
            .parse()
            .map_err(|_| format!("tokens.txt line {}: id '{id}' is not an integer", n + 1))?;
        if !ids.insert(id) {
            return Err(format!("tokens.txt line {}: duplicate id {id}", n + 1));
        }
        map.insert(sym.to_string(), id);
    }
    if map.is_empty() {
        return Err("tokens.txt is empty".into());
    }
    // sherpa-onnx looks each emitted id up with a throwing accessor: a gap
    // would end the process on the first result that hits it (docs/NATIVE.md)
    if ids.first() != Some(&0) || ids.last() != Some(&(ids.len() as i64 - 1)) {
        return Err(format!(
            "tokens.txt ids must be 0..{} without gaps",
            ids.len() - 1
        ));
    }
    Ok(map)
}

/// Packs under a models directory: the directory itself if it holds a
/// manifest, otherwise its immediate subdirectories that do.
pub fn discover(dir: &Path) -> Result<Vec<PathBuf>, PackError> {
    if dir.join(MANIFEST).is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let rd =
        fs::read_dir(dir).map_err(|e| err(dir, format!("cannot read models directory: {e}")))?;
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        // hidden: the installer's staging area
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .filter(|p| p.join(MANIFEST).is_file())
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsupport::root;

    /// A copy of a committed pack in a temporary directory.
    fn copy(name: &str) -> (tempfile::TempDir, PathBuf) {
        copy_from("testdata/models", name)
    }

    /// A copy of the committed pack `name` under `base`.
    fn copy_from(base: &str, name: &str) -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().expect("a temporary directory");
        let src = root().join(base).join(name);
        let dst = t.path().join(name);
        fs::create_dir(&dst).expect("mkdir");
        for e in fs::read_dir(&src).expect("the committed pack") {
            let p = e.expect("an entry").path();
            fs::copy(&p, dst.join(p.file_name().expect("a name"))).expect("copy");
        }
        (t, dst)
    }

    /// Appends metadata entries to an ONNX file (ModelProto field 14; a
    /// later entry of a key wins, in the parser as in onnxruntime), then
    /// rehashes the pack.
    fn set_meta(dir: &Path, file: &str, kv: &[(&str, &str)]) {
        fn ld(num: u8, payload: &[u8]) -> Vec<u8> {
            let mut v = vec![(num << 3) | 2];
            let mut n = payload.len();
            while n >= 0x80 {
                v.push((n as u8) | 0x80);
                n >>= 7;
            }
            v.push(n as u8);
            v.extend_from_slice(payload);
            v
        }
        let p = dir.join(file);
        let mut bytes = fs::read(&p).expect("the model");
        for (k, v) in kv {
            bytes.extend(ld(14, &[ld(1, k.as_bytes()), ld(2, v.as_bytes())].concat()));
        }
        fs::write(&p, bytes).expect("write");
        let mut pack = Pack::open(dir).expect("the manifest");
        for f in &mut pack.manifest.files {
            f.sha256 = sha256_file(&dir.join(&f.path)).expect("hash");
        }
        fs::write(
            dir.join(MANIFEST),
            pack.manifest.to_toml().expect("a manifest"),
        )
        .expect("write");
    }

    fn problem(dir: &Path) -> String {
        match Pack::open(dir).expect("the manifest").check() {
            Ok(()) => String::new(),
            Err(e) => e.problem,
        }
    }

    /// The committed VITS test pack passes; each metadata value or manifest
    /// that would end the process in sherpa-onnx 2.0.1's VITS path
    /// (tools/tts_testpack/FINDINGS.md), or select a frontend the project
    /// does not configure, is refused first.
    #[test]
    fn vits_packs_that_would_end_the_process_are_refused() {
        let vits = || copy_from("testdata/tts-models", "zh-tiny-vits-test");
        let (_t, d) = vits();
        assert_eq!(problem(&d), "");
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("sample_rate", "")],
                "'sample_rate' missing or not an integer",
            ),
            (
                &[("sample_rate", "0")],
                "'sample_rate' = 0 must be positive",
            ),
            (
                &[("sample_rate", "22050")],
                "the model's sample_rate is 22050",
            ),
            (
                &[("n_speakers", "")],
                "'n_speakers' missing or not an integer",
            ),
            (&[("n_speakers", "-1")], "'n_speakers' = -1 is negative"),
            (&[("n_speakers", "1")], "has 1 speakers"),
            (&[("add_blank", "-2")], "'add_blank' = -2 is negative"),
            (&[("language", "")], "only Chinese lexicon VITS models"),
            (
                &[("language", "English")],
                "only Chinese lexicon VITS models",
            ),
            (&[("comment", "")], "'comment' is empty"),
            (&[("comment", "piper")], "a piper VITS model"),
            (&[("comment", "coqui")], "a coqui VITS model"),
            (&[("comment", "melo")], "a melo VITS model"),
            (&[("comment", "Inflect")], "a Inflect VITS model"),
            (&[("frontend", "characters")], "'frontend' is set"),
            (&[("jieba", "1")], "'jieba' is set"),
            (&[("has_g2pw", "1")], "'has_g2pw' is set"),
            (
                &[("num_tokens", "10")],
                "tokens.txt has 146 symbols, the model 10",
            ),
        ];
        for (kv, want) in cases {
            let (_t, d) = vits();
            set_meta(&d, "model.onnx", kv);
            let got = problem(&d);
            assert!(got.contains(want), "{kv:?}: {got}");
        }
        // the token table: a line of three fields, sil without eos
        type Edit = fn(&str) -> String;
        let edits: [(&str, Edit); 2] = [
            ("more than 2 fields", |t| {
                format!("{t}a b {}\n", t.lines().count())
            }),
            ("has sil but no eos", |t| {
                t.lines()
                    .map(|l| match l.strip_prefix("eos ") {
                        Some(id) => format!("eoz {id}\n"),
                        None => format!("{l}\n"),
                    })
                    .collect()
            }),
        ];
        for (want, edit) in edits {
            let (_t, d) = vits();
            let tokens = d.join("tokens.txt");
            let text = fs::read_to_string(&tokens).expect("tokens");
            assert!(text.contains("\nsil ") && text.contains("\neos "));
            fs::write(&tokens, edit(&text)).expect("write");
            set_meta(&d, "model.onnx", &[]);
            let got = problem(&d);
            assert!(got.contains(want), "{want}: {got}");
        }
        // the manifest: properties, a voice that is not SIS's, a negative id
        for (from, to, want) in [
            (
                "[speakers]",
                "properties = [\"chinese_16k_common\"]\n[speakers]",
                "lists its voices under [speakers]",
            ),
            (
                "chinese_huaxiaomei_common = 0",
                "chinese_nobody = 0",
                "chinese_nobody is not a SIS voice",
            ),
            (
                "chinese_huaxiaomei_common = 0",
                "chinese_huaxiaomei_common = -1",
                "has a negative id",
            ),
        ] {
            let (_t, d) = vits();
            let m = fs::read_to_string(d.join(MANIFEST)).expect("manifest");
            fs::write(d.join(MANIFEST), m.replacen(from, to, 1)).expect("write");
            let got = problem(&d);
            assert!(got.contains(want), "{to}: {got}");
        }
    }

    /// The committed punctuation test pack passes; metadata that ends the
    /// process in sherpa-onnx's CT-Transformer load is refused first.
    #[test]
    fn ct_transformer_packs_that_would_end_the_process_are_refused() {
        let punct = || copy_from("testdata/punct-models", "zh-tiny-punct");
        let (_t, d) = punct();
        assert_eq!(problem(&d), "");
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("unk_symbol", "<nope>")],
                "unk_symbol is not one of its tokens",
            ),
            (
                &[("punctuations", "<unk>|_|，|。|？|!")],
                "punctuations lacks \"、\"",
            ),
            (
                &[("punctuations", "<unk>|_|，|。|？|、|!")],
                "classes fixed",
            ),
            (&[("vocab_size", "3")], "but vocab_size Some(3)"),
            (&[("tokens", "")], "vocab_size"),
        ];
        for (kv, want) in cases {
            let (_t, d) = punct();
            set_meta(&d, "model.onnx", kv);
            let got = problem(&d);
            assert!(got.contains(want), "{kv:?}: {got}");
        }
    }

    #[test]
    fn the_committed_transducer_packs_pass() {
        for name in ["zh-tiny-transducer-streaming", "zh-tiny-transducer-offline"] {
            let (_t, d) = copy(name);
            assert_eq!(problem(&d), "", "{name}");
        }
    }

    /// (file, metadata appended, what the check says)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

    /// Each of these ends the process inside sherpa-onnx 2.0.1 (measured
    /// where noted in docs/NATIVE.md): the check refuses them first.
    #[test]
    fn transducer_packs_that_would_end_the_process_are_refused() {
        let streaming: &[Case] = &[
            (
                "encoder.onnx",
                &[("model_type", "")],
                "not a streaming transducer",
            ),
            ("encoder.onnx", &[("T", "0")], "'T' = 0 must be positive"),
            (
                "encoder.onnx",
                &[("decode_chunk_len", "x")],
                "'decode_chunk_len' missing or not an integer",
            ),
            (
                "encoder.onnx",
                &[("T", "39")],
                "encoder input x (N, T, 80): axis 1 is 35",
            ),
            ("encoder.onnx", &[("d_model", "100")], "encoder input h"),
            (
                "encoder.onnx",
                &[("rnn_hidden_size", "160")],
                "encoder input c",
            ),
            (
                "encoder.onnx",
                &[("num_encoder_layers", "2")],
                "axis 0 is 1",
            ),
            (
                "decoder.onnx",
                &[("context_size", "3")],
                "decoder input (N, context_size): axis 1 is 2",
            ),
            (
                "decoder.onnx",
                &[("vocab_size", "500")],
                "joiner output (N, vocab_size)",
            ),
        ];
        for (file, kv, needle) in streaming {
            let (_t, d) = copy("zh-tiny-transducer-streaming");
            set_meta(&d, file, kv);
            let p = problem(&d);
            assert!(p.contains(needle), "{file} {kv:?}: {p:?}");
        }
        let offline: &[Case] = &[
            // measured: exit status 255 for both
            (
                "encoder.onnx",
                &[("model_type", "lstm")],
                "not an offline transducer",
            ),
            (
                "encoder.onnx",
                &[("model_type", "")],
                "not an offline transducer",
            ),
            (
                "decoder.onnx",
                &[("vocab_size", "0")],
                "'vocab_size' = 0 must be positive",
            ),
        ];
        for (file, kv, needle) in offline {
            let (_t, d) = copy("zh-tiny-transducer-offline");
            set_meta(&d, file, kv);
            let p = problem(&d);
            assert!(p.contains(needle), "{file} {kv:?}: {p:?}");
        }
        // fewer tokens than the joiner can emit (U1)
        let (_t, d) = copy("zh-tiny-transducer-offline");
        let tokens = fs::read_to_string(d.join("tokens.txt")).expect("tokens");
        let short: String = tokens.lines().take(100).map(|l| format!("{l}\n")).collect();
        fs::write(d.join("tokens.txt"), short).expect("write");
        set_meta(&d, "joiner.onnx", &[]);
        assert!(problem(&d).contains("tokens.txt has 100 symbols"));
    }
}
