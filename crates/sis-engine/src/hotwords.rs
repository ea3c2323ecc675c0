//! Hot words: a request's vocabulary (SIS `vocabulary_id`, resolved by the
//! server into [`sis_core::HotWords`]), compiled once per
//! `(vocabulary_id, version)` and cached in the process ([`lookup`]).
//!
//! A vocabulary is used in two ways (`docs/HOTWORDS.md`):
//!
//! - **Biasing** (transducer packs that sherpa-onnx can bias, see
//!   `decoding::hot_word_support`): [`Vocabulary::bias_list`] writes the
//!   per-stream hot-word list that `sherpa::Recognizer::create_stream` hands
//!   to sherpa-onnx, one phrase a line with its score ([`bias_score`]);
//!   a plain twin stream decodes the same audio and
//!   [`Vocabulary::verify_biased`] keeps the biased decode's changes only
//!   around the hot words it wrote (`verify.rs`).
//! - **Text matching** after decoding (every pack; the pinyin part only for
//!   streams that were not biased): [`Vocabulary::replacements`] finds the
//!   recognised spans to replace, forced rules (`谐音=目标`) literally, hot
//!   words by a tone-insensitive pinyin match of whole spans (held back
//!   where it would mostly be wrong: `fuzzy_allowed`).
//!
//! Entry syntax (one entry per word of the vocabulary, [`parse_entry`]): a
//! plain word of CJK ideographs and upper-case Latin letters (`张伟`,
//! `华为SIS`), optionally with a weight `WORD|N` (N in 1..=10, default
//! [`DEFAULT_WEIGHT`]), or a forced replacement rule `SOUNDALIKE=TARGET`
//! (both sides plain words). Anything else is skipped when the vocabulary is
//! compiled (and logged once per compilation). Nothing a vocabulary holds can
//! reach sherpa-onnx except through [`Vocabulary::bias_list`], whose output
//! [`check_bias_list`] verifies again (`docs/NATIVE.md`, hot words).

use std::collections::HashMap;
use std::hash::Hash;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use pinyin::{ToPinyin, ToPinyinMulti};
use sis_core::HotWords;

/// Weight of a word written without `|N`.
pub const DEFAULT_WEIGHT: u8 = 5;
pub const MIN_WEIGHT: u8 = *sis_core::hotwords::WEIGHTS.start();
pub const MAX_WEIGHT: u8 = *sis_core::hotwords::WEIGHTS.end();
/// Longest word (or side of a rule), in characters: the API's limit is
/// [`sis_core::hotwords::MAX_WORD_BYTES`] bytes, so no more characters than
/// that. Each phrase becomes a path of that many nodes in sherpa-onnx's
/// context graph, built again for every biased stream.
pub const MAX_WORD_CHARS: usize = sis_core::hotwords::MAX_WORD_BYTES;
/// Entries of one vocabulary that are used: as many as the API lets a table
/// hold (`--vocabulary-max-words` is capped there); later ones are skipped.
pub const MAX_ENTRIES: usize = sis_core::hotwords::MAX_TABLE_WORDS;
/// Compiled vocabularies kept in the process (least recently used dropped).
pub const CACHE_CAPACITY: usize = 128;

/// The per-token score sherpa-onnx adds while a hypothesis follows a phrase
/// of weight `w` (clamped to 1..=10): `0.5 + 0.25 · (w − 1)`, so weight 1 is
/// 0.5, the default weight 5 is 1.5 (sherpa-onnx's own default
/// `hotwords_score`) and weight 10 is 2.75. The bonus is per token, so a
/// phrase's total grows with its length; past about 3 per token biased
/// phrases start to replace audio that does not contain them.
pub fn bias_score(weight: u8) -> f32 {
    let w = weight.clamp(MIN_WEIGHT, MAX_WEIGHT);
    0.5 + 0.25 * f32::from(w - MIN_WEIGHT)
}

/// One entry of a vocabulary, as the engine uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A hot word and its weight.
    Word { text: String, weight: u8 },
    /// `from=to`: the literal text `from` is replaced by `to`.
    Rule { from: String, to: String },
}

pub use sis_core::hotwords::{is_chinese as is_cjk, EntryError};

/// Reads one entry of a vocabulary (surrounding whitespace ignored) with the
/// rules the API stored it under (`sis_core::hotwords::parse_entry`, the one
/// reader of the syntax); a word without a weight gets [`DEFAULT_WEIGHT`].
pub fn parse_entry(raw: &str) -> Result<Entry, EntryError> {
    use sis_core::hotwords::HotWordEntry;
    Ok(match sis_core::hotwords::parse_entry(raw.trim())? {
        HotWordEntry::Word { text, weight } => Entry::Word {
            text: text.to_string(),
            weight: weight.unwrap_or(DEFAULT_WEIGHT),
        },
        HotWordEntry::Replace { from, to } => Entry::Rule {
            from: from.to_string(),
            to: to.to_string(),
        },
    })
}

/// How sherpa-onnx's `cjkchar` modeling unit splits a phrase into tokens
/// (`SplitUtf8`, `text-utils.cc`): every multi-byte character alone, runs of
/// ASCII letters together. The phrases here hold only ideographs and `A`-`Z`.
pub fn cjkchar_pieces(word: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut latin = String::new();
    for c in word.chars() {
        if c.is_ascii_alphabetic() {
            latin.push(c);
            continue;
        }
        if !latin.is_empty() {
            out.push(std::mem::take(&mut latin));
        }
        out.push(c.to_string());
    }
    if !latin.is_empty() {
        out.push(latin);
    }
    out
}

/// Longest line [`check_bias_list`] lets through, in bytes: a phrase of
/// [`MAX_WORD_CHARS`] 4-byte characters and its score.
pub const MAX_BIAS_LINE_BYTES: usize = MAX_WORD_CHARS * 4 + 16;

/// The last check before a per-stream hot-word list reaches sherpa-onnx
/// (`docs/NATIVE.md`). Each line must be `PHRASE :SCORE`: the phrase only
/// CJK ideographs and `A`-`Z` (no `:` `#` `@` `/`, which sherpa-onnx reads as
/// a score, a threshold, a name or a line break — `std::stof` on a bad score
/// throws across the C API and aborts), no NUL (the crate's
/// `CString::new(..).unwrap()` panics), no other control character, no
/// empty line, the score a finite decimal number > 0, lines bounded by
/// [`MAX_BIAS_LINE_BYTES`] and their count by [`MAX_ENTRIES`].
pub fn check_bias_list(list: &str) -> Result<(), &'static str> {
    if list.is_empty() {
        return Err("empty list");
    }
    let mut lines = 0;
    for line in list.split('\n') {
        lines += 1;
        if lines > MAX_ENTRIES {
            return Err("too many phrases");
        }
        if line.is_empty() {
            return Err("empty line");
        }
        if line.len() > MAX_BIAS_LINE_BYTES {
            return Err("phrase too long");
        }
        if line.contains('\0') {
            return Err("NUL byte");
        }
        if line.chars().any(char::is_control) {
            return Err("control character");
        }
        let Some((phrase, score)) = line.split_once(" :") else {
            return Err("no score");
        };
        if sis_core::hotwords::check_word(phrase).is_err() {
            return Err("phrase with characters other than CJK ideographs and A-Z");
        }
        let numeric = !score.is_empty()
            && score.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && score.bytes().filter(|b| *b == b'.').count() <= 1;
        match score.parse::<f32>() {
            Ok(v) if numeric && v.is_finite() && v > 0.0 => {}
            _ => return Err("score not a positive decimal number"),
        }
    }
    Ok(())
}

/// What a character is when spans are compared.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Unit {
    /// An ideograph with its toneless readings, sorted.
    Han(Vec<&'static str>),
    /// Anything else, Latin letters upper-cased.
    Other(char),
}

/// A recognised character: every reading it has (heteronyms included: the
/// model wrote the character, not how it was read here).
fn text_unit(c: char) -> Unit {
    if let Some(multi) = c.to_pinyin_multi() {
        let mut readings: Vec<&'static str> = multi.into_iter().map(|p| p.plain()).collect();
        readings.sort_unstable();
        readings.dedup();
        if !readings.is_empty() {
            return Unit::Han(readings);
        }
    }
    Unit::Other(c.to_ascii_uppercase())
}

/// A hot word's character: its usual reading only (pinyin-data lists rare
/// and literary readings too — 技 qí, 以 sì — which would make a word match
/// far more than it sounds like).
fn word_unit(c: char) -> Unit {
    match c.to_pinyin() {
        Some(p) => Unit::Han(vec![p.plain()]),
        None => Unit::Other(c.to_ascii_uppercase()),
    }
}

/// Same sound: two ideographs sharing a toneless reading, or the same other
/// character (Latin case-insensitively).
fn same_sound(a: &Unit, b: &Unit) -> bool {
    match (a, b) {
        (Unit::Han(x), Unit::Han(y)) => x.iter().any(|r| y.contains(r)),
        (Unit::Other(x), Unit::Other(y)) => x == y,
        _ => false,
    }
}

/// The index key of a unit (a hot word is found by its first unit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Reading(&'static str),
    Char(char),
}

fn keys(u: &Unit) -> Vec<Key> {
    match u {
        Unit::Han(rs) => rs.iter().copied().map(Key::Reading).collect(),
        Unit::Other(c) => vec![Key::Char(*c)],
    }
}

#[derive(Debug)]
struct Word {
    text: String,
    chars: Vec<char>,
    weight: u8,
    units: Vec<Unit>,
}

#[derive(Debug)]
struct Rule {
    from: Vec<char>,
    to: String,
}

/// A compiled vocabulary.
#[derive(Debug)]
pub struct Vocabulary {
    pub vocabulary_id: String,
    pub version: i64,
    /// Distinct words, in the vocabulary's order (a repeated word keeps its
    /// highest weight).
    words: Vec<Word>,
    /// Rules, longest `from` first.
    rules: Vec<Rule>,
    /// Word indices by the key of their first unit.
    index: HashMap<Key, Vec<usize>>,
    /// Word indices by their first character (as written).
    by_first_char: HashMap<char, Vec<usize>>,
    /// Entries not used (bad syntax, or beyond [`MAX_ENTRIES`]).
    pub skipped: usize,
}

/// A span of recognised characters to replace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replacement {
    /// Indices into the characters given to [`Vocabulary::replacements`].
    pub range: Range<usize>,
    pub text: String,
}

impl Vocabulary {
    /// Compiles `h` (entries that do not parse are counted in `skipped`).
    pub fn compile(h: &HotWords) -> Vocabulary {
        let mut words: Vec<Word> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut rules: Vec<Rule> = Vec::new();
        let mut skipped = h.words.len().saturating_sub(MAX_ENTRIES);
        for raw in h.words.iter().take(MAX_ENTRIES) {
            match parse_entry(raw) {
                Ok(Entry::Word { text, weight }) => match seen.get(&text) {
                    Some(&i) => words[i].weight = words[i].weight.max(weight),
                    None => {
                        let chars: Vec<char> = text.chars().collect();
                        let units = chars.iter().map(|c| word_unit(*c)).collect();
                        seen.insert(text.clone(), words.len());
                        words.push(Word {
                            text,
                            chars,
                            weight,
                            units,
                        });
                    }
                },
                Ok(Entry::Rule { from, to }) => rules.push(Rule {
                    from: from.chars().collect(),
                    to,
                }),
                Err(_) => skipped += 1,
            }
        }
        // longest first; among equals, the vocabulary's order
        rules.sort_by_key(|r| std::cmp::Reverse(r.from.len()));
        let mut index: HashMap<Key, Vec<usize>> = HashMap::new();
        let mut by_first_char: HashMap<char, Vec<usize>> = HashMap::new();
        for (i, w) in words.iter().enumerate() {
            if let Some(c) = w.chars.first() {
                by_first_char.entry(*c).or_default().push(i);
            }
            if let Some(first) = w.units.first() {
                for k in keys(first) {
                    index.entry(k).or_default().push(i);
                }
            }
        }
        Vocabulary {
            vocabulary_id: h.vocabulary_id.clone(),
            version: h.version,
            words,
            rules,
            index,
            by_first_char,
            skipped,
        }
    }

    /// Hot words in use (not rules).
    pub fn word_count(&self) -> usize {
        self.words.len()
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The per-stream hot-word list for a recognizer whose token table holds
    /// exactly the tokens `has_token` accepts: one line per word whose every
    /// `cjkchar` piece ([`cjkchar_pieces`]) is a token (the others would be
    /// logged by sherpa-onnx as unknown and dropped, per request), as
    /// `WORD :SCORE` ([`bias_score`]). `None` when no word qualifies.
    /// Rules are not biased (their sound-alike is not what they write).
    pub fn bias_list(&self, has_token: impl Fn(&str) -> bool) -> Option<String> {
        let lines: Vec<String> = self
            .words
            .iter()
            .filter(|w| cjkchar_pieces(&w.text).iter().all(|p| has_token(p)))
            .map(|w| format!("{} :{:.2}", w.text, bias_score(w.weight)))
            .collect();
        (!lines.is_empty()).then(|| lines.join("\n"))
    }

    /// The spans of `text` to replace, in order, not overlapping.
    ///
    /// Forced rules first: each literal occurrence of a rule's `from`
    /// (longest rules first, left to right). Then hot words, among the
    /// characters no rule took: a span matches a word when it has the word's
    /// length and each of its characters sounds like the word's character at
    /// that place — an ideograph of the text (any of its readings, the
    /// model wrote the character, not how it was read) shares the toneless
    /// pinyin of the word's character (its usual reading); other characters
    /// are equal, Latin case-insensitively — and a word starting or ending
    /// with a Latin letter does not continue a Latin word of the text. A
    /// sound-alike that is not spelled like the word must also pass
    /// `fuzzy_allowed`: no number character rewritten, and a word of two
    /// characters needs one of them in place. With `fuzzy` false (a stream
    /// sherpa-onnx already biased) only spans spelled like the word match.
    /// Words of one character are not matched at all (one syllable sounds
    /// like too much, and a protected 三 would split every number it is part
    /// of; they are still biased). Candidates are taken longest first, then
    /// those spelled exactly like their word, then by weight, then leftmost,
    /// then in the vocabulary's order, skipping any that overlaps one
    /// already taken.
    pub fn replacements(&self, text: &[char], fuzzy: bool) -> Vec<Replacement> {
        let n = text.len();
        let mut taken = vec![false; n];
        let mut out: Vec<Replacement> = Vec::new();
        for rule in &self.rules {
            let len = rule.from.len();
            let mut i = 0;
            while len > 0 && i + len <= n {
                if text[i..i + len] == rule.from[..] && !taken[i..i + len].contains(&true) {
                    taken[i..i + len].fill(true);
                    out.push(Replacement {
                        range: i..i + len,
                        text: rule.to.clone(),
                    });
                    i += len;
                } else {
                    i += 1;
                }
            }
        }
        if !self.words.is_empty() {
            let units: Vec<Unit> = text.iter().map(|c| text_unit(*c)).collect();
            // (length, exact, weight, start, word)
            let mut candidates: Vec<(usize, bool, u8, usize, usize)> = Vec::new();
            let mut found: Vec<usize> = Vec::new();
            for i in 0..n {
                found.clear();
                for k in keys(&units[i]) {
                    if let Some(ws) = self.index.get(&k) {
                        found.extend(ws);
                    }
                }
                found.sort_unstable();
                found.dedup();
                for &wi in &found {
                    let w = &self.words[wi];
                    let len = w.chars.len();
                    // one character: too many homophones to replace, and
                    // kept out of digit normalisation it would split numbers
                    if len < 2 || i + len > n {
                        continue;
                    }
                    let span = &text[i..i + len];
                    let exact = span
                        .iter()
                        .zip(&w.chars)
                        .all(|(a, b)| a.to_ascii_uppercase() == *b);
                    let sounds = exact
                        || (fuzzy
                            && fuzzy_allowed(span, &w.chars)
                            && units[i..i + len]
                                .iter()
                                .zip(&w.units)
                                .all(|(a, b)| same_sound(a, b)));
                    if !sounds || !latin_boundaries(text, i..i + len, &w.chars) {
                        continue;
                    }
                    candidates.push((len, exact, w.weight, i, wi));
                }
            }
            candidates.sort_by(|a, b| {
                b.0.cmp(&a.0)
                    .then(b.1.cmp(&a.1))
                    .then(b.2.cmp(&a.2))
                    .then(a.3.cmp(&b.3))
                    .then(a.4.cmp(&b.4))
            });
            for (len, _, _, start, wi) in candidates {
                let range = start..start + len;
                if taken[range.clone()].contains(&true) {
                    continue;
                }
                taken[range.clone()].fill(true);
                out.push(Replacement {
                    range,
                    text: self.words[wi].text.clone(),
                });
            }
        }
        out.sort_by_key(|r| r.range.start);
        out
    }
}

/// Characters of spoken numbers (digits, place units, 两, 幺, 点).
const NUMBER_CHARS: &str = "零〇一二三四五六七八九十百千万亿两幺点";

/// Whether a sound-alike (not exact) match of `word` may replace `span`:
/// a number character of the span is never rewritten (numbers are far more
/// often meant than a hot word that sounds like one — 十七 is not 时期, 月十
/// is not 月识 — and digit normalisation needs them), and a word of two
/// characters replaces a span only when one of them is already in place
/// (two syllables alone sound like too many common words: 服务 is not 复无).
fn fuzzy_allowed(span: &[char], word: &[char]) -> bool {
    let rewrites_a_number = span
        .iter()
        .zip(word)
        .any(|(a, b)| a != b && NUMBER_CHARS.contains(*a));
    let anchored = word.len() > 2 || span.iter().zip(word).any(|(a, b)| a == b);
    !rewrites_a_number && anchored
}

/// A word that starts (ends) with a Latin letter may not start (end) inside
/// a Latin word of the text: `SIS` does not match in `SISTER`.
fn latin_boundaries(text: &[char], range: Range<usize>, word: &[char]) -> bool {
    let letter = |c: Option<&char>| c.is_some_and(|c| c.is_ascii_alphabetic());
    let starts_latin = letter(word.first());
    let ends_latin = letter(word.last());
    let before = range.start.checked_sub(1).and_then(|i| text.get(i));
    let after = text.get(range.end);
    let joins_before = starts_latin && letter(before);
    let joins_after = ends_latin && letter(after);
    !(joins_before || joins_after)
}

/// A small least-recently-used map (linear eviction: meant for a few hundred
/// entries at most).
pub(crate) struct Lru<K, V> {
    capacity: usize,
    tick: u64,
    map: HashMap<K, (V, u64)>,
}

impl<K: Eq + Hash + Clone, V: Clone> Lru<K, V> {
    pub(crate) fn new(capacity: usize) -> Lru<K, V> {
        Lru {
            capacity: capacity.max(1),
            tick: 0,
            map: HashMap::new(),
        }
    }

    pub(crate) fn get(&mut self, k: &K) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(k).map(|(v, t)| {
            *t = tick;
            v.clone()
        })
    }

    pub(crate) fn insert(&mut self, k: K, v: V) {
        self.tick += 1;
        if !self.map.contains_key(&k) && self.map.len() >= self.capacity {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone());
            if let Some(o) = oldest {
                self.map.remove(&o);
            }
        }
        self.map.insert(k, (v, self.tick));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

type Cache = Mutex<Lru<(String, i64), Arc<Vocabulary>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(Lru::new(CACHE_CAPACITY)))
}

/// The compiled form of `h`: from the process's cache when this
/// `(vocabulary_id, version)` was compiled before, else compiled now and
/// cached (the server changes `version` whenever a vocabulary changes).
pub fn lookup(h: &HotWords) -> Arc<Vocabulary> {
    let key = (h.vocabulary_id.clone(), h.version);
    let hit = cache().lock().unwrap_or_else(|e| e.into_inner()).get(&key);
    if let Some(v) = hit {
        return v;
    }
    let v = Arc::new(Vocabulary::compile(h));
    if v.skipped > 0 {
        tracing::warn!(
            vocabulary_id = %v.vocabulary_id,
            version = v.version,
            skipped = v.skipped,
            "hot-word entries not used (syntax, or more than {MAX_ENTRIES})"
        );
    }
    cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, v.clone());
    v
}

#[cfg(test)]
mod tests;
mod verify;

pub use verify::Pick;
