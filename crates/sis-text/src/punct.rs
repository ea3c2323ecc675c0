//! Punctuation fallback, used when `add_punc=yes` and no punctuation pack is
//! installed for the language.
//!
//! The fallback only ends the utterance: `？` after a question particle or a
//! question word, `。` otherwise (`?`/`.` for text without Chinese
//! characters that contains Latin letters). It never inserts marks inside the text; that
//! takes a punctuation model (a `punctuation` pack).

const QUESTION_ENDINGS: [&str; 6] = ["吗", "呢", "么", "吧", "嘛", "没有"];
const QUESTION_WORDS: [&str; 10] = [
    "什么",
    "怎么",
    "为什么",
    "哪里",
    "哪儿",
    "几点",
    "多少",
    "多久",
    "是否",
    "请问",
];

/// Ends `text` with a sentence-final mark unless it already has one or is empty.
pub fn end_of_sentence(text: &str) -> String {
    let trimmed = text.trim_end();
    if trimmed.is_empty() {
        return String::new();
    }
    if trimmed.ends_with(['。', '？', '！', '.', '?', '!', '，', ',']) {
        return trimmed.to_string();
    }
    let question = QUESTION_ENDINGS.iter().any(|e| trimmed.ends_with(e))
        || QUESTION_WORDS.iter().any(|w| trimmed.contains(w));
    // Latin marks for Latin text only; a Chinese transcript ending in digits still gets '。'.
    let cjk = trimmed
        .chars()
        .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
    let ascii = !cjk && trimmed.chars().any(|c| c.is_ascii_alphabetic());
    let mark = match (question, ascii) {
        (true, false) => "？",
        (false, false) => "。",
        (true, true) => "?",
        (false, true) => ".",
    };
    format!("{trimmed}{mark}")
}

#[cfg(test)]
mod tests {
    use super::end_of_sentence;

    #[test]
    fn marks() {
        for (i, o) in [
            ("您好请问有什么可以帮您", "您好请问有什么可以帮您？"),
            ("请稍等", "请稍等。"),
            ("您是本人吗", "您是本人吗？"),
            ("银行几点开门", "银行几点开门？"),
            ("13800138000", "13800138000。"),
            ("电话13800138000", "电话13800138000。"),
            ("hello world", "hello world."),
            ("what is it", "what is it."),
            ("好的。", "好的。"),
            ("", ""),
            ("  ", ""),
        ] {
            assert_eq!(end_of_sentence(i), o, "{i}");
        }
    }
}
