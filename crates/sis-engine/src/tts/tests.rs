//! The synthesizer with the real espeak-ng (installed by `scripts/setup
//! --runtime`), and with small shell scripts standing in for a broken one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sis_audio::stream::{read_bytes, FileFormat, StreamLimits};
use sis_core::tts::{ScriptPiece, SynthesisRequest, TtsFormat};

use super::*;

fn settings(program: &Path, max_processes: usize) -> TtsSettings {
    TtsSettings {
        espeak: program.to_path_buf(),
        max_processes,
        timeout: Duration::from_secs(20),
    }
}

fn real(max_processes: usize) -> Synthesizer {
    let s = Synthesizer::start(settings(Path::new("espeak-ng"), max_processes));
    assert!(
        matches!(s.availability(), Availability::Ready { .. }),
        "espeak-ng is needed (scripts/setup --runtime): {:?}",
        s.availability()
    );
    s
}

fn request(text: &str) -> SynthesisRequest {
    SynthesisRequest {
        script: vec![ScriptPiece::Text(text.to_string())],
        voice: "chinese_xiaoyan_common".into(),
        format: TtsFormat::Wav,
        sample_rate: 16000,
        speed: 0,
        pitch: 0,
        volume: 50,
    }
}

/// The samples of a WAV or MP3 answer, and its rate.
fn decoded(audio: &[u8]) -> (u32, Vec<f32>) {
    let (rate, mut ch) = read_bytes(audio, FileFormat::Auto, StreamLimits::default()).unwrap();
    assert_eq!(ch.len(), 1);
    (rate, ch.pop().unwrap())
}

#[tokio::test]
async fn every_format_and_rate() {
    let s = real(2);
    for rate in [8000, 16000] {
        let mut lengths = vec![];
        for format in TtsFormat::ALL {
            let r = SynthesisRequest {
                format,
                sample_rate: rate,
                ..request("今天天气很好，我们去公园散步吧。")
            };
            let out = s.synthesize(&r).await.unwrap();
            let samples = match format {
                TtsFormat::Pcm => {
                    assert_eq!(out.audio.len() % 2, 0);
                    out.audio.len() / 2
                }
                _ => {
                    let (r, x) = decoded(&out.audio);
                    assert_eq!(r, rate, "{format}");
                    x.len()
                }
            };
            assert!(
                out.seconds > 1.5 && out.seconds < 6.0,
                "{format}: {}",
                out.seconds
            );
            lengths.push(samples);
        }
        // the same audio in every format (MP3's decoder trims LAME's delay)
        assert!(lengths.iter().all(|&n| n == lengths[0]), "{lengths:?}");
    }
}

#[tokio::test]
async fn sentences_in_parallel_come_back_in_order() {
    let s = real(3);
    let parts = [
        "第一句话。",
        "第二句比第一句长一些。",
        "三。",
        "最后一句话在这里。",
    ];
    // volume 100: the peak limit holds each sentence apart, so a sentence
    // is the same alone and among others
    let mut alone = vec![];
    for p in parts {
        let r = SynthesisRequest {
            format: TtsFormat::Pcm,
            volume: 100,
            ..request(p)
        };
        alone.extend(s.synthesize(&r).await.unwrap().audio);
    }
    let r = SynthesisRequest {
        format: TtsFormat::Pcm,
        volume: 100,
        ..request(&parts.concat())
    };
    let together = s.synthesize(&r).await.unwrap().audio;
    assert_eq!(together.len(), alone.len());
    assert!(together == alone, "sentences out of order");

    // the parts as they come are the file, one after the other
    let mut synthesis = s.open(&r).unwrap();
    assert_eq!(synthesis.rate(), 16000);
    let mut streamed = vec![];
    let mut n = 0;
    while let Some(part) = synthesis.next().await {
        let part = part.unwrap();
        assert!(!part.is_empty());
        streamed.extend(sis_audio::encode_pcm16(&part));
        n += 1;
    }
    assert_eq!(n, parts.len());
    assert!(synthesis.next().await.is_none());
    assert!(streamed == together);
}

#[tokio::test]
async fn streamed_parts_include_pauses_and_silence() {
    let s = real(2);
    let r = SynthesisRequest {
        script: vec![
            ScriptPiece::Pause { ms: 0 },
            ScriptPiece::Text("你好。".into()),
            ScriptPiece::Pause { ms: 250 },
            ScriptPiece::Text("世界。".into()),
        ],
        sample_rate: 8000,
        ..request("")
    };
    let mut synthesis = s.open(&r).unwrap();
    let mut lengths = vec![];
    while let Some(part) = synthesis.next().await {
        lengths.push(part.unwrap().len());
    }
    // the empty pause gives no part
    assert_eq!(lengths.len(), 3, "{lengths:?}");
    assert_eq!(lengths[1], 2000);
    // nothing to read: one part of 0.1 s of silence
    let mut none = s.open(&request("。。。")).unwrap();
    let part = none.next().await.unwrap().unwrap();
    assert!(part.len() == 1600 && part.iter().all(|&x| x == 0));
    assert!(none.next().await.is_none());
}

#[tokio::test]
async fn a_dropped_synthesis_kills_its_processes_and_frees_its_slots() {
    // each run writes its pid, then hangs
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let (_d, hangs) = fake(
        "hangs",
        &format!("echo $$ >> {}; exec sleep 30", pids.display()),
    );
    let s = Synthesizer::start(settings(&hangs, 2));
    let mut synthesis = s.open(&request("一。二。三。四。")).unwrap();
    // two sentences run (two slots), the first is waited for
    let waited = tokio::time::timeout(Duration::from_millis(800), synthesis.next()).await;
    assert!(waited.is_err(), "a hanging sentence gave a part");
    let running: Vec<u32> = std::fs::read_to_string(&pids)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(running.len(), 2, "{running:?}");
    drop(synthesis);
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|st| {
                !st.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while running.iter().any(|&p| alive(p)) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!running.iter().any(|&p| alive(p)), "espeak-ng left running");
    // the slots are free again: a new synthesis starts two sentences
    std::fs::write(&pids, "").unwrap();
    let mut again = s.open(&request("一。二。")).unwrap();
    let _ = tokio::time::timeout(Duration::from_millis(800), again.next()).await;
    let started = std::fs::read_to_string(&pids).unwrap();
    assert_eq!(started.split_whitespace().count(), 2, "{started}");
}

#[tokio::test]
async fn pauses_speed_and_voices() {
    let s = real(2);
    let base = s.synthesize(&request("你好世界")).await.unwrap().seconds;
    let paused = SynthesisRequest {
        script: vec![
            ScriptPiece::Text("你好".into()),
            ScriptPiece::Pause { ms: 1000 },
            ScriptPiece::Text("世界".into()),
        ],
        ..request("")
    };
    let p = s.synthesize(&paused).await.unwrap().seconds;
    assert!(p > base + 0.9, "{p} vs {base}");
    let fast = SynthesisRequest {
        speed: 500,
        ..request("你好世界")
    };
    let f = s.synthesize(&fast).await.unwrap().seconds;
    assert!((f / base - 0.5).abs() < 0.02, "{f} vs {base}");
    for v in VOICES {
        let r = SynthesisRequest {
            voice: v.name.into(),
            ..request(match v.language {
                Language::Mandarin => "你好",
                Language::English => "Hello",
            })
        };
        let out = s.synthesize(&r).await.unwrap();
        assert!(out.seconds > 0.2, "{}", v.name);
    }
    // nothing to read: a little silence
    let none = s.synthesize(&request("。。。")).await.unwrap();
    let (_, x) = decoded(&none.audio);
    assert!(!x.is_empty() && x.iter().all(|&v| v == 0.0));
}

#[tokio::test]
async fn voice_and_rate_are_checked_first() {
    let s = Synthesizer::start(settings(Path::new("/nonexistent/espeak-ng"), 1));
    let r = SynthesisRequest {
        voice: "chinese_nobody_common".into(),
        ..request("你好")
    };
    assert!(
        matches!(s.synthesize(&r).await, Err(TtsError::UnknownVoice(v)) if v == "chinese_nobody_common")
    );
    let r = SynthesisRequest {
        voice: "chinese_huanvxia_literature".into(),
        sample_rate: 8000,
        ..request("你好")
    };
    assert!(matches!(
        s.synthesize(&r).await,
        Err(TtsError::RateNotOffered { rate: 8000, .. })
    ));
}

#[tokio::test]
async fn a_missing_espeak_is_unavailable_not_a_crash() {
    let s = Synthesizer::start(settings(Path::new("/nonexistent/espeak-ng"), 1));
    assert!(
        matches!(s.availability(), Availability::Unavailable { reason } if reason.contains("/nonexistent/espeak-ng")),
        "{:?}",
        s.availability()
    );
    assert!(matches!(
        s.synthesize(&request("你好")).await,
        Err(TtsError::Unavailable(_))
    ));
}

/// A stand-in for espeak-ng that passes the probe, then runs `body`.
fn fake(name: &str, body: &str) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(
        &path,
        format!("#!/bin/sh\ncase \"$1\" in --version) echo fake 1.0; exit 0;; -q) exit 0;; esac\n{body}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, path)
}

#[tokio::test]
async fn broken_espeak_runs_are_errors_and_killed() {
    let (_d, failing) = fake("fails", "echo broken >&2; exit 3");
    let s = Synthesizer::start(settings(&failing, 1));
    assert_eq!(
        s.availability(),
        &Availability::Ready {
            version: "fake 1.0".into()
        }
    );
    let e = s.synthesize(&request("你好")).await.unwrap_err();
    assert!(
        matches!(&e, TtsError::Failed(m) if m.contains("broken")),
        "{e}"
    );

    let (_d, hangs) = fake("hangs", "exec sleep 30");
    let s = Synthesizer::start(TtsSettings {
        timeout: Duration::from_millis(500),
        ..settings(&hangs, 1)
    });
    let started = std::time::Instant::now();
    let e = s.synthesize(&request("你好")).await.unwrap_err();
    assert!(
        matches!(&e, TtsError::Failed(m) if m.contains("longer than")),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    let (_d, floods) = fake("floods", "exec head -c 20000000 /dev/zero");
    let s = Synthesizer::start(settings(&floods, 1));
    let e = s.synthesize(&request("你好")).await.unwrap_err();
    assert!(
        matches!(&e, TtsError::Failed(m) if m.contains("more than")),
        "{e}"
    );

    let (_d, garbage) = fake("garbage", "cat >/dev/null; echo not a wav");
    let s = Synthesizer::start(settings(&garbage, 1));
    let e = s.synthesize(&request("你好")).await.unwrap_err();
    assert!(
        matches!(&e, TtsError::Failed(m) if m.contains("output")),
        "{e}"
    );
}

#[test]
fn probe_names_what_is_missing() {
    let (_d, no_voice) = fake("novoice", "");
    // the fake passes `-q`; one that fails it lacks the voices
    let (_d2, lacks) = {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lacks");
        std::fs::write(
            &path,
            "#!/bin/sh\n[ \"$1\" = --version ] && { echo fake; exit 0; }\necho 'no such voice' >&2; exit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, path)
    };
    assert!(probe(&no_voice, Duration::from_secs(5)).is_ok());
    let e = probe(&lacks, Duration::from_secs(5)).unwrap_err();
    assert!(e.contains("no voice") && e.contains("no such voice"), "{e}");
}
