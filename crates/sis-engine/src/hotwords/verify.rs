//! Checking a biased decode against a plain one.
//!
//! sherpa-onnx's contextual biasing adds a bonus to every hypothesis while
//! it follows the start of a hot word and takes it back when the word is not
//! finished. In a beam of a few hypotheses that temporary bonus is enough to
//! push the right hypothesis out for good, so a large vocabulary changes
//! words it has nothing to do with (measured: 1,000 unrelated words raised
//! the held-out CER of the transducer test pack by 1.1 points offline and
//! 1.5 streaming), and the streaming search never takes back the bonus of a
//! word left unfinished at the end of the audio.
//!
//! So every biased stream has a plain twin decoding the same audio, and the
//! result is the plain one except where the two differ around a hot word
//! that the biased one wrote: [`Vocabulary::verify_biased`] aligns the two
//! token sequences and takes each differing region from the biased decode
//! only when a vocabulary word spelled out in the biased text overlaps it
//! and the region does not turn a number character of the plain decode into
//! something else (the rule text matching follows too: 九点 is far more often
//! meant than a hot word 酒点).

use super::{Vocabulary, NUMBER_CHARS};

/// A token made of spoken-number characters only.
fn is_number(token: &str) -> bool {
    !token.is_empty() && token.chars().all(|c| NUMBER_CHARS.contains(c))
}

/// Where a token of the verified result comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// The token at this index of the plain decode.
    Plain(usize),
    /// The token at this index of the biased decode.
    Biased(usize),
}

/// An edit of the alignment of the plain tokens onto the biased ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Same(usize, usize),
    /// Different (a substitution, or a token only one side has).
    Differ(Option<usize>, Option<usize>),
}

/// Longest token sequences aligned cell by cell; longer ones (a stream
/// would need minutes without an endpoint) are compared by their common
/// prefix and suffix only, so the cost stays bounded.
const MAX_ALIGN_CELLS: usize = 1 << 20;

/// A minimum-edit alignment of `a` onto `b` (matches preferred on ties).
fn align(a: &[String], b: &[String]) -> Vec<Op> {
    // common prefix and suffix need no table
    let pre = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suf = a[pre..]
        .iter()
        .rev()
        .zip(b[pre..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a_mid, b_mid) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    let mut ops: Vec<Op> = (0..pre).map(|i| Op::Same(i, i)).collect();
    let (n, m) = (a_mid.len(), b_mid.len());
    if (n + 1).saturating_mul(m + 1) > MAX_ALIGN_CELLS {
        // one region: whatever lies between the common ends
        for k in 0..n.max(m) {
            ops.push(Op::Differ(
                (k < n).then_some(pre + k),
                (k < m).then_some(pre + k),
            ));
        }
    } else {
        let w = m + 1;
        let mut d = vec![0u32; (n + 1) * w];
        for (j, cell) in d.iter_mut().enumerate().take(w) {
            *cell = j as u32;
        }
        for i in 1..=n {
            d[i * w] = i as u32;
            for j in 1..=m {
                let sub = d[(i - 1) * w + j - 1] + u32::from(a_mid[i - 1] != b_mid[j - 1]);
                d[i * w + j] = sub.min(d[(i - 1) * w + j] + 1).min(d[i * w + j - 1] + 1);
            }
        }
        let mut mid: Vec<Op> = Vec::with_capacity(n.max(m));
        let (mut i, mut j) = (n, m);
        while i > 0 || j > 0 {
            let here = d[i * w + j];
            if i > 0 && j > 0 && a_mid[i - 1] == b_mid[j - 1] && here == d[(i - 1) * w + j - 1] {
                mid.push(Op::Same(pre + i - 1, pre + j - 1));
                i -= 1;
                j -= 1;
            } else if i > 0 && j > 0 && here == d[(i - 1) * w + j - 1] + 1 {
                mid.push(Op::Differ(Some(pre + i - 1), Some(pre + j - 1)));
                i -= 1;
                j -= 1;
            } else if i > 0 && here == d[(i - 1) * w + j] + 1 {
                mid.push(Op::Differ(Some(pre + i - 1), None));
                i -= 1;
            } else {
                mid.push(Op::Differ(None, Some(pre + j - 1)));
                j -= 1;
            }
        }
        ops.extend(mid.into_iter().rev());
    }
    ops.extend((0..suf).map(|k| Op::Same(a.len() - suf + k, b.len() - suf + k)));
    ops
}

impl Vocabulary {
    /// Token ranges (`start..end` into `tokens`) where a word of this
    /// vocabulary is spelled out, the tokens read as text (sherpa-onnx's
    /// word-start mark `▁` and spaces dropped, Latin compared upper-case).
    pub fn occurrences(&self, tokens: &[String]) -> Vec<(usize, usize)> {
        let mut chars: Vec<char> = Vec::new();
        let mut owner: Vec<usize> = Vec::new();
        for (t, tok) in tokens.iter().enumerate() {
            for c in tok.chars().filter(|c| *c != '▁' && !c.is_whitespace()) {
                chars.push(c.to_ascii_uppercase());
                owner.push(t);
            }
        }
        let mut out = Vec::new();
        for i in 0..chars.len() {
            let Some(words) = self.by_first_char.get(&chars[i]) else {
                continue;
            };
            for &wi in words {
                let w = &self.words[wi].chars;
                if chars.len() - i >= w.len() && chars[i..i + w.len()] == w[..] {
                    out.push((owner[i], owner[i + w.len() - 1] + 1));
                }
            }
        }
        out
    }

    /// The tokens of the verified result of one segment decoded twice, plain
    /// and with this vocabulary biasing the search: the plain tokens, except
    /// that each region where the two differ (after a minimum-edit
    /// alignment) is taken from the biased decode when a word of this
    /// vocabulary spelled out in the biased tokens overlaps it (or, for a
    /// region the biased decode has no tokens in, spans its place), unless
    /// the region replaces or drops a number token of the plain decode with
    /// anything but number tokens.
    pub fn verify_biased(&self, plain: &[String], biased: &[String]) -> Vec<Pick> {
        let found = self.occurrences(biased);
        let ops = align(plain, biased);
        let mut out = Vec::with_capacity(plain.len().max(biased.len()));
        let mut k = 0;
        while k < ops.len() {
            if let Op::Same(i, _) = ops[k] {
                out.push(Pick::Plain(i));
                k += 1;
                continue;
            }
            let start = k;
            while k < ops.len() && matches!(ops[k], Op::Differ(..)) {
                k += 1;
            }
            let region = &ops[start..k];
            let b: Vec<usize> = region
                .iter()
                .filter_map(|o| match o {
                    Op::Differ(_, b) => *b,
                    Op::Same(..) => None,
                })
                .collect();
            let hot = match (b.first(), b.last()) {
                (Some(&b0), Some(&b1)) => found.iter().any(|&(s, e)| s <= b1 && b0 < e),
                _ => {
                    // only plain tokens here: the biased decode dropped them
                    // at this place, between its tokens `at - 1` and `at`
                    let at = ops[..start]
                        .iter()
                        .rev()
                        .find_map(|o| match o {
                            Op::Same(_, j) | Op::Differ(_, Some(j)) => Some(j + 1),
                            Op::Differ(_, None) => None,
                        })
                        .unwrap_or(0);
                    found.iter().any(|&(s, e)| s < at && at < e)
                }
            };
            let rewrites_a_number = region.iter().any(|o| match o {
                Op::Differ(Some(i), b) => {
                    is_number(&plain[*i]) && !b.is_some_and(|j| is_number(&biased[j]))
                }
                _ => false,
            });
            let hot = hot && !rewrites_a_number;
            for o in region {
                match (o, hot) {
                    (Op::Differ(_, Some(j)), true) => out.push(Pick::Biased(*j)),
                    (Op::Differ(Some(i), _), false) => out.push(Pick::Plain(*i)),
                    _ => {}
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn vocab(words: &[&str]) -> Vocabulary {
        Vocabulary::compile(&sis_core::HotWords {
            vocabulary_id: "v".into(),
            version: 1,
            words: Arc::new(words.iter().map(|w| w.to_string()).collect()),
        })
    }

    fn toks(s: &str) -> Vec<String> {
        s.chars().map(|c| c.to_string()).collect()
    }

    /// The verified text of `plain` and `biased`.
    fn verified(v: &Vocabulary, plain: &str, biased: &str) -> String {
        let (p, b) = (toks(plain), toks(biased));
        v.verify_biased(&p, &b)
            .into_iter()
            .map(|k| match k {
                Pick::Plain(i) => p[i].clone(),
                Pick::Biased(j) => b[j].clone(),
            })
            .collect()
    }

    #[test]
    fn a_hot_word_the_biased_decode_wrote_is_kept() {
        let v = vocab(&["售候中心"]);
        assert_eq!(
            verified(&v, "麻烦告诉我售后中心怎么走", "麻烦告诉我售候中心怎么走"),
            "麻烦告诉我售候中心怎么走"
        );
        // a hot word written with more or fewer tokens than the plain text
        assert_eq!(
            verified(&v, "去售后心怎么走", "去售候中心怎么走"),
            "去售候中心怎么走"
        );
        assert_eq!(verified(&v, "去售候中中心", "去售候中心"), "去售候中心");
    }

    #[test]
    fn changes_away_from_any_hot_word_are_undone() {
        let v = vocab(&["信日经", "万快", "售候中心"]);
        // the boost of an unfinished 信日经 and 万快 rewrote the start
        assert_eq!(
            verified(&v, "请问停车场今天营业吗", "信万了"),
            "请问停车场今天营业吗"
        );
        // one region kept, another undone
        assert_eq!(
            verified(&v, "请问售后中心今天营业吗", "信问售候中心今天营业厅"),
            "请问售候中心今天营业吗"
        );
        // tokens the biased decode dropped come back
        assert_eq!(
            verified(&v, "我要预约明天上午", "我要预约明上午"),
            "我要预约明天上午"
        );
        // the same text either way
        assert_eq!(verified(&v, "你好", "你好"), "你好");
        assert_eq!(verified(&v, "", ""), "");
        assert_eq!(verified(&v, "你好", ""), "你好");
        assert_eq!(verified(&v, "", "你好"), "");
    }

    #[test]
    fn number_characters_are_not_rewritten_into_a_hot_word() {
        let v = vocab(&["酒点", "签九", "九五五二二六七五"]);
        assert_eq!(
            verified(&v, "早上九点零三分", "早上酒点零三分"),
            "早上九点零三分"
        );
        assert_eq!(verified(&v, "二千九百", "二签九百"), "二千九百");
        // a number made longer by a hot word made of numbers is kept
        assert_eq!(
            verified(&v, "九五二六七五", "九五五二二六七五"),
            "九五五二二六七五"
        );
    }

    #[test]
    fn a_word_the_biased_decode_shortened_inside_a_hot_word_is_kept() {
        let v = vocab(&["张伟"]);
        // the plain decode stuttered inside the name; the biased one wrote it
        assert_eq!(verified(&v, "我是张张伟", "我是张伟"), "我是张伟");
    }

    #[test]
    fn hot_words_are_found_across_sub_word_tokens_and_case() {
        let v = vocab(&["华为SIS"]);
        let t: Vec<String> = ["我", "用", "华", "为", "▁S", "IS"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(v.occurrences(&t), vec![(2, 6)]);
        let lower: Vec<String> = ["华", "为", "▁s", "is"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(v.occurrences(&lower), vec![(0, 4)]);
        assert!(v.occurrences(&toks("华为")).is_empty());
    }

    #[test]
    fn long_sequences_are_bounded() {
        let v = vocab(&["张伟"]);
        let plain: Vec<String> = (0..3000).map(|i| format!("{}", i % 7)).collect();
        let mut biased = plain.clone();
        biased[1500] = "张".into();
        biased.insert(1501, "伟".into());
        let picks = v.verify_biased(&plain, &biased);
        let text: Vec<&str> = picks
            .iter()
            .map(|k| match k {
                Pick::Plain(i) => plain[*i].as_str(),
                Pick::Biased(j) => biased[*j].as_str(),
            })
            .collect();
        assert_eq!(text[1500], "张");
        assert_eq!(text[1501], "伟");
        assert_eq!(text.len(), 3001);
        // beyond the table's size: the whole middle is one region
        let far: Vec<String> = (0..3000).map(|i| format!("x{i}")).collect();
        assert_eq!(v.verify_biased(&plain, &far).len(), 3000);
    }
}
