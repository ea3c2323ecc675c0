//! The entries of a hot-word vocabulary (SIS-API.md §10) and the hot word
//! 3.0 syntax this server chose for weights and forced replacements
//! (docs/VOCABULARIES.md), read the same way by the API that stores them and
//! the engine that applies them.
//!
//! An entry is one of:
//! - `词` — a hot word: Chinese characters and upper-case Latin letters only
//!   (SIS: no digits, spaces or punctuation; English upper-case), at most
//!   [`MAX_WORD_BYTES`] bytes of UTF-8;
//! - `词|N` — a hot word with a weight N from 1 to 10 (plain decimal, no sign
//!   or leading zero);
//! - `谐音=目标` — a forced replacement: whenever the recognised text has the
//!   sound-alike, it becomes the target; both sides are hot words as above.
//!
//! `|` and `=` can never be part of a word SIS accepts, so every table that is
//! valid under SIS's documented rules means the same here, and an entry with
//! the extension is never mistaken for a plain word.

use std::fmt;

/// Longest word (each side of a replacement), in bytes of UTF-8.
pub const MAX_WORD_BYTES: usize = 32;
/// Most words one table may hold, whatever `--vocabulary-max-words` says (a
/// full table must fit in a request body; the engine uses this many).
pub const MAX_TABLE_WORDS: usize = 40_000;
/// The weights a hot word may carry.
pub const WEIGHTS: std::ops::RangeInclusive<u8> = 1..=10;
/// Separates a word from its weight.
pub const WEIGHT_SEPARATOR: char = '|';
/// Separates a sound-alike from its target.
pub const REPLACE_SEPARATOR: char = '=';

/// One entry of a vocabulary's `contents`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HotWordEntry<'a> {
    /// A word to favour; `weight` when the entry names one (else the
    /// engine's default).
    Word { text: &'a str, weight: Option<u8> },
    /// Recognised `from` is written as `to`.
    Replace { from: &'a str, to: &'a str },
}

/// Why an entry is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryError {
    Empty,
    TooLong {
        bytes: usize,
    },
    Digit(char),
    Space,
    LowerCase(char),
    /// A character that is neither a Chinese character nor a Latin letter.
    Character(char),
    /// `|` not followed by a weight from 1 to 10.
    Weight(String),
    /// More than one `=`, or `|` and `=` in one entry.
    Rule,
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::Empty => write!(f, "a hot word cannot be empty"),
            EntryError::TooLong { bytes } => write!(
                f,
                "a hot word is {bytes} bytes long, more than {MAX_WORD_BYTES}"
            ),
            EntryError::Digit(c) => write!(
                f,
                "digit {c:?}: write numbers in Chinese characters or English words"
            ),
            EntryError::Space => write!(f, "hot words cannot contain spaces"),
            EntryError::LowerCase(c) => write!(
                f,
                "lower-case letter {c:?}: English hot words must be upper-case"
            ),
            EntryError::Character(c) => write!(
                f,
                "character {c:?}: only Chinese characters and upper-case Latin letters are allowed"
            ),
            EntryError::Weight(w) => write!(
                f,
                "weight {w:?}: a weight is a whole number from {} to {}",
                WEIGHTS.start(),
                WEIGHTS.end()
            ),
            EntryError::Rule => write!(
                f,
                "a replacement rule is SOUND_ALIKE=TARGET: one '=', no weight"
            ),
        }
    }
}

impl std::error::Error for EntryError {}

/// A Chinese character (Han ideograph, any CJK block, and `〇`, the
/// ideographic zero of numbers written in characters).
pub fn is_chinese(c: char) -> bool {
    matches!(c,
        '\u{3007}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{2EBEF}'
        | '\u{2F800}'..='\u{2FA1F}'
        | '\u{30000}'..='\u{323AF}')
}

/// Checks one word: not empty, at most [`MAX_WORD_BYTES`], Chinese
/// characters and upper-case Latin letters only.
pub fn check_word(word: &str) -> Result<(), EntryError> {
    if word.is_empty() {
        return Err(EntryError::Empty);
    }
    for c in word.chars() {
        match c {
            'A'..='Z' => {}
            c if is_chinese(c) => {}
            c if c.is_numeric() => return Err(EntryError::Digit(c)),
            c if c.is_whitespace() => return Err(EntryError::Space),
            c if c.is_lowercase() => return Err(EntryError::LowerCase(c)),
            c => return Err(EntryError::Character(c)),
        }
    }
    if word.len() > MAX_WORD_BYTES {
        return Err(EntryError::TooLong { bytes: word.len() });
    }
    Ok(())
}

fn weight(s: &str) -> Result<u8, EntryError> {
    let bad = || EntryError::Weight(s.to_string());
    if s.is_empty() || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let w: u8 = s.parse().map_err(|_| bad())?;
    if WEIGHTS.contains(&w) {
        Ok(w)
    } else {
        Err(bad())
    }
}

/// Reads one entry of a vocabulary's `contents`.
pub fn parse_entry(entry: &str) -> Result<HotWordEntry<'_>, EntryError> {
    if let Some((from, to)) = entry.split_once(REPLACE_SEPARATOR) {
        if to.contains(REPLACE_SEPARATOR)
            || entry.contains(WEIGHT_SEPARATOR)
            || from.is_empty()
            || to.is_empty()
        {
            return Err(EntryError::Rule);
        }
        check_word(from)?;
        check_word(to)?;
        return Ok(HotWordEntry::Replace { from, to });
    }
    match entry.split_once(WEIGHT_SEPARATOR) {
        Some((text, w)) => {
            check_word(text)?;
            Ok(HotWordEntry::Word {
                text,
                weight: Some(weight(w)?),
            })
        }
        None => {
            check_word(entry)?;
            Ok(HotWordEntry::Word {
                text: entry,
                weight: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_are_sis_words() {
        for ok in ["华为云", "SIS", "华为CLOUD", "二〇二四", "𠀀字", "HUAWEI"] {
            assert_eq!(
                parse_entry(ok),
                Ok(HotWordEntry::Word {
                    text: ok,
                    weight: None
                }),
                "{ok}"
            );
        }
        // 10 characters of 3 bytes fit, 11 do not
        assert!(parse_entry(&"华".repeat(10)).is_ok());
        assert_eq!(
            parse_entry(&"华".repeat(11)),
            Err(EntryError::TooLong { bytes: 33 })
        );
        assert!(parse_entry(&"A".repeat(32)).is_ok());
        assert!(parse_entry(&"A".repeat(33)).is_err());
    }

    #[test]
    fn what_sis_forbids_is_refused() {
        assert_eq!(parse_entry(""), Err(EntryError::Empty));
        assert_eq!(parse_entry("华为1"), Err(EntryError::Digit('1')));
        assert_eq!(parse_entry("华为１"), Err(EntryError::Digit('１')));
        assert_eq!(parse_entry("华 为"), Err(EntryError::Space));
        assert_eq!(parse_entry("华\u{3000}为"), Err(EntryError::Space));
        assert_eq!(parse_entry("Huawei"), Err(EntryError::LowerCase('u')));
        assert_eq!(parse_entry("华为，"), Err(EntryError::Character('，')));
        assert_eq!(parse_entry("华-为"), Err(EntryError::Character('-')));
        assert_eq!(parse_entry("ÉCOLE"), Err(EntryError::Character('É')));
        assert_eq!(parse_entry("Ａ"), Err(EntryError::Character('Ａ')));
        assert_eq!(parse_entry("こんにちは"), Err(EntryError::Character('こ')));
        assert_eq!(parse_entry("华\n为"), Err(EntryError::Space));
    }

    #[test]
    fn weights() {
        assert_eq!(
            parse_entry("华为云|5"),
            Ok(HotWordEntry::Word {
                text: "华为云",
                weight: Some(5)
            })
        );
        assert_eq!(
            parse_entry("SIS|10"),
            Ok(HotWordEntry::Word {
                text: "SIS",
                weight: Some(10)
            })
        );
        for bad in ["0", "11", "05", "+5", "-1", "", "五", "5|5", "1.5", " 5"] {
            assert!(
                matches!(
                    parse_entry(&format!("华为|{bad}")),
                    Err(EntryError::Weight(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(parse_entry("|5"), Err(EntryError::Empty));
        // the word itself is checked, weight or not
        assert_eq!(parse_entry("华为1|5"), Err(EntryError::Digit('1')));
    }

    #[test]
    fn replacements() {
        assert_eq!(
            parse_entry("花为=华为"),
            Ok(HotWordEntry::Replace {
                from: "花为",
                to: "华为"
            })
        );
        assert_eq!(
            parse_entry("西艾斯=SIS"),
            Ok(HotWordEntry::Replace {
                from: "西艾斯",
                to: "SIS"
            })
        );
        for bad in ["=华为", "花为=", "a=b=c", "花为=华为|5", "花为|5=华为", "="] {
            assert_eq!(parse_entry(bad), Err(EntryError::Rule), "{bad:?}");
        }
        assert_eq!(parse_entry("花为=华为1"), Err(EntryError::Digit('1')));
        assert!(parse_entry(&format!("{}=华为", "花".repeat(11))).is_err());
        // each side may be a whole word long
        assert!(parse_entry(&format!("{}={}", "花".repeat(10), "华".repeat(10))).is_ok());
    }

    #[test]
    fn messages_say_what_to_do() {
        assert!(EntryError::Digit('1').to_string().contains("Chinese"));
        assert!(EntryError::LowerCase('a')
            .to_string()
            .contains("upper-case"));
        assert!(EntryError::Weight("0".into())
            .to_string()
            .contains("1 to 10"));
    }
}
