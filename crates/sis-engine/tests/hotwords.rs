//! Hot words on the committed test packs (CTC: sherpa-onnx cannot bias
//! them, so the vocabulary is applied to the text after decoding): phrases
//! of the packs' training sentences, spoken by espeak-ng, decoded with and
//! without a vocabulary that spells a word of each phrase with other
//! characters of the same pinyin. The vocabulary's spelling must appear only
//! with it. Audio is made as `tools/heldout/make_heldout.py` makes it
//! (espeak-ng's `cmn-Latn-pinyin` voice, ffmpeg to 16 kHz, 0.4 s of silence
//! each side), once, under `target/hotwords-audio`.
#![allow(clippy::unwrap_used)]

#[path = "../src/testsupport/heldout.rs"]
#[allow(dead_code)]
mod heldout;

use std::path::PathBuf;
use std::sync::Arc;

use heldout::root;
use sis_core::{AudioFormat, HotWords, Pcm, Property, RecognitionOptions};
use sis_engine::{Engine, EngineConfig, UtteranceRequest};

/// (sentence the packs were trained on, its word, a homophone of that word
/// spelled with other characters). 行 is a heteronym (háng / xíng).
const CASES: &[(&str, &str, &str)] = &[
    ("请问健身房几点开门", "健身房", "健身坊"),
    ("请问银行几点开门", "银行", "银杭"),
    ("请问去上海的高铁还有票吗", "上海", "尚海"),
    ("请问图书馆在什么地方", "图书馆", "图书管"),
];

/// A voice, speed and pitch the packs were not trained on (as the held-out
/// set's).
const VOICE: (&str, u32, u32) = ("m2", 148, 40);

/// `text` spoken at 16 kHz.
fn speech(text: &str) -> Pcm {
    let dir = root().join("target/hotwords-audio");
    std::fs::create_dir_all(&dir).unwrap();
    let (voice, speed, pitch) = VOICE;
    let wav: PathBuf = dir.join(format!("{text}-{voice}-{speed}-{pitch}.wav"));
    if !wav.is_file() {
        let raw = std::process::Command::new("espeak-ng")
            .args([
                "-v",
                &format!("cmn-Latn-pinyin+{voice}"),
                "-s",
                &speed.to_string(),
                "-p",
                &pitch.to_string(),
                "--stdout",
                text,
            ])
            .output()
            .expect("espeak-ng");
        assert!(raw.status.success(), "espeak-ng failed");
        let tmp = wav.with_extension("tmp.wav");
        let mut ff = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "wav", "-i", "-"])
            .args(["-af", "adelay=400:all=1,apad=pad_dur=0.4"])
            .args(["-ar", "16000", "-ac", "1", "-c:a", "pcm_s16le"])
            .arg(&tmp)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("ffmpeg");
        {
            use std::io::Write;
            ff.stdin.take().unwrap().write_all(&raw.stdout).unwrap();
        }
        assert!(ff.wait().unwrap().success(), "ffmpeg failed");
        std::fs::rename(&tmp, &wav).unwrap();
    }
    let bytes = std::fs::read(&wav).unwrap();
    sis_audio::decode(
        AudioFormat::Wav,
        &bytes,
        sis_audio::DecodeLimits { max_ms: 60_000 },
    )
    .unwrap()
}

fn engine(pack: &str) -> Engine {
    Engine::load(EngineConfig {
        packs: vec![root().join("testdata/models").join(pack)],
        use_vad: false,
        ..Default::default()
    })
    .unwrap()
}

fn vocabulary(id: &str, words: &[&str]) -> HotWords {
    HotWords {
        vocabulary_id: id.into(),
        version: 1,
        words: Arc::new(words.iter().map(|w| w.to_string()).collect()),
    }
}

/// Transcripts of every case's phrase (words and their times too).
fn recognize(engine: &Engine, hot_words: Option<HotWords>) -> Vec<sis_core::Transcript> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let property = Property::parse("chinese_16k_common").unwrap();
    rt.block_on(async {
        let mut out = Vec::new();
        for (text, _, _) in CASES {
            let t = engine
                .recognize(UtteranceRequest {
                    property: property.clone(),
                    pcm: speech(text),
                    options: RecognitionOptions {
                        digit_norm: true,
                        need_word_info: true,
                        hot_words: hot_words.clone(),
                        ..Default::default()
                    },
                })
                .await
                .unwrap();
            out.push(t);
        }
        out
    })
}

#[test]
fn a_homophone_hot_word_is_spelled_as_the_vocabulary_spells_it() {
    let words: Vec<&str> = CASES.iter().map(|(_, _, hot)| *hot).collect();
    for pack in ["zh-tiny-ctc-offline", "zh-tiny-ctc-streaming"] {
        let e = engine(pack);
        let without = recognize(&e, None);
        let with = recognize(&e, Some(vocabulary(&format!("it-{pack}"), &words)));
        // an unrelated vocabulary changes nothing
        let unrelated = recognize(&e, Some(vocabulary("it-unrelated", &["张伟", "华为SIS"])));
        for (i, (text, word, hot)) in CASES.iter().enumerate() {
            println!(
                "{pack}: {text}: without {:?}, with {:?}",
                without[i].text, with[i].text
            );
            assert!(
                !without[i].text.contains(hot),
                "{pack}: {hot} without the vocabulary: {:?}",
                without[i].text
            );
            assert!(
                with[i].text.contains(hot),
                "{pack}: no {hot} with the vocabulary: {:?}",
                with[i].text
            );
            assert!(
                !with[i].text.contains(word),
                "{pack}: {word} kept with the vocabulary: {:?}",
                with[i].text
            );
            // the rest of the sentence is what it was
            assert_eq!(
                with[i].text.replace(hot, word),
                without[i].text.replace(hot, word),
                "{pack}"
            );
            assert_eq!(unrelated[i].text, without[i].text, "{pack}");
            // the hot word is one word, timed from the first replaced
            // character's start to the last one's end
            let w = with[i]
                .words
                .iter()
                .find(|w| w.word == *hot)
                .unwrap_or_else(|| panic!("{pack}: no word {hot}: {:?}", with[i].words));
            assert!(w.start_ms < w.end_ms);
            let first = word.chars().next().unwrap().to_string();
            if let Some(orig) = without[i].words.iter().find(|w| w.word == first) {
                assert_eq!(w.start_ms, orig.start_ms, "{pack}: {hot} start");
            }
        }
    }
}
