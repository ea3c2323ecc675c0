//! From raw decoder tokens to a SIS transcript: text, word timings,
//! digit normalisation and punctuation.

use sis_core::{RecognitionOptions, Transcript, WordTiming};

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
    /// order) over `duration_s`, as `options` ask.
    pub fn transcript(
        &self,
        pieces: &[(f32, RawResult)],
        duration_s: f32,
        options: &RecognitionOptions,
    ) -> Transcript {
        transcript(pieces, duration_s, options, self.punctuation.as_ref())
    }

    /// An interim transcript: text only (no punctuation, no word list).
    pub fn partial(
        &self,
        raw: RawResult,
        duration_s: f32,
        options: &RecognitionOptions,
    ) -> Transcript {
        let options = RecognitionOptions {
            add_punc: false,
            need_word_info: false,
            ..options.clone()
        };
        transcript(&[(0.0, raw)], duration_s, &options, None)
    }
}

/// Moves every word of `t` by `offset_ms` (segment times to session times).
pub fn shift_words(t: &mut Transcript, offset_ms: u32) {
    for w in &mut t.words {
        w.start_ms += offset_ms;
        w.end_ms += offset_ms;
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

/// `pieces`: (segment offset in s, raw result) in order.
fn transcript(
    pieces: &[(f32, RawResult)],
    duration_s: f32,
    options: &RecognitionOptions,
    punctuation: Option<&Punctuation>,
) -> Transcript {
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
    let raw_text: String = cleaned.iter().map(|c| c.ch).collect();

    // Words: ITN pieces (a normalised number is one word) or single characters;
    // Latin letters group into space-separated words.
    let pieces = if options.digit_norm {
        sis_text::normalize(&raw_text)
    } else {
        raw_text
            .chars()
            .enumerate()
            .map(|(i, c)| sis_text::Piece {
                text: c.to_string(),
                src: i..i + 1,
            })
            .collect()
    };
    let mut words: Vec<WordTiming> = Vec::new();
    let mut latin_open = false;
    for p in &pieces {
        if p.text == " " {
            latin_open = false;
            continue;
        }
        let span = &cleaned[p.src.clone()];
        let start = span.first().map(|c| c.start).unwrap_or(0.0);
        let end = span.last().map(|c| c.end).unwrap_or(start);
        let is_latin = p.text.chars().all(|c| c.is_ascii_alphabetic() || c == '\'');
        match words.last_mut() {
            Some(w) if is_latin && latin_open => {
                w.word.push_str(&p.text);
                w.end_ms = ms(end);
            }
            _ => words.push(WordTiming {
                word: p.text.clone(),
                start_ms: ms(start),
                end_ms: ms(end),
            }),
        }
        latin_open = is_latin;
    }
    let mut text: String = pieces.iter().map(|p| p.text.as_str()).collect();
    if options.add_punc && !text.trim().is_empty() {
        text = match punctuation {
            Some(p) => p.punctuate(&text).unwrap_or(text),
            None => sis_text::punct::end_of_sentence(&text),
        };
    }
    // sherpa-onnx's C API exposes no confidence for these decoders.
    let score = if text.is_empty() { 0.0 } else { 1.0 };
    Transcript { text, score, words }
}

fn ms(s: f32) -> u32 {
    (s.max(0.0) * 1000.0).round() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(tokens: &[&str], ts: &[f32]) -> RawResult {
        RawResult {
            tokens: tokens.iter().map(|s| s.to_string()).collect(),
            timestamps: ts.to_vec(),
        }
    }

    #[test]
    fn numbers_become_one_word() {
        let opts = RecognitionOptions {
            digit_norm: true,
            need_word_info: true,
            ..Default::default()
        };
        let r = raw(&["电", "话", "一", "三", "八"], &[0.1, 0.3, 0.5, 0.7, 0.9]);
        let t = transcript(&[(1.0, r)], 3.0, &opts, None);
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
        let t = transcript(&[(0.0, a), (2.0, b)], 3.0, &opts, None);
        assert_eq!(t.text, "您好再见。");
        assert_eq!(t.words[2].start_ms, 2000);
        let empty = transcript(&[], 1.0, &opts, None);
        assert_eq!((empty.text.as_str(), empty.score), ("", 0.0));
    }

    #[test]
    fn bpe_words() {
        let opts = RecognitionOptions::default();
        let r = raw(&["▁HE", "LLO", "▁WORLD"], &[0.0, 0.1, 0.5]);
        let t = transcript(&[(0.0, r)], 1.0, &opts, None);
        assert_eq!(t.text, "HELLO WORLD");
        assert_eq!(
            t.words.iter().map(|w| w.word.as_str()).collect::<Vec<_>>(),
            ["HELLO", "WORLD"]
        );
    }
}
