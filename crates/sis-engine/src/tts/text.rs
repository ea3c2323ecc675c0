//! Text to what espeak-ng reads, one sentence at a time.
//!
//! Mandarin: numbers and symbols are written out in hanzi
//! (`sis_text::normalize_for_speech`), the text is cut into sentences of at
//! most [`MAX_SENTENCE_CHARS`] characters (`sis_text::split_sentences`),
//! and each hanzi becomes its pinyin with the tone number at the end
//! (`ni3 hao3`; the `pinyin` crate's usual reading of the character), which
//! espeak-ng's `cmn-Latn-pinyin` reads. Latin words pass through (espeak-ng
//! reads what is not pinyin as English), punctuation becomes a pause (`,`
//! within a sentence, `.` at its end), everything else is dropped.
//!
//! English: the text as written, cut into sentences, without the few
//! characters espeak-ng would read as markup (`[[` starts phoneme input) or
//! could not read.

use pinyin::ToPinyin;

use super::voices::Language;

/// The longest sentence handed to one espeak-ng process, in characters.
pub const MAX_SENTENCE_CHARS: usize = 100;
/// English sentences are longer in characters for the same speech.
const MAX_ENGLISH_SENTENCE_CHARS: usize = 300;

/// The sentences espeak-ng is to read for `text` in `language`, in order;
/// sentences with nothing to read are left out.
pub fn sentences(text: &str, language: Language) -> Vec<String> {
    let (pieces, read): (Vec<String>, fn(&str) -> String) = match language {
        Language::Mandarin => (
            sis_text::split_sentences(&sis_text::normalize_for_speech(text), MAX_SENTENCE_CHARS),
            mandarin,
        ),
        Language::English => (
            sis_text::split_sentences(text, MAX_ENGLISH_SENTENCE_CHARS),
            english,
        ),
    };
    pieces
        .iter()
        .map(|s| read(s))
        .filter(|s| s.chars().any(char::is_alphanumeric))
        .collect()
}

/// The sentences a TTS pack is to read for `text` in `language`, in order:
/// normalised as for espeak-ng and cut the same way, but left in their own
/// script (the pack's lexicon turns hanzi into its phones); sentences with
/// nothing to read are left out.
pub fn pack_sentences(text: &str, language: Language) -> Vec<String> {
    let pieces = match language {
        Language::Mandarin => {
            sis_text::split_sentences(&sis_text::normalize_for_speech(text), MAX_SENTENCE_CHARS)
        }
        Language::English => sis_text::split_sentences(text, MAX_ENGLISH_SENTENCE_CHARS),
    };
    pieces
        .into_iter()
        .map(|s| s.chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|s| s.chars().any(char::is_alphanumeric))
        .collect()
}

/// A pause punctuation asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Pause {
    Clause,
    Sentence,
}

fn pause_of(c: char) -> Option<Pause> {
    match c {
        '。' | '．' | '！' | '？' | '!' | '?' | '.' | '…' | '；' | ';' => {
            Some(Pause::Sentence)
        }
        '，' | ',' | '、' | '：' | ':' | '—' | '–' | '-' | '~' | '～' | '·' | '/' => {
            Some(Pause::Clause)
        }
        _ => None,
    }
}

/// Letters and digits of alphabetic scripts (Latin, Greek, Cyrillic…),
/// which espeak-ng reads as words; ideographs are handled apart.
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || (c.is_alphanumeric() && (c as u32) < 0x2E80)
}

/// Words whose characters the `pinyin` crate's usual reading gets wrong
/// there (it reads one character at a time: 银行 would be *yin2 xing2*), and
/// their readings, one per character (neutral tone without a number).
/// Longest match first, left to right.
const POLYPHONE_WORDS: &[(&str, &[&str])] = &[
    ("银行", &["yin2", "hang2"]),
    ("行长", &["hang2", "zhang3"]),
    ("行业", &["hang2", "ye4"]),
    ("还款", &["huan2", "kuan3"]),
    ("退还", &["tui4", "huan2"]),
    ("归还", &["gui1", "huan2"]),
    ("重新", &["chong2", "xin1"]),
    ("重庆", &["chong2", "qing4"]),
    ("重复", &["chong2", "fu4"]),
    ("音乐", &["yin1", "yue4"]),
    ("快乐", &["kuai4", "le4"]),
    ("了解", &["liao3", "jie3"]),
    ("睡觉", &["shui4", "jiao4"]),
    ("觉得", &["jue2", "de"]),
    ("得到", &["de2", "dao4"]),
    ("调整", &["tiao2", "zheng3"]),
    ("便宜", &["pian2", "yi2"]),
    ("成长", &["cheng2", "zhang3"]),
    ("为了", &["wei4", "le"]),
    ("因为", &["yin1", "wei4"]),
    ("差不多", &["cha4", "bu4", "duo1"]),
    ("出差", &["chu1", "chai1"]),
    ("朝阳", &["chao2", "yang2"]),
    ("数量", &["shu4", "liang4"]),
];

fn starts_with_word(chars: &[char], word: &str) -> bool {
    let mut it = chars.iter();
    word.chars().all(|w| it.next() == Some(&w))
}

/// One Mandarin sentence (already normalised) as espeak-ng's pinyin input.
fn mandarin(sentence: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let mut pause: Option<Pause> = None;
    let push = |out: &mut String, token: &str, pause: &mut Option<Pause>| {
        if !out.is_empty() {
            match pause.take() {
                Some(Pause::Clause) => out.push(','),
                Some(Pause::Sentence) => out.push('.'),
                None => {}
            }
            out.push(' ');
        } else {
            *pause = None; // nothing to pause after
        }
        out.push_str(token);
    };
    let chars: Vec<char> = sentence.chars().collect();
    // readings a word table gives, by character index
    let mut fixed: Vec<Option<&'static str>> = vec![None; chars.len()];
    let mut i = 0;
    while i < chars.len() {
        match POLYPHONE_WORDS
            .iter()
            .filter(|(w, _)| starts_with_word(&chars[i..], w))
            .max_by_key(|(w, _)| w.chars().count())
        {
            Some((w, readings)) => {
                for (k, r) in readings.iter().enumerate() {
                    fixed[i + k] = Some(r);
                }
                i += w.chars().count();
            }
            None => i += 1,
        }
    }
    for (i, &c) in chars.iter().enumerate() {
        if let Some(p) = c.to_pinyin() {
            if !word.is_empty() {
                push(&mut out, &word, &mut pause);
                word.clear();
            }
            push(
                &mut out,
                fixed[i].unwrap_or(p.with_tone_num_end()),
                &mut pause,
            );
        } else if is_word_char(c) || (c == '\'' && !word.is_empty()) {
            word.push(c);
        } else {
            if !word.is_empty() {
                push(&mut out, word.trim_end_matches('\''), &mut pause);
                word.clear();
            }
            if let Some(p) = pause_of(c) {
                pause = pause.max(Some(p));
            }
        }
    }
    if !word.is_empty() {
        push(&mut out, word.trim_end_matches('\''), &mut pause);
    }
    if !out.is_empty() {
        out.push('.');
    }
    out
}

/// One English sentence as espeak-ng's input: letters, digits, spaces and
/// ordinary punctuation; anything else (markup brackets, control
/// characters, ideographs) becomes a space.
fn english(sentence: &str) -> String {
    let kept: String = sentence
        .chars()
        .map(|c| {
            if is_word_char(c) || " .,;:!?'\"-%&$+@".contains(c) {
                c
            } else {
                ' '
            }
        })
        .collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zh(text: &str) -> Vec<String> {
        sentences(text, Language::Mandarin)
    }

    #[test]
    fn hanzi_become_pinyin_with_tone_numbers() {
        assert_eq!(zh("你好，世界！"), ["ni3 hao3, shi4 jie4."]);
        // espeak-ng reads ü as written (lü4) as well as v (lv4)
        assert_eq!(zh("绿色的女孩"), ["lü4 se4 de nü3 hai2."]);
        // polyphones read by word
        assert_eq!(zh("银行行长"), ["yin2 hang2 hang2 zhang3."]);
        assert_eq!(zh("我要还款"), ["wo3 yao4 huan2 kuan3."]);
        assert_eq!(zh("行人"), ["xing2 ren2."]);
        // numbers are read in hanzi first
        assert_eq!(zh("我有3个苹果"), ["wo3 you3 san1 ge4 ping2 guo3."]);
        assert_eq!(
            zh("2026-11-28"),
            ["er4 ling2 er4 liu4 nian2 shi2 yi1 yue4 er4 shi2 ba1 ri4."]
        );
    }

    #[test]
    fn sentences_are_cut_and_latin_words_pass_through() {
        assert_eq!(
            zh("今天下雨。明天呢？"),
            ["jin1 tian1 xia4 yu3.", "ming2 tian1 ne."]
        );
        assert_eq!(
            zh("打开Wi-Fi和Bluetooth"),
            ["da3 kai1 Wi, Fi he2 Bluetooth."]
        );
        assert_eq!(zh("I'm OK 好的"), ["I'm OK hao3 de."]);
        let long = "好".repeat(250);
        let s = zh(&long);
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|x| x.split(' ').count() <= MAX_SENTENCE_CHARS));
    }

    #[test]
    fn punctuation_pauses_symbols_vanish() {
        assert_eq!(zh("“你好”，（世界）……"), ["ni3 hao3, shi4 jie4."]);
        assert_eq!(zh("你😀好[[a]]"), ["ni3 hao3 a."]);
        // nothing to read: no sentence at all
        assert!(zh("。，！？😀").is_empty());
        assert!(zh("   ").is_empty());
        // markup and control characters never reach espeak-ng
        for s in zh("<b>好</b>\u{0}[[x]]{y}") {
            assert!(!s.contains(['<', '>', '[', ']', '{', '}', '\u{0}']), "{s}");
        }
    }

    #[test]
    fn english_keeps_its_text() {
        assert_eq!(
            sentences("Hello, world! It's 3 pm. [[h@l]] <b>", Language::English),
            ["Hello, world!", "It's 3 pm.", "h@l b"]
        );
        assert!(sentences("你好", Language::English).is_empty());
    }
}
