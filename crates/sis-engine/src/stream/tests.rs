//! The real-time scheduler on the committed packs, the real Silero VAD and
//! held-out speech: a [`StreamWorker`] driven command by command (as its
//! thread's loop does, without the thread), handles and their backlog, and
//! the hub's admission and threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sis_core::RecognitionOptions;

use super::worker::{StreamWorker, SENTENCE_SLACK_S, VAD_POOL_TOTAL};
use super::*;
use crate::testsupport::{
    offline_model, post, samples, sentences, silence, streaming_model, vad, Clip,
};

type Log = Arc<Mutex<Vec<(u64, StreamEvent)>>>;

/// A stream worker and the events of its sessions.
struct Harness {
    worker: StreamWorker,
    log: Log,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            worker: StreamWorker::new(
                post(),
                Some(vad()),
                Batching::default(),
                unbounded(),
                Arc::default(),
            ),
            log: Log::default(),
        }
    }

    fn open(&mut self, id: u64, model: Arc<AsrModel>, params: StreamParams) {
        let log = self.log.clone();
        self.worker.apply(Cmd::Open {
            id,
            model,
            params: Box::new(params),
            events: EventSender::new(move |e| log.lock().unwrap().push((id, e))),
        });
    }

    /// `audio` in pieces of `chunk` samples, each followed by a decode pass
    /// (the worker's loop); every sample is taken.
    fn send(&mut self, id: u64, audio: &[f32], chunk: usize) {
        let backlog = Arc::new(AtomicUsize::new(0));
        for piece in audio.chunks(chunk) {
            backlog.fetch_add(piece.len(), Ordering::SeqCst);
            self.worker.apply(Cmd::Audio {
                id,
                samples: piece.to_vec(),
                backlog: backlog.clone(),
            });
            self.worker.decode_ready();
        }
        assert_eq!(backlog.load(Ordering::SeqCst), 0);
    }

    /// END, then the decode pass the worker's loop runs (a whole-stream
    /// session's final result comes from it).
    fn end(&mut self, id: u64, cancel: bool) {
        self.worker.apply(Cmd::End { id, cancel });
        self.worker.decode_ready();
    }

    fn events(&self, id: u64) -> Vec<StreamEvent> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|(i, _)| *i == id)
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// One whole session: open, audio in 100 ms pieces, end.
    fn session(
        &mut self,
        id: u64,
        model: Arc<AsrModel>,
        params: StreamParams,
        audio: &[f32],
    ) -> Vec<StreamEvent> {
        let chunk = params.sample_rate as usize / 10;
        self.open(id, model, params);
        self.send(id, audio, chunk);
        self.end(id, false);
        self.events(id)
    }
}

fn params(segmentation: Segmentation, rate: u32) -> StreamParams {
    StreamParams {
        segmentation,
        options: RecognitionOptions {
            need_word_info: true,
            ..Default::default()
        },
        interim: false,
        vad_head_ms: 10_000,
        vad_tail_ms: 500,
        max_seconds: 30,
        sample_rate: rate,
    }
}

/// A clip with `lead_s` of silence before it and `tail_s` after.
fn padded(clip: &Clip, rate: u32, lead_s: f32, tail_s: f32) -> Vec<f32> {
    let mut v = silence(lead_s, rate);
    v.extend(samples(clip, rate));
    v.extend(silence(tail_s, rate));
    v
}

/// (start_ms, end_ms, text) of every final result.
fn finals(events: &[StreamEvent]) -> Vec<(u64, u64, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Result {
                start_ms,
                end_ms,
                is_final: true,
                transcript,
            } => Some((*start_ms, *end_ms, transcript.text.clone())),
            _ => None,
        })
        .collect()
}

fn interim_texts(events: &[StreamEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Result {
                is_final: false,
                transcript,
                ..
            } => Some(transcript.text.clone()),
            _ => None,
        })
        .collect()
}

fn texts(clips: &[Clip]) -> Vec<String> {
    clips.iter().map(|c| c.text.clone()).collect()
}

fn ms(samples: usize, rate: u32) -> u64 {
    samples as u64 * 1000 / rate as u64
}

/// First 10 ms of `audio` louder than 1 % of full scale, in ms.
fn onset_ms(audio: &[f32], rate: u32) -> u64 {
    let n = rate as usize / 100;
    let i = audio
        .chunks(n)
        .position(|w| (w.iter().map(|s| s * s).sum::<f32>() / w.len() as f32).sqrt() > 0.01)
        .expect("some speech");
    (i * n) as u64 * 1000 / rate as u64
}

#[test]
fn whole_session_is_one_exact_final_on_the_streaming_pack() {
    let mut h = Harness::new();
    for (id, clip) in (1..).zip(sentences().iter().take(2)) {
        let audio = padded(clip, 16000, 0.5, 1.0);
        let mut p = params(Segmentation::Whole, 16000);
        p.interim = true;
        let events = h.session(id, streaming_model(), p, &audio);
        assert_eq!(events.last(), Some(&StreamEvent::Finished));
        let Some(StreamEvent::Result {
            start_ms,
            end_ms,
            is_final: true,
            transcript,
        }) = events.iter().rev().nth(1)
        else {
            panic!("no final result before Finished: {events:?}");
        };
        assert_eq!(transcript.text, clip.text);
        assert_eq!((*start_ms, *end_ms), (0, ms(audio.len(), 16000)));
        let words: String = transcript.words.iter().map(|w| w.word.as_str()).collect();
        assert_eq!(words, transcript.text);
        assert!(transcript
            .words
            .iter()
            .all(|w| w.start_ms < w.end_ms && u64::from(w.end_ms) <= *end_ms));
        // interim results: changes only, each a beginning of the final text
        let interim = interim_texts(&events);
        assert!(!interim.is_empty(), "interim asked for, none sent");
        assert!(interim.windows(2).all(|w| w[0] != w[1]));
        assert!(
            interim[..interim.len() - 1]
                .iter()
                .all(|t| clip.text.starts_with(t.as_str())),
            "{interim:?} vs {}",
            clip.text
        );
    }
    assert_eq!(h.worker.sessions(), 0);
}

#[test]
fn whole_session_on_the_offline_pack_redecodes_for_interim_results() {
    let mut h = Harness::new();
    let clip = &sentences()[0];
    let audio = padded(clip, 16000, 0.5, 1.0);
    let mut p = params(Segmentation::Whole, 16000);
    p.interim = true;
    let events = h.session(1, offline_model(), p, &audio);
    assert_eq!(
        finals(&events),
        [(0, ms(audio.len(), 16000), clip.text.clone())]
    );
    // one interim decode per INTERIM_STEP_S of new audio at the most
    let interim = interim_texts(&events);
    let most = (audio.len() as f32 / 16000.0 / INTERIM_STEP_S) as usize;
    assert!(!interim.is_empty() && interim.len() <= most, "{interim:?}");
    assert_eq!(events.last(), Some(&StreamEvent::Finished));
}

#[test]
fn continuous_sessions_split_sentences_at_16k_and_8k_in_the_client_timeline() {
    let rows: Vec<Clip> = sentences()[2..5].to_vec();
    let mut h = Harness::new();
    let mut by_rate = Vec::new();
    for (id, rate) in [(1, 16000), (2, 8000)] {
        let audio: Vec<f32> = rows
            .iter()
            .flat_map(|c| padded(c, rate, 1.0, 1.2))
            .collect();
        let events = h.session(
            id,
            streaming_model(),
            params(Segmentation::Continuous, rate),
            &audio,
        );
        assert_eq!(events.last(), Some(&StreamEvent::Finished));
        assert!(
            !events.iter().any(|e| matches!(
                e,
                StreamEvent::VoiceStart { .. } | StreamEvent::VoiceEnd { .. }
            )),
            "continue-stream sends no VOICE_* events: {events:?}"
        );
        let segs = finals(&events);
        assert_eq!(
            segs.iter().map(|s| s.2.clone()).collect::<Vec<_>>(),
            texts(&rows),
            "at {rate} Hz"
        );
        // in order, inside the audio; the first starts where its speech does
        let mut prev_end = 0;
        for (start, end, _) in &segs {
            assert!(prev_end <= *start && start < end, "{segs:?}");
            prev_end = *end;
        }
        assert!(prev_end <= ms(audio.len(), rate));
        let onset = onset_ms(&audio, rate);
        assert!(segs[0].0.abs_diff(onset) <= 250, "{segs:?}, onset {onset}");
        by_rate.push(segs);
    }
    // 8 kHz audio is resampled for the VAD; its times are the client's
    for (a, b) in by_rate[0].iter().zip(&by_rate[1]) {
        assert!(
            a.0.abs_diff(b.0) <= 100 && a.1.abs_diff(b.1) <= 100,
            "{by_rate:?}"
        );
    }
}

#[test]
fn first_sentence_sessions_report_voice_events_and_stop_after_one() {
    let rows = sentences();
    let mut audio = padded(&rows[0], 16000, 1.0, 1.5);
    audio.extend(padded(&rows[1], 16000, 0.0, 1.0));
    let mut p = params(Segmentation::FirstSentence, 16000);
    p.interim = true;
    let mut h = Harness::new();
    let events = h.session(1, streaming_model(), p, &audio);
    let start = match events.first() {
        Some(StreamEvent::VoiceStart { ms }) => *ms,
        other => panic!("first event {other:?}"),
    };
    // VOICE_END, the one final result, then Finished
    let n = events.len();
    assert!(n >= 4, "{events:?}");
    let end = match &events[n - 3] {
        StreamEvent::VoiceEnd { ms } => *ms,
        other => panic!("{other:?} in {events:?}"),
    };
    assert_eq!(events[n - 1], StreamEvent::Finished);
    let segs = finals(&events);
    assert_eq!(segs.len(), 1, "only the first sentence: {events:?}");
    assert_eq!(segs[0].2, rows[0].text);
    assert!((700..=2000).contains(&start), "VOICE_START at {start}");
    assert!(start < end && end == segs[0].1, "{events:?}");
    assert!(!interim_texts(&events).is_empty());
}

#[test]
fn first_sentence_sessions_without_speech_exceed_the_silence_at_both_rates() {
    let mut h = Harness::new();
    for (id, rate) in [(1, 16000), (2, 8000)] {
        let mut p = params(Segmentation::FirstSentence, rate);
        p.vad_head_ms = 1500;
        let events = h.session(id, streaming_model(), p, &silence(3.0, rate));
        match events.as_slice() {
            [StreamEvent::ExceededSilence { ms }, StreamEvent::Finished] => {
                assert!((1500..=1700).contains(ms), "at {rate} Hz: {ms}")
            }
            other => panic!("at {rate} Hz: {other:?}"),
        }
    }
}

#[test]
fn a_sentence_the_vad_never_ends_is_cut_past_max_seconds() {
    // speech with no pause the VAD would end a sentence at (vad_tail 3 s):
    // held-out sentences back to back, their silent edges trimmed
    let rate = 16000;
    let edge = (0.4 * rate as f32) as usize;
    let mut audio = silence(0.5, rate);
    for c in sentences().iter().take(5) {
        let s = samples(c, rate);
        audio.extend_from_slice(&s[edge..s.len() - edge]);
    }
    audio.extend(silence(1.0, rate));
    let speech_ms = ms(audio.len(), rate) - 1500;
    let mut p = params(Segmentation::Continuous, rate);
    p.vad_tail_ms = 3000;
    p.max_seconds = 2;
    let mut h = Harness::new();
    let events = h.session(1, streaming_model(), p.clone(), &audio);
    let segs = finals(&events);
    // a sentence's stream starts LEAD_S before its onset, and the cut comes
    // at the first VAD window past the cap
    let longest = (u64::from(p.max_seconds) + SENTENCE_SLACK_S) * 1000 + 64;
    assert!(
        segs.iter().all(|(s, e, _)| e - s <= longest),
        "a sentence longer than {longest} ms: {segs:?}"
    );
    assert!(
        segs.len() as u64 >= speech_ms / longest,
        "{} ms of speech in {segs:?}",
        speech_ms
    );
    assert_eq!(events.last(), Some(&StreamEvent::Finished));
}

#[test]
fn cancel_drops_what_end_would_have_sent() {
    let clip = &sentences()[0];
    // the speech has not ended (no trailing silence) when the session ends
    let mut audio = silence(0.5, 16000);
    let s = samples(clip, 16000);
    audio.extend_from_slice(&s[..s.len() - 6400]);
    let mut h = Harness::new();
    for (id, cancel) in [(1, true), (2, false)] {
        h.open(
            id,
            streaming_model(),
            params(Segmentation::Continuous, 16000),
        );
        h.send(id, &audio, 1600);
        let before = h.events(id).len();
        h.end(id, cancel);
        let after = h.events(id);
        if cancel {
            assert_eq!(after.len(), before, "nothing after a cancel: {after:?}");
        } else {
            assert_eq!(after.last(), Some(&StreamEvent::Finished));
            assert_eq!(finals(&after).len(), 1, "{after:?}");
        }
    }
    // both sessions are gone; the second reused the first's VAD, and it is
    // back in the pool for the next
    assert_eq!(h.worker.sessions(), 0);
    assert_eq!(h.worker.pooled_vads(), 1);
}

#[test]
fn closed_sessions_free_everything_and_idle_vads_stay_bounded() {
    let mut h = Harness::new();
    let n = VAD_POOL_TOTAL as u64 + 4;
    for id in 1..=n {
        let mut p = params(Segmentation::Continuous, 8000);
        p.vad_tail_ms = 100 + id as u32 * 10; // settings of its own
        h.open(id, streaming_model(), p);
        h.send(id, &silence(0.2, 8000), 800);
    }
    assert_eq!(h.worker.sessions(), n as usize);
    for id in 1..=n {
        h.worker.apply(Cmd::Close { id });
    }
    assert_eq!(h.worker.sessions(), 0);
    assert_eq!(h.worker.pooled_vads(), VAD_POOL_TOTAL);
    // audio and an end for a closed session are ignored
    h.send(1, &silence(0.1, 8000), 800);
    h.end(1, false);
    assert!(h.log.lock().unwrap().is_empty());
}

#[test]
fn a_session_without_the_vad_pack_fails_to_open() {
    let mut h = Harness::new();
    h.worker = StreamWorker::new(
        post(),
        None,
        Batching::default(),
        unbounded(),
        Arc::default(),
    );
    h.open(
        1,
        streaming_model(),
        params(Segmentation::Continuous, 16000),
    );
    assert!(matches!(h.events(1).as_slice(), [StreamEvent::Failed(_)]));
    // a whole-stream session needs no VAD
    h.open(2, streaming_model(), params(Segmentation::Whole, 16000));
    assert_eq!(h.worker.sessions(), 1);
}

#[test]
fn a_handle_counts_its_backlog_until_the_worker_takes_it() {
    let (tx, rx) = crossbeam_channel::unbounded();
    let active = Arc::new(AtomicUsize::new(1));
    let handle = StreamHandle {
        id: 1,
        tx,
        active: active.clone(),
        backlog: Arc::default(),
    };
    let mut h = Harness::new();
    h.open(1, streaming_model(), params(Segmentation::Whole, 16000));
    handle.audio(vec![0.0; 1600]);
    handle.audio(vec![0.0; 320]);
    assert_eq!(handle.backlog(), 1920);
    h.worker.apply(rx.try_recv().unwrap());
    assert_eq!(handle.backlog(), 320);
    h.worker.apply(rx.try_recv().unwrap());
    assert_eq!(handle.backlog(), 0);
    handle.end(true);
    assert!(matches!(
        rx.try_recv(),
        Ok(Cmd::End {
            id: 1,
            cancel: true
        })
    ));
    // dropping the handle closes the session and gives back its slot
    drop(handle);
    assert!(matches!(rx.try_recv(), Ok(Cmd::Close { id: 1 })));
    assert_eq!(active.load(Ordering::SeqCst), 0);
}

#[test]
fn the_hub_admits_up_to_its_capacity_and_runs_sessions_on_its_threads() {
    let hub = Hub::start(
        post(),
        Some(vad()),
        2,
        2,
        Batching::default(),
        Default::default(),
    )
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let p = params(Segmentation::Whole, 16000);
    let a = hub
        .open(streaming_model(), p.clone(), tx.clone().into())
        .unwrap();
    let b = hub
        .open(streaming_model(), p.clone(), tx.clone().into())
        .unwrap();
    assert!(matches!(
        hub.open(streaming_model(), p.clone(), tx.clone().into()),
        Err(EngineError::Busy)
    ));
    assert_eq!(hub.active(), 2);
    drop(b);
    assert_eq!(hub.active(), 1);
    let c = hub.open(streaming_model(), p, tx.into()).unwrap();
    drop(c);
    // a whole session through the hub's threads
    let clip = &sentences()[0];
    let audio = padded(clip, 16000, 0.5, 1.0);
    for piece in audio.chunks(1600) {
        a.audio(piece.to_vec());
    }
    a.end(false);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut events = Vec::new();
    while events.last() != Some(&StreamEvent::Finished) {
        match rx.try_recv() {
            Ok(e) => events.push(e),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("no Finished: {e:?} after {events:?}"),
        }
    }
    assert_eq!(
        finals(&events),
        [(0, ms(audio.len(), 16000), clip.text.clone())]
    );
    assert_eq!(a.backlog(), 0);
    drop(a);
    assert_eq!(hub.active(), 0);
}

/// A session's vocabulary reaches its final and interim results, on a
/// streaming pack (live streams) and an offline one (re-decoded sentences):
/// a forced rule rewrites the first two characters of the clip.
#[test]
fn a_sessions_vocabulary_applies_to_its_final_and_interim_results() {
    let mut h = Harness::new();
    let clip = &sentences()[0];
    let head: String = clip.text.chars().take(2).collect();
    let want = clip.text.replacen(&head, "谐音", 1);
    let audio = padded(clip, 16000, 0.5, 1.0);
    for (id, model) in [(1, streaming_model()), (2, offline_model())] {
        let mut p = params(Segmentation::Whole, 16000);
        p.interim = true;
        p.options.hot_words = Some(sis_core::HotWords {
            vocabulary_id: "stream-test".into(),
            version: 1,
            words: Arc::new(vec![format!("{head}=谐音")]),
        });
        let events = h.session(id, model, p, &audio);
        let finals = finals(&events);
        assert_eq!(finals.len(), 1, "{events:?}");
        assert_eq!(finals[0].2, want);
        let interim = interim_texts(&events);
        assert!(
            interim
                .iter()
                .filter(|t| t.chars().count() >= 2)
                .all(|t| t.starts_with("谐音")),
            "{interim:?}"
        );
    }
}

/// Streams that become ready one after another wait for each other (up to
/// `max_batch`, or `wait` for the first): one decode pass then runs them
/// all in multi-stream calls, and its results are the ones each stream
/// would get alone.
#[test]
fn ready_streams_are_batched_until_the_batch_is_full_or_the_first_has_waited() {
    let clips = sentences();
    let n = 6;
    let run = |batching: Batching| {
        let stats = Arc::new(BatchStats::default());
        let mut h = Harness::new();
        h.worker = StreamWorker::new(post(), Some(vad()), batching, unbounded(), stats.clone());
        for id in 0..n {
            let p = StreamParams {
                interim: true,
                ..params(Segmentation::Whole, 16000)
            };
            h.open(id, streaming_model(), p);
        }
        let mut due_after = vec![];
        let backlog = Arc::new(AtomicUsize::new(0));
        // 1.5 s of each clip: more than one decode window of the pack
        for id in 0..n {
            let audio = samples(&clips[id as usize], 16000);
            let piece = audio[..24000.min(audio.len())].to_vec();
            backlog.fetch_add(piece.len(), Ordering::SeqCst);
            h.worker.apply(Cmd::Audio {
                id,
                samples: piece,
                backlog: backlog.clone(),
            });
            due_after.push(h.worker.batch_due());
        }
        if h.worker.batch_due() {
            h.worker.decode_ready();
        }
        let partials: Vec<Vec<StreamEvent>> = (0..n).map(|id| h.events(id)).collect();
        (due_after, stats.totals(), partials)
    };
    // a full batch of 6: due only when the sixth is ready; one pass, every
    // call decoding all six
    let (due, (calls, streams), batched) = run(Batching {
        max_batch: 6,
        wait: Duration::from_secs(60),
    });
    assert_eq!(due, [false, false, false, false, false, true]);
    assert!(
        calls >= 1 && streams == calls * 6,
        "{calls} calls, {streams} streams"
    );
    // no wait: due as soon as one is ready (the old behaviour)
    let (due, _, _) = run(Batching {
        max_batch: 6,
        wait: Duration::ZERO,
    });
    assert!(due.iter().all(|d| *d), "{due:?}");
    // the same interim results as streams decoded alone
    let mut alone = vec![];
    for id in 0..n {
        let mut h = Harness::new();
        let p = StreamParams {
            interim: true,
            ..params(Segmentation::Whole, 16000)
        };
        h.open(id, streaming_model(), p);
        let audio = samples(&clips[id as usize], 16000);
        h.send(id, &audio[..24000.min(audio.len())], 24000);
        alone.push(h.events(id));
    }
    assert!(batched.iter().all(|e| !e.is_empty()), "{batched:?}");
    assert_eq!(batched, alone);
}

/// END on several whole-stream sessions: their tails are decoded together
/// in the next decode pass (multi-stream calls), and each gets the final
/// result it gets alone, then Finished; nothing is sent before that pass.
#[test]
fn ended_streams_are_finished_together_in_one_decode_pass() {
    let clips = sentences();
    let stats = Arc::new(BatchStats::default());
    let mut h = Harness::new();
    h.worker = StreamWorker::new(
        post(),
        Some(vad()),
        Batching::default(),
        unbounded(),
        stats.clone(),
    );
    let mut alone = vec![];
    for id in 0..4u64 {
        let audio = samples(&clips[id as usize], 16000);
        h.open(id, streaming_model(), params(Segmentation::Whole, 16000));
        h.send(id, &audio, 1600);
        let mut a = Harness::new();
        alone.push(a.session(
            id,
            streaming_model(),
            params(Segmentation::Whole, 16000),
            &audio,
        ));
    }
    let before = stats.totals();
    for id in 0..4u64 {
        h.worker.apply(Cmd::End { id, cancel: false });
        assert!(
            !h.events(id)
                .iter()
                .any(|e| matches!(e, StreamEvent::Finished)),
            "finished before the decode pass"
        );
    }
    assert!(h.worker.batch_due() || Batching::default().wait > Duration::ZERO);
    h.worker.decode_ready();
    let (calls, streams) = stats.totals();
    let (calls, streams) = (calls - before.0, streams - before.1);
    assert!(
        calls >= 1 && streams >= 4 && streams >= 2 * calls,
        "{calls} calls, {streams} streams"
    );
    for id in 0..4u64 {
        assert_eq!(h.events(id), alone[id as usize], "session {id}");
        assert!(matches!(h.events(id).last(), Some(StreamEvent::Finished)));
    }
    assert_eq!(h.worker.sessions(), 0);
}
