//! From raw decoder tokens to a SIS transcript: text, word timings, hot
//! words, digit normalisation and punctuation, in that order.
//!
//! Hot words (the request's vocabulary, `hotwords.rs`) are applied to the
//! recognised characters before digit normalisation and punctuation: the
//! pinyin match needs the recognised hanzi (一 reads yi, 1 reads nothing),
//! a hot word may be made of number characters (一号线, 三星) that digit
//! normalisation would rewrite, so a replaced span is kept out of it (the
//! vocabulary's spelling is what the caller asked for), and punctuation
//! inserts characters that would split spans. A replaced span becomes one
//! word whose time runs from its first character's start to its last
//! character's end.

use sis_core::{RecognitionOptions, Transcript, WordTiming};
use sis_text::Piece;

use crate::decoding::DecodingContext;
use crate::sherpa::{Punctuation, RawResult};

/// What turns decoder output into transcripts, shared by every path: the
/// punctuation model when one is installed (else `sis_text`'s fallback).
pub struct Postprocessor {
    punctuation: Option<Punctuation>,
}

impl Postprocessor {
    pub fn new(punctuation: Option<Punctuation>) -> Postprocessor {
        Postprocessor { punctuation }
    }

    pub fn has_punctuation(&self) -> bool {
        self.punctuation.is_some()
    }

    /// A final transcript of `pieces` ((segment offset in s, raw result), in
    /// order) over `duration_s`, as `options` and the request's `context`
    /// (its hot words) ask.
    pub fn transcript(
        &self,
        pieces: &[(f32, RawResult)],
        duration_s: f32,
        options: &RecognitionOptions,
        context: &DecodingContext,
    ) -> Transcript {
        transcript(
            pieces,
            duration_s,
            options,
            context,
            self.punctuation.as_ref(),
        )
    }

    /// An interim transcript: text only (no punctuation, no word list).
    pub fn partial(
        &self,
        raw: RawResult,
        duration_s: f32,
        options: &RecognitionOptions,
        context: &DecodingContext,
    ) -> Transcript {
        let options = RecognitionOptions {
            add_punc: false,
            need_word_info: false,
            ..options.clone()
        };
        transcript(&[(0.0, raw)], duration_s, &options, context, None)
    }
}

/// Moves every word of `t` by `offset_ms` (segment times to session times).
pub fn shift_words(t: &mut Transcript, offset_ms: u32) {
    for w in &mut t.words {
        w.start_ms += offset_ms;
        w.end_ms += offset_ms;
    }
}

/// Keeps every word of `t` inside its sentence `[start_ms, end_ms]` (a file
/// sentence is decoded with padding around the VAD's speech, and a last
/// character's assumed length may reach past the speech's end), each at
/// least 1 ms long where the sentence allows; order is kept.
pub fn clamp_words(t: &mut Transcript, start_ms: u32, end_ms: u32) {
    let end_ms = end_ms.max(start_ms);
    for w in &mut t.words {
        w.end_ms = w.end_ms.clamp((start_ms + 1).min(end_ms), end_ms);
        w.start_ms = w
            .start_ms
            .clamp(start_ms, w.end_ms.saturating_sub(1).max(start_ms));
    }
}

/// Longest time a single character is assumed to last when the next token is
/// far away (CTC marks where a token fires, not how long it lasts).
const MAX_CHAR_S: f32 = 0.4;

struct TimedChar {
    ch: char,
    start: f32,
    end: f32,
}

/// `chars` (characters of the transcript from index `offset` on) as pieces:
/// digit-normalised when asked, else one per character.
fn plain_pieces(chars: &[char], offset: usize, digit_norm: bool) -> Vec<Piece> {
    if digit_norm {
        let text: String = chars.iter().collect();
        sis_text::normalize(&text)
            .into_iter()
            .map(|p| Piece {
                text: p.text,
                src: p.src.start + offset..p.src.end + offset,
            })
            .collect()
    } else {
        chars
            .iter()
            .enumerate()
            .map(|(i, c)| Piece {
                text: c.to_string(),
                src: offset + i..offset + i + 1,
            })
            .collect()
    }
}

/// The transcript's pieces and, for each, whether it is a hot word (or a
/// rule's target): hot-word spans first, the characters between them
/// digit-normalised (when asked) on their own.
fn pieces_of(
    chars: &[char],
    options: &RecognitionOptions,
    context: &DecodingContext,
    fuzzy: bool,
) -> Vec<(Piece, bool)> {
    let replacements = match &context.hot_words {
        Some(v) => v.replacements(chars, fuzzy),
        None => Vec::new(),
    };
    let mut out: Vec<(Piece, bool)> = Vec::new();
    let mut at = 0;
    for r in replacements {
        let plain = plain_pieces(&chars[at..r.range.start], at, options.digit_norm);
        out.extend(plain.into_iter().map(|p| (p, false)));
        at = r.range.end;
        out.push((
            Piece {
                text: r.text,
                src: r.range,
            },
            true,
        ));
    }
    let plain = plain_pieces(&chars[at..], at, options.digit_norm);
    out.extend(plain.into_iter().map(|p| (p, false)));
    out
}

/// `pieces`: (segment offset in s, raw result) in order.
fn transcript(
    pieces: &[(f32, RawResult)],
    duration_s: f32,
    options: &RecognitionOptions,
    context: &DecodingContext,
    punctuation: Option<&Punctuation>,
) -> Transcript {
    // sherpa-onnx biased the decode with the hot words: their sound-alikes
    // are left as the model decided, only exact spellings and rules apply
    let fuzzy = pieces.iter().any(|(_, r)| !r.biased);
    let score = confidence(pieces);
    // Flatten tokens into timed characters ('▁' marks a word start in BPE models).
    let mut chars: Vec<TimedChar> = Vec::new();
    for (offset, r) in pieces {
        for (i, tok) in r.tokens.iter().enumerate() {
            let start = offset + r.timestamps.get(i).copied().unwrap_or(0.0);
            let next = r.timestamps.get(i + 1).map(|t| offset + t);
            let end = match next {
                Some(t) if t - start <= MAX_CHAR_S => t,
                _ => (start + MAX_CHAR_S).min(duration_s.max(start)),
            };
            let text = tok.replace('▁', " ");
            let count = text.chars().count().max(1) as f32;
            for (k, ch) in text.chars().enumerate() {
                let a = start + (end - start) * k as f32 / count;
                let b = start + (end - start) * (k + 1) as f32 / count;
                chars.push(TimedChar {
                    ch,
                    start: a,
                    end: b,
                });
            }
        }
        // Segments are separate sentences for punctuation purposes.
        if chars.last().is_some_and(|c| c.ch != ' ') {
            let at = chars.last().map(|c| c.end).unwrap_or(0.0);
            chars.push(TimedChar {
                ch: ' ',
                start: at,
                end: at,
            });
        }
    }
    // Drop spaces between CJK characters, keep them between Latin words.
    let mut cleaned: Vec<TimedChar> = Vec::new();
    for (i, c) in chars.iter().enumerate() {
        if c.ch == ' ' {
            let prev = cleaned.last().map(|p| p.ch);
            let next = chars[i + 1..].iter().find(|n| n.ch != ' ').map(|n| n.ch);
            let latin = |x: Option<char>| x.is_some_and(|x| x.is_ascii_alphanumeric() || x == '\'');
            if latin(prev) && latin(next) && prev != Some(' ') {
                cleaned.push(TimedChar {
                    ch: ' ',
                    start: c.start,
                    end: c.end,
                });
            }
            continue;
        }
        cleaned.push(TimedChar {
            ch: c.ch,
            start: c.start,
            end: c.end,
        });
    }
    let raw_chars: Vec<char> = cleaned.iter().map(|c| c.ch).collect();

    // Words: hot words, ITN pieces (a normalised number is one word) or
    // single characters; Latin letters group into space-separated words.
    let pieces = pieces_of(&raw_chars, options, context, fuzzy);
    let mut words: Vec<WordTiming> = Vec::new();
    let mut latin_open = false;
    for (p, hot) in &pieces {
        if p.text == " " {
            latin_open = false;
            continue;
        }
        let span = &cleaned[p.src.clone()];
        let start = span.first().map(|c| c.start).unwrap_or(0.0);
        let end = span.last().map(|c| c.end).unwrap_or(start);
        let is_latin = p.text.chars().all(|c| c.is_ascii_alphabetic() || c == '\'');
        match words.last_mut() {
            Some(w) if is_latin && latin_open && !hot => {
                w.word.push_str(&p.text);
                w.end_ms = ms(end);
            }
            _ => words.push(WordTiming {
                word: p.text.clone(),
                start_ms: ms(start),
                end_ms: ms(end),
            }),
        }
        // a hot word is a word of its own: nothing joins it
        latin_open = is_latin && !hot;
    }
    let mut text: String = pieces.iter().map(|(p, _)| p.text.as_str()).collect();
    if options.add_punc && !text.trim().is_empty() {
        text = match punctuation {
            // the model's answer, or (none, or text lost) the fallback's
            Some(p) => p
                .punctuate(&text)
                .unwrap_or_else(|| sis_text::punct::end_of_sentence(&text)),
            None => sis_text::punct::end_of_sentence(&text),
        };
    }
    let score = score.map(|c| if text.is_empty() { 0.0 } else { c });
    Transcript { text, score, words }
}

/// The confidence of a transcript decoded as `pieces`: the geometric mean
/// of the probabilities the model gave the tokens it chose (exp of their
/// mean log-probability), in [0, 1]; 0 with no token. `None` with no piece,
/// or when a piece's decoder reports no probabilities (docs/PACKS.md, "What
/// `score` means").
pub fn confidence(pieces: &[(f32, RawResult)]) -> Option<f32> {
    if pieces.is_empty() {
        return None;
    }
    let mut sum = 0f64;
    let mut n = 0u32;
    for (_, r) in pieces {
        for &p in r.log_probs.as_ref()? {
            // NaN: sherpa-onnx wrote no number for this token
            if !p.is_nan() {
                sum += f64::from(p.min(0.0));
                n += 1;
            }
        }
    }
    if n == 0 {
        return Some(0.0);
    }
    Some(((sum / f64::from(n)).exp() as f32).clamp(0.0, 1.0))
}

fn ms(s: f32) -> u32 {
    (s.max(0.0) * 1000.0).round() as u32
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn words_are_kept_inside_their_sentence() {
        let word = |w: &str, s, e| sis_core::WordTiming {
            word: w.into(),
            start_ms: s,
            end_ms: e,
        };
        let mut t = Transcript {
            text: "abcd".into(),
            score: None,
            words: vec![
                word("a", 900, 1100),
                word("b", 1100, 1500),
                word("c", 3300, 3402),
                word("d", 3500, 3900),
            ],
        };
        clamp_words(&mut t, 1000, 3340);
        let times: Vec<(u32, u32)> = t.words.iter().map(|w| (w.start_ms, w.end_ms)).collect();
        assert_eq!(
            times,
            [(1000, 1100), (1100, 1500), (3300, 3340), (3339, 3340)]
        );
    }

    fn raw(tokens: &[&str], ts: &[f32]) -> RawResult {
        RawResult {
            tokens: tokens.iter().map(|s| s.to_string()).collect(),
            timestamps: ts.to_vec(),
            log_probs: None,
            biased: false,
        }
    }

    fn none() -> DecodingContext {
        DecodingContext::default()
    }

    fn with_words(id: &str, words: &[&str]) -> DecodingContext {
        DecodingContext::for_request(&RecognitionOptions {
            hot_words: Some(sis_core::HotWords {
                vocabulary_id: id.into(),
                version: 1,
                words: Arc::new(words.iter().map(|w| w.to_string()).collect()),
            }),
            ..Default::default()
        })
    }

    fn words(t: &Transcript) -> Vec<(&str, u32, u32)> {
        t.words
            .iter()
            .map(|w| (w.word.as_str(), w.start_ms, w.end_ms))
            .collect()
    }

    #[test]
    fn a_hot_word_replaces_its_homophone_and_merges_its_timings() {
        let opts = RecognitionOptions {
            need_word_info: true,
            ..Default::default()
        };
        let r = raw(&["我", "是", "章", "伟"], &[0.1, 0.3, 0.5, 0.7]);
        let plain = transcript(&[(1.0, r.clone())], 3.0, &opts, &none(), None);
        assert_eq!(plain.text, "我是章伟");
        let ctx = with_words("post-1", &["张伟"]);
        let t = transcript(&[(1.0, r.clone())], 3.0, &opts, &ctx, None);
        assert_eq!(t.text, "我是张伟");
        // 章 starts at 1.5 s, 伟 ends MAX_CHAR_S after its start (1.7 s)
        assert_eq!(
            words(&t),
            [("我", 1100, 1300), ("是", 1300, 1500), ("张伟", 1500, 2100)]
        );
        // the interim path applies it too
        let post = Postprocessor::new(None);
        assert_eq!(post.partial(r.clone(), 3.0, &opts, &ctx).text, "我是张伟");
        // a biased decode keeps the model's spelling
        let biased = RawResult { biased: true, ..r };
        let t = transcript(&[(1.0, biased)], 3.0, &opts, &ctx, None);
        assert_eq!(t.text, "我是章伟");
    }

    #[test]
    fn hot_words_come_before_digit_normalisation_and_punctuation() {
        let opts = RecognitionOptions {
            digit_norm: true,
            add_punc: true,
            need_word_info: true,
            ..Default::default()
        };
        let r = raw(
            &["坐", "一", "号", "线", "打", "一", "三", "八"],
            &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4],
        );
        let plain = transcript(&[(0.0, r.clone())], 2.0, &opts, &none(), None);
        assert_eq!(plain.text, "坐1号线打138。");
        // the hot word keeps its number characters; the rest is normalised
        let ctx = with_words("post-2", &["一号线"]);
        let t = transcript(&[(0.0, r)], 2.0, &opts, &ctx, None);
        assert_eq!(t.text, "坐一号线打138。");
        assert_eq!(
            words(&t),
            [
                ("坐", 0, 200),
                ("一号线", 200, 800),
                ("打", 800, 1000),
                ("138", 1000, 1800)
            ]
        );
    }

    #[test]
    fn rules_and_latin_hot_words_in_a_transcript() {
        let opts = RecognitionOptions {
            need_word_info: true,
            ..Default::default()
        };
        let ctx = with_words("post-3", &["谐音=目标", "华为SIS"]);
        let r = raw(
            &["谐", "音", "是", "华", "维", "▁s", "is", "▁ok"],
            &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.1, 1.4],
        );
        let t = transcript(&[(0.0, r)], 2.0, &opts, &ctx, None);
        assert_eq!(t.text, "目标是华为SIS ok");
        assert_eq!(
            words(&t),
            [
                ("目标", 0, 400),
                ("是", 400, 600),
                ("华为SIS", 600, 1400),
                ("ok", 1533, 1800)
            ]
        );
    }

    #[test]
    fn numbers_become_one_word() {
        let opts = RecognitionOptions {
            digit_norm: true,
            need_word_info: true,
            ..Default::default()
        };
        let r = raw(&["电", "话", "一", "三", "八"], &[0.1, 0.3, 0.5, 0.7, 0.9]);
        let t = transcript(&[(1.0, r)], 3.0, &opts, &none(), None);
        assert_eq!(t.text, "电话138");
        assert_eq!(t.words.len(), 3);
        assert_eq!(t.words[2].word, "138");
        assert_eq!((t.words[2].start_ms, t.words[2].end_ms), (1500, 2300));
        assert_eq!(t.words[0].start_ms, 1100);
    }

    #[test]
    fn segments_concatenate_and_punctuate() {
        let opts = RecognitionOptions {
            digit_norm: false,
            add_punc: true,
            ..Default::default()
        };
        let a = raw(&["您", "好"], &[0.0, 0.2]);
        let b = raw(&["再", "见"], &[0.0, 0.2]);
        let t = transcript(&[(0.0, a), (2.0, b)], 3.0, &opts, &none(), None);
        assert_eq!(t.text, "您好再见。");
        assert_eq!(t.words[2].start_ms, 2000);
        let empty = transcript(&[], 1.0, &opts, &none(), None);
        assert_eq!((empty.text.as_str(), empty.score), ("", None));
    }

    #[test]
    fn score_is_the_geometric_mean_of_the_token_probabilities() {
        let scored = |tokens: &[&str], lp: &[f32]| RawResult {
            log_probs: Some(lp.to_vec()),
            ..raw(tokens, &vec![0.0; tokens.len()])
        };
        let opts = RecognitionOptions::default();
        let t = transcript(
            &[
                (0.0, scored(&["您", "好"], &[-0.1, -0.3])),
                (2.0, scored(&["再"], &[f32::NAN])),
            ],
            3.0,
            &opts,
            &none(),
            None,
        );
        // NaN (sherpa-onnx wrote no number) is left out: exp((-0.1 - 0.3) / 2)
        let want = (-0.2f32).exp();
        assert!((t.score.unwrap() - want).abs() < 1e-6, "{:?}", t.score);
        // one piece without probabilities: no score for the whole
        let t = transcript(
            &[(0.0, scored(&["您"], &[-0.1])), (1.0, raw(&["好"], &[0.0]))],
            2.0,
            &opts,
            &none(),
            None,
        );
        assert_eq!(t.score, None);
        // nothing decoded by a pack that reports probabilities: 0
        let t = transcript(&[(0.0, scored(&[], &[]))], 1.0, &opts, &none(), None);
        assert_eq!((t.text.as_str(), t.score), ("", Some(0.0)));
        // a token sherpa-onnx gave probability 0: the whole scores 0
        let t = transcript(
            &[(0.0, scored(&["您", "好"], &[f32::NEG_INFINITY, -0.1]))],
            1.0,
            &opts,
            &none(),
            None,
        );
        assert_eq!(t.score, Some(0.0));
    }

    #[test]
    fn bpe_words() {
        let opts = RecognitionOptions::default();
        let r = raw(&["▁HE", "LLO", "▁WORLD"], &[0.0, 0.1, 0.5]);
        let t = transcript(&[(0.0, r)], 1.0, &opts, &none(), None);
        assert_eq!(t.text, "HELLO WORLD");
        assert_eq!(
            t.words.iter().map(|w| w.word.as_str()).collect::<Vec<_>>(),
            ["HELLO", "WORLD"]
        );
    }
}
