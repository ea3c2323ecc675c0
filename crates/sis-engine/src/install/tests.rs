//! Installing models as published. The archives are built here in the
//! layout of each catalog entry (file names, directory, extras such as
//! `test_wavs/` and fp32 twins) from the project's own models: the committed
//! tiny CTC models under each official file name, with the ONNX metadata the
//! real models carry appended (a real ONNX file with real metadata entries,
//! read by the same parser), and the real Silero VAD from `../shared`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;
use crate::pack::Pack;
use crate::testsupport::root;

fn tiny(which: &str) -> Vec<u8> {
    fs::read(root().join(format!("testdata/models/zh-tiny-ctc-{which}/model.onnx"))).unwrap()
}

fn zh_tokens() -> Vec<u8> {
    fs::read(root().join("testdata/models/zh-tiny-ctc-offline/tokens.txt")).unwrap()
}

/// English BPE tokens, as many as the committed transducer's vocabulary
/// (418), so that its files can stand in for an English model's.
fn en_tokens() -> Vec<u8> {
    let mut t =
        b"<blk> 0\n<sos/eos> 1\n<unk> 2\nS 3\n\xe2\x96\x81THE 4\n\xe2\x96\x81A 5\n".to_vec();
    for i in 6..418 {
        t.extend(format!("\u{2581}W{i} {i}\n").as_bytes());
    }
    t
}

fn vad_bytes() -> Vec<u8> {
    fs::read(root().join("../shared/models/silero_vad/silero_vad.onnx")).unwrap()
}

fn varint(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A length-delimited protobuf field.
fn ld(num: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![(num << 3) | 2];
    varint(payload.len(), &mut v);
    v.extend_from_slice(payload);
    v
}

/// `model` with metadata entries appended (ModelProto field 14; a later
/// entry of the same key wins, as in the parser).
fn with_meta(model: &[u8], kv: &[(&str, &str)]) -> Vec<u8> {
    let mut out = model.to_vec();
    for (k, v) in kv {
        out.extend(ld(14, &[ld(1, k.as_bytes()), ld(2, v.as_bytes())].concat()));
    }
    out
}

fn paraformer_model() -> Vec<u8> {
    with_meta(
        &tiny("offline"),
        &[
            ("lfr_window_size", "7"),
            ("lfr_window_shift", "6"),
            ("neg_mean", "0.1,0.2"),
            ("inv_stddev", "1.0,1.0"),
        ],
    )
}

fn sense_voice_model() -> Vec<u8> {
    let mut kv = vec![
        ("lfr_window_size", "7"),
        ("lfr_window_shift", "6"),
        ("normalize_samples", "0"),
        ("neg_mean", "0.1"),
        ("inv_stddev", "1.0"),
        ("with_itn", "14"),
        ("without_itn", "15"),
    ];
    kv.extend([
        ("lang_auto", "0"),
        ("lang_zh", "3"),
        ("lang_en", "4"),
        ("lang_ja", "11"),
        ("lang_ko", "12"),
        ("lang_yue", "7"),
    ]);
    with_meta(&tiny("offline"), &kv)
}

/// A CT-Transformer punctuation model: the committed punctuation test
/// pack's (its inputs, output and metadata as the official ones).
fn punct_model() -> Vec<u8> {
    fs::read(root().join("testdata/punct-models/zh-tiny-punct/model.onnx")).unwrap()
}

/// Encoder, decoder and joiner of a transducer: the committed transducer
/// test packs' files (a streaming encoder takes its states as inputs: the
/// streaming one has 3, the offline one 2).
fn transducer_parts(streaming: bool) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let dir = root().join(format!(
        "testdata/models/zh-tiny-transducer-{}",
        if streaming { "streaming" } else { "offline" }
    ));
    let part = |f: &str| fs::read(dir.join(f)).unwrap();
    (
        part("encoder.onnx"),
        part("decoder.onnx"),
        part("joiner.onnx"),
    )
}

type Files = Vec<(String, Vec<u8>)>;

/// The files of the official archive of a transducer pack: int8 and fp32
/// twins, README, test_wavs.
fn transducer_archive_files(dir: &str, tokens: Vec<u8>) -> Files {
    let (enc, dec, join) = transducer_parts(true);
    let f = |n: &str, b: &[u8]| (format!("{dir}/{n}"), b.to_vec());
    vec![
        f("encoder-epoch-99-avg-1.int8.onnx", &enc),
        // the twins are not what is installed (not even ONNX here: picking
        // one would fail the check)
        f("encoder-epoch-99-avg-1.onnx", b"the fp32 encoder"),
        f("decoder-epoch-99-avg-1.onnx", &dec),
        f("decoder-epoch-99-avg-1.int8.onnx", b"the int8 decoder"),
        f("joiner-epoch-99-avg-1.int8.onnx", &join),
        f("tokens.txt", &tokens),
        f("README.md", b"a readme"),
        f("test_wavs/0.wav", b"RIFF"),
    ]
}

#[derive(Clone, Copy)]
enum Compression {
    Bzip2,
    Gzip,
    None,
}

fn archive(out: &Path, compression: Compression, files: &[(String, Vec<u8>)]) {
    let f = fs::File::create(out).unwrap();
    let w: Box<dyn Write> = match compression {
        Compression::Bzip2 => Box::new(bzip2::write::BzEncoder::new(f, bzip2::Compression::fast())),
        Compression::Gzip => Box::new(flate2::write::GzEncoder::new(
            f,
            flate2::Compression::fast(),
        )),
        Compression::None => Box::new(f),
    };
    let mut b = tar::Builder::new(w);
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, data.as_slice()).unwrap();
    }
    // dropping the encoder finishes the stream
    drop(b.into_inner().unwrap());
}

fn empty_catalog() -> Catalog {
    Catalog {
        entries: Vec::new(),
    }
}

fn install(path: &Path, models: &Path) -> Result<Installed, PackError> {
    install_from(path, models, &Catalog::builtin(), &Overrides::default())
}

/// An installed pack's manifest (the install ran `Pack::check` on it).
fn manifest(dir: &Path) -> Manifest {
    Pack::open(dir).unwrap().manifest
}

fn roles(m: &Manifest) -> Vec<(String, String)> {
    m.files
        .iter()
        .map(|f| (f.path.clone(), f.role.clone().unwrap_or_default()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// The staging area is gone (it is removed once empty).
fn nothing_left_in_staging(models: &Path) {
    let staging = staging_dir(models);
    let left: Vec<PathBuf> = fs::read_dir(&staging)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in staging: {left:?}");
    assert!(!staging.exists());
}

const ZH: &[&str] = &[
    "chinese_16k_common",
    "chinese_16k_general",
    "chinese_8k_common",
    "chinese_8k_general",
];

#[test]
fn streaming_transducer_archives_install_with_int8_encoder_and_fp32_decoder() {
    // the official archives are .tar.bz2; the other two kinds the
    // installer reads are covered here too (and bzip2 is slow in debug builds)
    for (dir, tokens, lang, compression, ext) in [
        (
            "sherpa-onnx-streaming-zipformer-zh-14M-2023-02-23",
            zh_tokens(),
            "zh",
            Compression::Bzip2,
            "tar.bz2",
        ),
        (
            "sherpa-onnx-streaming-zipformer-bilingual-zh-en-2023-02-20",
            zh_tokens(),
            "zh",
            Compression::Gzip,
            "tgz",
        ),
        (
            "sherpa-onnx-streaming-zipformer-en-20M-2023-02-17",
            en_tokens(),
            "en",
            Compression::None,
            "tar",
        ),
    ] {
        let t = tempfile::tempdir().unwrap();
        let ar = t.path().join(format!("{dir}.{ext}"));
        archive(&ar, compression, &transducer_archive_files(dir, tokens));
        let models = t.path().join("models");
        let got = install(&ar, &models).unwrap();
        let name = dir.strip_prefix("sherpa-onnx-").unwrap();
        assert_eq!(got.name, name);
        assert_eq!(got.catalog, None);
        let m = manifest(&got.dir);
        assert_eq!(m.kind, PackKind::StreamingAsr);
        assert_eq!(m.model_type, "transducer");
        assert_eq!(m.language.as_deref(), Some(lang));
        assert!(m.resample_8k);
        if lang == "zh" {
            assert_eq!(m.properties, ZH);
        } else {
            assert_eq!(
                m.properties,
                [
                    "english_16k_general",
                    "english_16k_common",
                    "english_8k_common"
                ]
            );
        }
        assert_eq!(
            roles(&m),
            pairs(&[
                ("encoder-epoch-99-avg-1.int8.onnx", "encoder"),
                ("decoder-epoch-99-avg-1.onnx", "decoder"),
                ("joiner-epoch-99-avg-1.int8.onnx", "joiner"),
                ("tokens.txt", "tokens"),
            ])
        );
        // only the chosen files are installed
        let mut installed: Vec<String> = fs::read_dir(&got.dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        installed.sort();
        assert_eq!(
            installed,
            [
                "decoder-epoch-99-avg-1.onnx",
                "encoder-epoch-99-avg-1.int8.onnx",
                "joiner-epoch-99-avg-1.int8.onnx",
                "pack.toml",
                "tokens.txt"
            ]
        );
        nothing_left_in_staging(&models);
    }
}

#[test]
fn an_offline_transducer_is_told_by_its_encoder_inputs() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("sherpa-onnx-zipformer-zh-offline");
    fs::create_dir(&d).unwrap();
    let (enc, dec, join) = transducer_parts(false);
    fs::write(d.join("encoder.int8.onnx"), enc).unwrap();
    fs::write(d.join("decoder.onnx"), dec).unwrap();
    fs::write(d.join("joiner.int8.onnx"), join).unwrap();
    fs::write(d.join("tokens.txt"), zh_tokens()).unwrap();
    let got = install(&d, &t.path().join("models")).unwrap();
    let m = manifest(&got.dir);
    assert_eq!(
        (m.kind, m.model_type.as_str()),
        (PackKind::OfflineAsr, "transducer")
    );
    assert_eq!(got.name, "zipformer-zh-offline");
}

#[test]
fn paraformer_sense_voice_and_punctuation_archives_are_told_by_metadata() {
    type Case = (
        &'static str,
        Files,
        PackKind,
        &'static str,
        Vec<(&'static str, &'static str)>,
    );
    let cases: Vec<Case> = vec![
        (
            "sherpa-onnx-paraformer-zh-2023-09-14",
            vec![
                ("model.int8.onnx".into(), paraformer_model()),
                ("tokens.txt".into(), zh_tokens()),
                ("test_wavs/8k.wav".into(), b"RIFF".to_vec()),
            ],
            PackKind::OfflineAsr,
            "paraformer",
            vec![("model.int8.onnx", "model"), ("tokens.txt", "tokens")],
        ),
        (
            "sherpa-onnx-sense-voice-zh-en-ja-ko-yue-int8-2024-07-17",
            vec![
                ("model.int8.onnx".into(), sense_voice_model()),
                ("tokens.txt".into(), zh_tokens()),
                ("LICENSE".into(), b"see the FunASR model licence".to_vec()),
            ],
            PackKind::OfflineAsr,
            "sense_voice",
            vec![
                ("model.int8.onnx", "model"),
                ("tokens.txt", "tokens"),
                ("LICENSE", "license"),
            ],
        ),
        (
            "sherpa-onnx-punct-ct-transformer-zh-en-vocab272727-2024-04-12-int8",
            vec![
                ("model.int8.onnx".into(), punct_model()),
                ("README.md".into(), b"readme".to_vec()),
            ],
            PackKind::Punctuation,
            "ct_transformer",
            vec![("model.int8.onnx", "model")],
        ),
    ];
    for (dir, files, kind, model_type, want) in cases {
        let t = tempfile::tempdir().unwrap();
        let ar = t.path().join(format!("{dir}.tar.bz2"));
        let files: Files = files
            .into_iter()
            .map(|(p, b)| (format!("{dir}/{p}"), b))
            .collect();
        archive(&ar, Compression::Bzip2, &files);
        let models = t.path().join("models");
        let got = install(&ar, &models).unwrap_or_else(|e| panic!("{dir}: {e}"));
        let m = manifest(&got.dir);
        assert_eq!((m.kind, m.model_type.as_str()), (kind, model_type), "{dir}");
        assert_eq!(roles(&m), pairs(&want), "{dir}");
        if kind == PackKind::Punctuation {
            assert!(m.properties.is_empty());
        } else {
            assert_eq!(m.properties, ZH);
        }
        nothing_left_in_staging(&models);
    }
}

#[test]
fn the_committed_nemo_ctc_models_are_recognised_without_their_manifest() {
    for (which, kind) in [
        ("offline", PackKind::OfflineAsr),
        ("streaming", PackKind::StreamingAsr),
    ] {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join(format!("tiny-{which}"));
        fs::create_dir(&d).unwrap();
        fs::write(d.join("model.onnx"), tiny(which)).unwrap();
        fs::write(d.join("tokens.txt"), zh_tokens()).unwrap();
        let got = install(&d, &t.path().join("models")).unwrap();
        let m = manifest(&got.dir);
        assert_eq!((m.kind, m.model_type.as_str()), (kind, "nemo_ctc"));
        // the operator's files are copied, not moved
        assert!(d.join("model.onnx").is_file());
    }
}

#[test]
fn the_silero_vad_installs_as_a_bare_file_and_from_its_directory() {
    let t = tempfile::tempdir().unwrap();
    // the catalog's file: the catalog's values
    let f = t.path().join("silero_vad.onnx");
    fs::write(&f, vad_bytes()).unwrap();
    let got = install(&f, &t.path().join("a")).unwrap();
    assert_eq!(
        (got.name.as_str(), got.catalog.as_deref()),
        ("silero-vad", Some("silero-vad"))
    );
    let m = manifest(&got.dir);
    assert_eq!(
        m.description.as_deref(),
        Some("Silero VAD v6.2 (16 kHz, 512-sample windows)")
    );
    assert_eq!(m.license.as_deref(), Some("MIT"));
    assert!(m
        .source
        .unwrap()
        .contains("1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"));
    // the shared directory (the model and its LICENSE): the catalog's too
    let shared = root().join("../shared/models/silero_vad");
    let got = install(&shared, &t.path().join("b")).unwrap();
    assert_eq!(got.catalog.as_deref(), Some("silero-vad"));
    let m = manifest(&got.dir);
    assert_eq!(
        roles(&m),
        pairs(&[("silero_vad.onnx", "model"), ("LICENSE", "license")])
    );
    // unknown to the catalog, under another name: told by its inputs
    let other = t.path().join("vad-model.onnx");
    fs::write(&other, vad_bytes()).unwrap();
    let got = install_from(
        &other,
        &t.path().join("c"),
        &empty_catalog(),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!((got.name.as_str(), got.catalog), ("silero-vad", None));
    let m = manifest(&got.dir);
    assert_eq!(
        (m.kind, m.model_type.as_str()),
        (PackKind::Vad, "silero_vad")
    );
    assert_eq!(roles(&m), pairs(&[("vad-model.onnx", "model")]));
}

#[test]
fn a_missing_file_is_named() {
    let t = tempfile::tempdir().unwrap();
    let dir = "sherpa-onnx-streaming-zipformer-zh-14M-2023-02-23";
    let mut files = transducer_archive_files(dir, zh_tokens());
    files.retain(|(p, _)| !p.contains("joiner"));
    let ar = t.path().join(format!("{dir}.tar.bz2"));
    archive(&ar, Compression::Bzip2, &files);
    let models = t.path().join("models");
    let e = install(&ar, &models).unwrap_err().to_string();
    assert!(
        e.contains("looks like a transducer but is missing joiner-*.onnx"),
        "{e}"
    );
    assert!(e.contains(&ar.display().to_string()), "{e}");
    assert!(!models.join(&dir[12..]).exists());
    nothing_left_in_staging(&models);

    // a model without its tokens
    let ar = t.path().join("sherpa-onnx-paraformer-zh-2023-09-14.tar.gz");
    archive(
        &ar,
        Compression::Gzip,
        &[(
            "sherpa-onnx-paraformer-zh-2023-09-14/model.int8.onnx".into(),
            paraformer_model(),
        )],
    );
    let e = install(&ar, &models).unwrap_err().to_string();
    assert!(
        e.contains("paraformer model (model.int8.onnx) but is missing tokens.txt"),
        "{e}"
    );

    // tokens without a model
    let d = t.path().join("only-tokens");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("tokens.txt"), zh_tokens()).unwrap();
    let e = install(&d, &models).unwrap_err().to_string();
    assert!(e.contains("no model files recognised"), "{e}");
    assert!(e.contains("joiner-*.onnx"), "{e}");

    // a model whose type the metadata does not tell
    let d = t.path().join("unknown");
    fs::create_dir(&d).unwrap();
    let graph = ld(7, &ld(11, &ld(1, b"x")));
    fs::write(d.join("model.onnx"), [vec![0x08, 0x07], graph].concat()).unwrap();
    fs::write(d.join("tokens.txt"), zh_tokens()).unwrap();
    let e = install(&d, &models).unwrap_err().to_string();
    assert!(e.contains("cannot tell the model type"), "{e}");
    nothing_left_in_staging(&models);
}

fn sha_of(bytes: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

/// A catalog of one entry for `archive`: its sha256 and the paraformer layout.
fn test_entry(archive: &Path, file_sha: Option<String>) -> CatalogEntry {
    let toml = format!(
        r#"
[[pack]]
name = "para-test"
url = "https://github.com/k2-fsa/sherpa-onnx/releases/download/asr-models/para-test.tar.gz"
sha256 = "{}"
bytes = {}
kind = "offline_asr"
model_type = "paraformer"
language = "zh"
properties = ["chinese_16k_common"]
license = "test licence"
description = "a test entry"
files = [
  {{ path = "model.int8.onnx", role = "model" {} }},
  {{ path = "tokens.txt", role = "tokens" {} }},
]
"#,
        sha256_file(archive).unwrap(),
        fs::metadata(archive).unwrap().len(),
        file_sha
            .as_ref()
            .map(|s| format!(", sha256 = \"{s}\""))
            .unwrap_or_default(),
        // pinned together with the model's
        file_sha
            .map(|_| format!(", sha256 = \"{}\"", sha_of(&zh_tokens())))
            .unwrap_or_default(),
    );
    let f = archive.with_extension("catalog.toml");
    fs::write(&f, toml).unwrap();
    let c = Catalog::with_file(&f).unwrap();
    c.find("para-test").unwrap().clone()
}

#[test]
fn a_catalog_archive_installs_with_the_catalogs_values() {
    let t = tempfile::tempdir().unwrap();
    let ar = t.path().join("para-test.tar.gz");
    archive(
        &ar,
        Compression::Gzip,
        &[
            ("para/model.int8.onnx".into(), paraformer_model()),
            ("para/tokens.txt".into(), zh_tokens()),
        ],
    );
    let model_sha = sha_of(&paraformer_model());
    let entry = test_entry(&ar, Some(model_sha));
    let catalog = Catalog {
        entries: vec![entry.clone()],
    };
    let models = t.path().join("models");
    let got = install_from(&ar, &models, &catalog, &Overrides::default()).unwrap();
    assert_eq!(got.catalog.as_deref(), Some("para-test"));
    let m = manifest(&got.dir);
    assert_eq!(m.name, "para-test");
    assert_eq!(m.properties, ["chinese_16k_common"]);
    assert_eq!(m.license.as_deref(), Some("test licence"));
    assert_eq!(m.description.as_deref(), Some("a test entry"));
    assert!(m.source.unwrap().contains(&entry.sha256));
    // the archive was read, not moved
    assert!(ar.is_file());
    nothing_left_in_staging(&models);

    // already installed: refused, before any unpacking
    let e = install_from(&ar, &models, &catalog, &Overrides::default()).unwrap_err();
    assert!(e.to_string().contains("already installed"), "{e}");

    // its unpacked directory is recognised by the files' sha256s
    let d = t.path().join("unpacked");
    fs::create_dir_all(d.join("para")).unwrap();
    fs::write(d.join("para/model.int8.onnx"), paraformer_model()).unwrap();
    fs::write(d.join("para/tokens.txt"), zh_tokens()).unwrap();
    let got = install_from(&d, &t.path().join("m2"), &catalog, &Overrides::default()).unwrap();
    assert_eq!(got.catalog.as_deref(), Some("para-test"));
}

#[test]
fn a_download_that_does_not_match_the_catalog_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let ar = t.path().join("para-test.tar.gz");
    archive(
        &ar,
        Compression::Gzip,
        &[
            ("para/model.int8.onnx".into(), paraformer_model()),
            ("para/tokens.txt".into(), zh_tokens()),
        ],
    );
    let models = t.path().join("models");
    let entry = test_entry(&ar, None);
    // another archive under the entry's name
    let other = t.path().join("other.tar");
    archive(
        &other,
        Compression::None,
        &[("x/tokens.txt".into(), zh_tokens())],
    );
    let e = install_entry(&entry, &other, &models, "test", None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not match the catalog's"), "{e}");
    assert!(!models.join("para-test").exists());

    // the archive matches, but a file in it does not: refused too
    let entry = test_entry(&ar, Some("00".repeat(32)));
    let e = install_entry(&entry, &ar, &models, "test", None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.int8.onnx: sha256"), "{e}");
    assert!(!models.join("para-test").exists());
    nothing_left_in_staging(&models);

    // the right one installs
    let entry = test_entry(&ar, None);
    install_entry(&entry, &ar, &models, "test", None).unwrap();
    assert!(models.join("para-test/pack.toml").is_file());
}

#[test]
fn overrides_name_and_properties_of_an_inferred_pack() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("some-dir");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("model.onnx"), paraformer_model()).unwrap();
    fs::write(d.join("tokens.txt"), zh_tokens()).unwrap();
    let o = Overrides {
        name: Some("my-para".into()),
        properties: Some(vec!["chinese_16k_common".into()]),
    };
    let got = install_from(&d, &t.path().join("models"), &empty_catalog(), &o).unwrap();
    assert_eq!(got.name, "my-para");
    assert_eq!(manifest(&got.dir).properties, ["chinese_16k_common"]);
}

#[test]
fn the_builtin_catalog_is_valid_and_points_at_the_official_locations() {
    let c = Catalog::builtin();
    let names = c.names();
    assert_eq!(
        names,
        [
            "streaming-zipformer-zh-14M-2023-02-23",
            "streaming-zipformer-bilingual-zh-en-2023-02-20",
            "paraformer-zh-2023-09-14",
            "sense-voice-int8-2024-07-17",
            "punct-ct-transformer-int8-2024-04-12",
            "streaming-zipformer-en-20M-2023-02-17",
            "silero-vad",
            "vits-icefall-zh-aishell3",
        ]
    );
    let defaults: Vec<&str> = c.defaults().map(|e| e.name.as_str()).collect();
    assert_eq!(
        defaults,
        [
            "streaming-zipformer-zh-14M-2023-02-23",
            "paraformer-zh-2023-09-14",
            "punct-ct-transformer-int8-2024-04-12",
            "silero-vad",
        ]
    );
    for e in &c.entries {
        assert!(e.bytes > 0);
        // every pack can be loaded: its kind and model type are ones the
        // loader handles, and it lists every required role
        let roles = crate::pack::required_roles(e.kind, &e.model_type).unwrap();
        for r in roles {
            assert!(e.files.iter().any(|f| f.role == *r), "{}: {r}", e.name);
        }
        assert!(e.files.iter().all(|f| f.sha256.is_some()), "{}", e.name);
        let url = e.url_under(None).unwrap();
        let mirrored = e.url_under(Some("http://mirror.example/m/")).unwrap();
        if e.payload() == Payload::Archive {
            assert!(url.starts_with(DEFAULT_BASE_URL), "{url}");
            assert_eq!(
                mirrored,
                format!("http://mirror.example/m{}", &url[DEFAULT_BASE_URL.len()..])
            );
            assert!(e.file_name().ends_with(".tar.bz2"));
        } else {
            assert_eq!(
                mirrored,
                "http://mirror.example/m/silero-vad-v6.2/silero_vad.onnx"
            );
        }
    }
    let vad = c.find("silero-vad").unwrap();
    assert_eq!(
        vad.sha256,
        "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
    );
    assert!(vad.description.contains("v6.2"));
    assert!(c
        .find("sense-voice-int8-2024-07-17")
        .unwrap()
        .description
        .contains("FunASR model licence"));
    assert!(c
        .find("paraformer-zh-2023-09-14")
        .unwrap()
        .description
        .contains("8 kHz"));
}

#[test]
fn a_catalog_file_adds_and_replaces_entries() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("c.toml");
    fs::write(
        &f,
        r#"
[[pack]]
name = "silero-vad"
url = "http://127.0.0.1:1/vad.onnx"
mirror_path = "v/silero_vad.onnx"
sha256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
bytes = 2327524
kind = "vad"
model_type = "silero_vad"
license = "MIT"
description = "private mirror"
files = [{ path = "silero_vad.onnx", role = "model" }]
"#,
    )
    .unwrap();
    let c = Catalog::with_file(&f).unwrap();
    assert_eq!(c.entries.len(), Catalog::builtin().entries.len());
    assert_eq!(c.find("silero-vad").unwrap().description, "private mirror");
    // an entry that cannot load is refused with its reason
    fs::write(
        &f,
        r#"
[[pack]]
name = "whisper"
url = "https://example.org/w.tar.bz2"
sha256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
bytes = 1
kind = "offline_asr"
model_type = "whisper"
license = "MIT"
description = "x"
files = [{ path = "model.onnx", role = "model" }]
"#,
    )
    .unwrap();
    let e = Catalog::with_file(&f).unwrap_err();
    assert!(e.contains("model_type whisper is not supported"), "{e}");
}

/// A TTS archive in the official VITS layout (the committed test pack's
/// files under a top directory) installs from a catalog entry of kind `tts`:
/// the manifest gets the entry's voices, and the installed pack passes the
/// checks (which read its ONNX metadata).
#[test]
fn a_tts_archive_installs_with_its_voices() {
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/tts-models/zh-tiny-vits-test");
    let read = |f: &str| fs::read(src.join(f)).unwrap();
    let t = tempfile::tempdir().unwrap();
    let ar = t.path().join("vits-test.tar.bz2");
    archive(
        &ar,
        Compression::Bzip2,
        &[
            ("vits-test/model.onnx".into(), read("model.onnx")),
            ("vits-test/tokens.txt".into(), read("tokens.txt")),
            ("vits-test/lexicon.txt".into(), read("lexicon.txt")),
        ],
    );
    let toml = format!(
        r#"[[pack]]
name = "vits-test"
url = "https://github.com/k2-fsa/sherpa-onnx/releases/download/tts-models/vits-test.tar.bz2"
sha256 = "{}"
bytes = {}
kind = "tts"
model_type = "vits"
language = "zh"
sample_rate = 16000
license = "test licence"
description = "a test entry"
speakers = {{ chinese_huaxiaomei_common = 1 }}
files = [
  {{ path = "model.onnx", role = "model", sha256 = "{}" }},
  {{ path = "tokens.txt", role = "tokens" }},
  {{ path = "lexicon.txt", role = "lexicon" }},
]
"#,
        sha_of(&fs::read(&ar).unwrap()),
        fs::metadata(&ar).unwrap().len(),
        sha_of(&read("model.onnx")),
    );
    let f = t.path().join("catalog.toml");
    fs::write(&f, &toml).unwrap();
    let catalog = Catalog::with_file(&f).unwrap();
    let models = t.path().join("models");
    let got = install_from(&ar, &models, &catalog, &Overrides::default()).unwrap();
    assert_eq!(got.catalog.as_deref(), Some("vits-test"));
    let m = manifest(&got.dir);
    assert_eq!(m.kind, PackKind::Tts);
    assert!(m.properties.is_empty());
    assert_eq!(
        m.speakers.into_iter().collect::<Vec<_>>(),
        [("chinese_huaxiaomei_common".to_string(), 1)]
    );
    // a voice that is not a SIS voice is refused by the catalog
    fs::write(
        &f,
        toml.replace("chinese_huaxiaomei_common", "chinese_nobody"),
    )
    .unwrap();
    let e = Catalog::with_file(&f).unwrap_err();
    assert!(e.contains("not a SIS voice"), "{e}");
}
