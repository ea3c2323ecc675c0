//! The file pipeline on the committed offline pack, the real Silero VAD and
//! held-out speech: sentences in order with their times, stereo channels,
//! 8 kHz input, and results that do not depend on how the file is cut into
//! pushes.

use sis_core::RecognitionOptions;

use super::*;
use crate::testsupport::{
    offline_model, post, samples, sentences, silence, streaming_model, vad, Clip,
};

fn options() -> RecognitionOptions {
    RecognitionOptions {
        need_word_info: true,
        ..Default::default()
    }
}

fn transcriber(model: Arc<AsrModel>, rate: u32, channels: usize) -> FileTranscriber {
    FileTranscriber::start(model, &vad(), post(), rate, channels, options()).unwrap()
}

/// Pushes `planar` in pieces of `chunk` samples per channel; the sentences.
fn transcribe(mut t: FileTranscriber, planar: &[Vec<f32>], chunk: usize) -> Vec<FileSentence> {
    let len = planar.iter().map(Vec::len).max().unwrap_or(0);
    for at in (0..len).step_by(chunk.max(1)) {
        let piece: Vec<Vec<f32>> = planar
            .iter()
            .map(|c| c[at.min(c.len())..(at + chunk).min(c.len())].to_vec())
            .collect();
        t.push(&piece).unwrap();
    }
    t.finish().unwrap()
}

/// Clips placed one after another with `gap_s` of silence before each; the
/// audio and where each clip (with its own 0.4 s silent edges) lies, in ms.
fn layout(clips: &[Clip], rate: u32, gap_s: f32) -> (Vec<f32>, Vec<(u64, u64)>) {
    let mut audio = Vec::new();
    let mut spans = Vec::new();
    for c in clips {
        audio.extend(silence(gap_s, rate));
        let start = audio.len();
        audio.extend(samples(c, rate));
        spans.push((ms(start, rate), ms(audio.len(), rate)));
    }
    audio.extend(silence(gap_s, rate));
    (audio, spans)
}

fn ms(samples: usize, rate: u32) -> u64 {
    samples as u64 * 1000 / rate as u64
}

fn texts(s: &[FileSentence]) -> Vec<&str> {
    s.iter().map(|s| s.transcript.text.as_str()).collect()
}

/// Each sentence's speech lies inside its clip, and its words inside it too.
fn check_times(got: &[FileSentence], spans: &[(u64, u64)]) {
    assert_eq!(got.len(), spans.len());
    for (s, (from, to)) in got.iter().zip(spans) {
        assert!(
            *from <= s.start_ms && s.start_ms < s.end_ms && s.end_ms <= *to,
            "{}..{} outside the clip at {from}..{to}",
            s.start_ms,
            s.end_ms
        );
        let words: String = s.transcript.words.iter().map(|w| w.word.as_str()).collect();
        assert_eq!(words, s.transcript.text);
        for w in &s.transcript.words {
            assert!(
                u64::from(w.start_ms) + 150 >= *from && u64::from(w.end_ms) <= to + 150,
                "word {w:?} outside {from}..{to}"
            );
        }
    }
}

/// `clips` with 1 s of silence around each, at `rate`, pushed `chunk`
/// samples at a time through `model`: one sentence per clip, in order, with
/// its text and its times inside the clip.
fn check_sentences(model: Arc<AsrModel>, clips: &[Clip], rate: u32, chunk: usize) {
    let (audio, spans) = layout(clips, rate, 1.0);
    let got = transcribe(transcriber(model, rate, 1), &[audio], chunk);
    let want: Vec<&str> = clips.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts(&got), want, "at {rate} Hz");
    assert!(got.iter().all(|s| s.channel == 0));
    check_times(&got, &spans);
}

#[test]
fn a_mono_file_becomes_its_sentences_in_order_with_their_times() {
    check_sentences(offline_model(), &sentences()[..4], 16000, 16000);
}

#[test]
fn eight_khz_files_are_recognised_in_their_own_timeline() {
    check_sentences(offline_model(), &sentences()[2..4], 8000, 4000);
}

#[test]
fn a_streaming_pack_serves_files_too() {
    check_sentences(streaming_model(), &sentences()[..2], 16000, 16000);
}

#[test]
fn how_the_file_is_cut_into_pushes_changes_nothing() {
    let clips: Vec<Clip> = sentences()[4..6].to_vec();
    let (audio, _) = layout(&clips, 16000, 0.7);
    let planar = [audio];
    let whole = transcribe(transcriber(offline_model(), 16000, 1), &planar, 16000);
    // odd pieces: never a whole VAD window, often less than one
    let odd = transcribe(transcriber(offline_model(), 16000, 1), &planar, 333);
    let key = |v: &[FileSentence]| -> Vec<(u64, u64, String)> {
        v.iter()
            .map(|s| (s.start_ms, s.end_ms, s.transcript.text.clone()))
            .collect()
    };
    assert_eq!(whole.len(), 2);
    assert_eq!(key(&whole), key(&odd));
}

/// Puts `clip` into `track` at `at_ms` (silence before it); its span in ms.
fn place(track: &mut Vec<f32>, at_ms: u64, clip: &Clip, rate: u32) -> (u64, u64) {
    let start = (at_ms * rate as u64 / 1000) as usize;
    assert!(track.len() <= start);
    track.resize(start, 0.0);
    track.extend(samples(clip, rate));
    (ms(start, rate), ms(track.len(), rate))
}

#[test]
fn stereo_channels_are_transcribed_separately_and_merged_by_time() {
    let rows = sentences();
    let (mut left, mut right) = (Vec::new(), Vec::new());
    // channel 1 starts while channel 0 still speaks; then channel 0 again
    let a = place(&mut left, 500, &rows[1], 16000);
    let b = place(&mut right, 1000, &rows[2], 16000);
    let c = place(&mut left, a.1.max(b.1) + 500, &rows[3], 16000);
    left.extend(silence(1.0, 16000));
    let got = transcribe(transcriber(offline_model(), 16000, 2), &[left, right], 8000);
    assert_eq!(
        got.iter()
            .map(|s| (s.channel, s.transcript.text.as_str()))
            .collect::<Vec<_>>(),
        [
            (0, rows[1].text.as_str()),
            (1, rows[2].text.as_str()),
            (0, rows[3].text.as_str())
        ]
    );
    check_times(&got, &[a, b, c]);
}

#[test]
fn silence_and_empty_files_have_no_sentences() {
    let t = transcriber(offline_model(), 16000, 1);
    assert_eq!(t.recognised(), 0);
    assert!(t.finish().unwrap().is_empty());
    let got = transcribe(
        transcriber(offline_model(), 8000, 2),
        &[silence(3.0, 8000), silence(3.0, 8000)],
        8000,
    );
    assert!(got.is_empty());
}

#[test]
fn progress_counts_sentences_as_they_are_recognised() {
    // more than one batch of sentences, so some are decoded before the end
    let clip = sentences()[0].clone();
    let clips = vec![clip; BATCH + 2];
    let (audio, _) = layout(&clips, 16000, 0.6);
    let mut t = transcriber(offline_model(), 16000, 1);
    let mut seen = 0;
    for piece in audio.chunks(16000) {
        t.push(&[piece.to_vec()]).unwrap();
        assert!(t.recognised() >= seen);
        seen = t.recognised();
    }
    let got = t.finish().unwrap();
    assert_eq!(got.len(), BATCH + 2);
    assert!(seen <= got.len());
}

/// A job's vocabulary reaches every sentence of its file.
#[test]
fn a_files_vocabulary_applies_to_every_sentence() {
    let clips = &sentences()[..2];
    let (audio, _) = layout(clips, 16000, 1.0);
    let heads: Vec<String> = clips
        .iter()
        .map(|c| c.text.chars().take(2).collect())
        .collect();
    let options = RecognitionOptions {
        hot_words: Some(sis_core::HotWords {
            vocabulary_id: "file-test".into(),
            version: 1,
            words: Arc::new(heads.iter().map(|h| format!("{h}=谐音")).collect()),
        }),
        ..options()
    };
    let t = FileTranscriber::start(offline_model(), &vad(), post(), 16000, 1, options).unwrap();
    let got = transcribe(t, &[audio], 16000);
    let want: Vec<String> = clips
        .iter()
        .zip(&heads)
        .map(|(c, h)| c.text.replacen(h.as_str(), "谐音", 1))
        .collect();
    assert_eq!(texts(&got), want);
}
