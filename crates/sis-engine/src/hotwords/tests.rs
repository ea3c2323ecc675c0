use std::sync::Arc;

use sis_core::HotWords;

use super::*;

fn vocab(words: &[&str]) -> Vocabulary {
    Vocabulary::compile(&hot_words("v", 1, words))
}

fn hot_words(id: &str, version: i64, words: &[&str]) -> HotWords {
    HotWords {
        vocabulary_id: id.into(),
        version,
        words: Arc::new(words.iter().map(|w| w.to_string()).collect()),
    }
}

/// `text` with the replacements applied.
fn apply(v: &Vocabulary, text: &str, fuzzy: bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut at = 0;
    for r in v.replacements(&chars, fuzzy) {
        assert!(r.range.start >= at, "overlapping or unordered: {r:?}");
        out.extend(&chars[at..r.range.start]);
        out.push_str(&r.text);
        at = r.range.end;
    }
    out.extend(&chars[at..]);
    out
}

#[test]
fn homophones_of_a_hot_word_become_the_hot_word() {
    let v = vocab(&["张伟"]);
    assert_eq!(apply(&v, "我是章伟", true), "我是张伟");
    assert_eq!(apply(&v, "张维你好", true), "张伟你好");
    assert_eq!(apply(&v, "章伟和张维", true), "张伟和张伟");
    // tones do not matter (zhāng / zhǎng)
    assert_eq!(apply(&v, "掌伟", true), "张伟");
    // heteronyms: 行 is háng in 银行 and xíng in 行人
    let v = vocab(&["银杭"]);
    assert_eq!(apply(&v, "去银行", true), "去银杭");
}

/// Sound-alike matches are held back where they would mostly be wrong: a
/// word of two characters needs one of them in place, and no number
/// character is rewritten.
#[test]
fn short_words_need_an_anchor_and_numbers_stay_numbers() {
    let v = vocab(&["张伟", "张伟明"]);
    assert_eq!(apply(&v, "章维", true), "章维");
    assert_eq!(apply(&v, "章维鸣", true), "张伟明");
    let v = vocab(&["时期", "月识", "诗意号"]);
    for text in ["十七", "三十七", "十月十号", "十一号"] {
        assert_eq!(apply(&v, text, true), text);
    }
    // number characters in place are fine
    let v = vocab(&["一号店"]);
    assert_eq!(apply(&v, "去一号电", true), "去一号店");
}

#[test]
fn a_span_that_does_not_sound_like_the_hot_word_is_untouched() {
    let v = vocab(&["张伟"]);
    for text in ["张三", "李伟", "张", "伟张", "章", "张 伟x", ""] {
        assert_eq!(apply(&v, text, true), text);
    }
    // only whole spans of the word's length
    let v = vocab(&["张伟明"]);
    assert_eq!(apply(&v, "章伟", true), "章伟");
}

#[test]
fn longest_then_exact_then_heaviest_candidate_wins_an_overlap() {
    // 章伟明: 张伟 (0..2) and 伟鸣 (1..3) overlap; the heavier one wins
    let v = vocab(&["张伟|3", "伟鸣|8"]);
    assert_eq!(apply(&v, "章伟明", true), "章伟鸣");
    let v = vocab(&["张伟|8", "伟鸣|3"]);
    assert_eq!(apply(&v, "章伟明", true), "张伟明");
    // a longer word wins whatever the weights
    let v = vocab(&["张伟|10", "伟明|10", "张伟明|1"]);
    assert_eq!(apply(&v, "章维鸣好", true), "张伟明好");
    // a span spelled exactly like a word stays that word, even against a
    // heavier homophone
    let v = vocab(&["章伟|1", "张伟|10"]);
    assert_eq!(apply(&v, "章伟", true), "章伟");
    assert_eq!(apply(&v, "张维", true), "张伟");
    // equal in everything: leftmost first
    let v = vocab(&["张伟|5", "伟张|5"]);
    assert_eq!(apply(&v, "张维张", true), "张伟张");
}

#[test]
fn latin_letters_match_case_insensitively_and_only_as_whole_words() {
    let v = vocab(&["华为SIS"]);
    assert_eq!(apply(&v, "华维sis很好", true), "华为SIS很好");
    assert_eq!(apply(&v, "华维sister", true), "华维sister");
    let v = vocab(&["SIS"]);
    assert_eq!(apply(&v, "use sis now", true), "use SIS now");
    assert_eq!(apply(&v, "sister", true), "sister");
    assert_eq!(apply(&v, "basis", true), "basis");
    assert_eq!(apply(&v, "用sis好", true), "用SIS好");
}

#[test]
fn forced_rules_replace_literal_text_first() {
    let v = vocab(&["谐音=目标", "目标|10"]);
    assert_eq!(apply(&v, "我们的谐音很好", true), "我们的目标很好");
    assert_eq!(apply(&v, "谐音谐音", false), "目标目标");
    // literal: a homophone of the sound-alike is not a rule match
    assert_eq!(apply(&v, "鞋印", true), "鞋印");
    // a rule takes its span before any hot word could
    let v = vocab(&["张伟=张炜", "张伟|10"]);
    assert_eq!(apply(&v, "张伟和章伟", true), "张炜和张伟");
    // longest rule first
    let v = vocab(&["张=李", "张伟=王五"]);
    assert_eq!(apply(&v, "张伟张", true), "王五李");
}

#[test]
fn a_biased_stream_keeps_its_spelling_unless_exact() {
    let v = vocab(&["张伟"]);
    assert_eq!(apply(&v, "章伟", false), "章伟");
    let chars: Vec<char> = "你好张伟".chars().collect();
    assert_eq!(
        v.replacements(&chars, false),
        vec![Replacement {
            range: 2..4,
            text: "张伟".into()
        }]
    );
}

#[test]
fn one_character_words_are_never_matched_in_text() {
    let v = vocab(&["伟", "三"]);
    assert_eq!(apply(&v, "维", true), "维");
    let chars: Vec<char> = "一三八".chars().collect();
    assert!(v.replacements(&chars, true).is_empty());
}

#[test]
fn entries_parse_as_documented() {
    assert_eq!(
        parse_entry("张伟"),
        Ok(Entry::Word {
            text: "张伟".into(),
            weight: DEFAULT_WEIGHT
        })
    );
    assert_eq!(
        parse_entry(" 华为SIS|10 "),
        Ok(Entry::Word {
            text: "华为SIS".into(),
            weight: 10
        })
    );
    assert_eq!(
        parse_entry("谐音=目标"),
        Ok(Entry::Rule {
            from: "谐音".into(),
            to: "目标".into()
        })
    );
    let bad = |s: &str| parse_entry(s).unwrap_err();
    assert_eq!(bad(""), EntryError::Empty);
    assert_eq!(bad("|5"), EntryError::Empty);
    assert_eq!(bad("=目标"), EntryError::Rule);
    assert_eq!(bad("谐音="), EntryError::Rule);
    for w in ["0", "11", "+5", "5.0", "", "x", "100", "-1"] {
        assert!(
            matches!(bad(&format!("张伟|{w}")), EntryError::Weight(_)),
            "{w}"
        );
    }
    // 32 bytes of UTF-8: ten 3-byte characters fit, eleven do not
    assert!(matches!(bad(&"张".repeat(11)), EntryError::TooLong { .. }));
    assert!(parse_entry(&"张".repeat(10)).is_ok());
    assert!(parse_entry(&"A".repeat(MAX_WORD_CHARS)).is_ok());
}

/// Every character sherpa-onnx's hot-word parser gives a meaning to, and
/// every control character, is refused in an entry.
#[test]
fn entries_refuse_what_the_native_parser_would_misread() {
    for c in [
        ':', '#', '@', '/', '\0', '\n', '\r', '\t', '\u{1b}', '\u{7f}', ' ', 'a', '1', '，', '|',
    ] {
        let e = format!("张{c}伟");
        assert!(parse_entry(&e).is_err(), "{e:?} accepted");
    }
    assert_eq!(parse_entry("a=b=c"), Err(EntryError::Rule));
    assert_eq!(parse_entry("张=伟=明"), Err(EntryError::Rule));
}

#[test]
fn the_weight_curve() {
    assert_eq!(bias_score(1), 0.5);
    assert_eq!(bias_score(DEFAULT_WEIGHT), 1.5);
    assert_eq!(bias_score(10), 2.75);
    assert_eq!(bias_score(0), 0.5);
    assert_eq!(bias_score(200), 2.75);
    for w in MIN_WEIGHT..MAX_WEIGHT {
        assert!(bias_score(w) < bias_score(w + 1));
    }
}

#[test]
fn the_bias_list_holds_only_encodable_words_one_a_line_with_their_score() {
    let tokens = ["张", "伟", "华", "为", "明"];
    let has = |t: &str| tokens.contains(&t);
    let v = vocab(&[
        "张伟|10",
        "华为SIS", // SIS is not a token
        "章伟",    // 章 is not a token
        "谐音=目标",
        "bad entry",
        "华为",
        "张伟|2", // repeated: the highest weight stays
        "明",
    ]);
    let list = v.bias_list(has).unwrap();
    assert_eq!(list, "张伟 :2.75\n华为 :1.50\n明 :1.50");
    assert_eq!(check_bias_list(&list), Ok(()));
    assert_eq!(v.skipped, 1);
    assert_eq!((v.word_count(), v.rule_count()), (5, 1));
    // nothing encodable: no list at all (a plain stream)
    assert_eq!(v.bias_list(|_| false), None);
    assert_eq!(vocab(&["谐音=目标"]).bias_list(has), None);
}

#[test]
fn pieces_follow_the_cjkchar_split() {
    assert_eq!(cjkchar_pieces("华为SIS"), ["华", "为", "SIS"]);
    assert_eq!(cjkchar_pieces("AB张CD伟"), ["AB", "张", "CD", "伟"]);
    assert_eq!(cjkchar_pieces("𠀀张"), ["𠀀", "张"]);
}

/// The last check refuses every string sherpa-onnx would end the process
/// on, or misread, in a per-stream hot-word list.
#[test]
fn the_bias_list_check_refuses_each_bad_case() {
    assert_eq!(check_bias_list("张伟 :1.50"), Ok(()));
    assert_eq!(check_bias_list("张伟 :1.50\n华为SIS :2"), Ok(()));
    let cases = [
        ("", "empty list"),
        ("张伟 :1.5\n\n华为 :1.5", "empty line"),
        ("张伟 :1.5\n", "empty line"),
        ("\n张伟 :1.5", "empty line"),
        ("张\0伟 :1.5", "NUL byte"),
        ("张\r伟 :1.5", "control character"),
        ("张伟 :1.5\r", "control character"),
        ("张\t伟 :1.5", "control character"),
        ("张伟", "no score"),
        ("张伟 1.5", "no score"),
    ];
    for (list, why) in cases {
        assert_eq!(check_bias_list(list), Err(why), "{list:?}");
    }
    for list in [
        "张:伟 :1.5",
        "张#1 :1.5",
        "张/伟 :1.5",
        "@张伟 :1.5",
        "张 伟 :1.5",
        "zhang :1.5",
    ] {
        assert!(check_bias_list(list).is_err(), "{list:?} accepted");
    }
    for score in [
        "", "nan", "inf", "-1", "0", "0.0", "1e9", "1.5.1", "1.5 :2", "abc",
    ] {
        let list = format!("张伟 :{score}");
        assert!(check_bias_list(&list).is_err(), "{list:?} accepted");
    }
    let long = format!("{} :1.5", "𠀀".repeat(MAX_WORD_CHARS + 8));
    assert!(long.len() > MAX_BIAS_LINE_BYTES);
    assert_eq!(check_bias_list(&long), Err("phrase too long"));
    // the API's limit: 32 bytes of UTF-8
    let over = format!("{} :1.5", "张".repeat(11));
    assert!(check_bias_list(&over).is_err());
    let max = format!("{} :2.75", "𠀀".repeat(8));
    assert_eq!(check_bias_list(&max), Ok(()));
    let many = vec!["张伟 :1.5"; MAX_ENTRIES + 1].join("\n");
    assert_eq!(check_bias_list(&many), Err("too many phrases"));
}

#[test]
fn entries_past_the_limit_are_skipped() {
    let words: Vec<String> = (0..MAX_ENTRIES + 5)
        .map(|i| {
            let c = |n: usize| char::from_u32(0x4E00 + n as u32).unwrap();
            format!("{}{}", c(i / 1000), c(i % 1000))
        })
        .collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let v = vocab(&refs);
    assert_eq!(v.word_count(), MAX_ENTRIES);
    assert_eq!(v.skipped, 5);
}

#[test]
fn a_vocabulary_is_compiled_once_per_id_and_version() {
    let a = lookup(&hot_words("cache-test", 1, &["张伟"]));
    let b = lookup(&hot_words("cache-test", 1, &["张伟"]));
    assert!(Arc::ptr_eq(&a, &b));
    let c = lookup(&hot_words("cache-test", 2, &["李伟"]));
    assert!(!Arc::ptr_eq(&a, &c));
    assert_eq!(apply(&c, "李维", true), "李伟");
}

#[test]
fn the_cache_drops_the_least_recently_used() {
    let mut lru: Lru<u32, u32> = Lru::new(2);
    lru.insert(1, 10);
    lru.insert(2, 20);
    assert_eq!(lru.get(&1), Some(10));
    lru.insert(3, 30); // 2 is the least recently used
    assert_eq!(lru.len(), 2);
    assert_eq!(lru.get(&2), None);
    assert_eq!(lru.get(&1), Some(10));
    assert_eq!(lru.get(&3), Some(30));
    lru.insert(3, 31); // replacing evicts nothing
    assert_eq!((lru.len(), lru.get(&1)), (2, Some(10)));
}
