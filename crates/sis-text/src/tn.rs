//! Chinese text normalisation for speech synthesis (TN), the inverse of `itn`.
//!
//! `normalize_for_speech` rewrites every digit and number-bearing symbol the
//! way a Chinese listener expects it read, in hanzi, so that a Mandarin voice
//! (espeak-ng `cmn`, Chinese TTS models) reads it right. Everything else —
//! Chinese text, Latin letters and words, punctuation, emoji — passes through
//! unchanged. The output never contains an ASCII or full-width digit.
//!
//! What a number becomes, first rule that applies:
//! - dates `2026-11-28`, `2026/11/28`, `2026.11.28` → 二零二六年十一月二十八日;
//!   clock times `14:05` → 十四点零五分, `8:30` → 八点三十分, `14:05:09` →
//!   十四点零五分零九秒, `14:00` → 十四点, `2:30` → 两点三十分;
//! - digit strings, read digit by digit with 一 (never 幺) for 1: groups
//!   joined by `-` when one has a leading zero or 5+ digits or there are 3+
//!   groups (`010-12345678` → 零一零 一二三四五六七八, a space for the dash);
//!   dotted groups of 3+ (`192.168.1.1` → 一九二点一六八点一点一); numbers
//!   with a leading zero (`007`), 11-digit numbers starting with 1 (mobile
//!   phones) and 10-digit ones starting with 400/800 unless a measure word
//!   follows; 3+ digits right after a Latin letter (`G1234`, `A380`) or
//!   after 号/码/电话/手机/拨打/… (`验证码是6789`); numbers of more than 16
//!   digits; four digits before 年/届/款/级 (`2026年` → 二零二六年);
//! - simple fractions `a/b` with a < b and b ≤ 10, 100 or 1000 → 三分之一;
//! - percentages `15%` → 百分之十五, `3.5%` → 百分之三点五 (‰ → 千分之);
//! - amounts: `¥`/`$`/`€`/`£` before a number become 元/美元/欧元/英镑 after
//!   it; before 元/块, and after a currency sign, the decimal part loses its
//!   trailing zeros: `¥12.50`, `12.50元` → 十二点五元 (never 十二元五角);
//! - units after a number: ℃/°C → 摄氏度, km → 公里, kg → 公斤, m² → 平方米, …;
//! - otherwise a cardinal (`10086` → 一万零八十六) or decimal (`3.14` →
//!   三点一四), `-` before it (not after a letter or digit) → 负. 2 is 两
//!   before most measure words (两个, 两年, 两点) but 二 before ordinal ones
//!   (二号, 二月, 二楼) and after 第; a number of 100 or more that starts with
//!   2 starts with 两 (两百, 两千五百, 两万).
//!
//! Between two numbers, `-`/`~`/`–`/`—` read 到 (`3-5天` → 三到五天; 减 if an
//! `=` follows), `+` 加, `×`/`*` 乘, `÷` 除以, `=` 等于, `:` 比.
//!
//! `split_sentences` cuts long text into pieces a synthesiser takes in one go.

use crate::zh::{ends_with_before, is_measure_at, starts_with, DIGITS};

/// What a normalised number is, for the symbols between two numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A plain cardinal or decimal: arithmetic and ranges.
    Number,
    /// A percentage, amount, quantity with a unit, date, time, year or fraction: ranges.
    Quantity,
    /// Digits read one by one: neither.
    Digits,
}

/// A normalised number: its reading and the index just past its source.
struct Item {
    text: String,
    end: usize,
    kind: Kind,
}

/// Before these, the number 2 reads 两 (两个, 两年, 两点, 两万).
const LIANG_BEFORE: &str = "个位次天年岁元块角毛分秒张台件条家本份周斤米倍人名种套间辆笔趟克吨遍声点只头匹对双杯碗瓶盒箱包口支根片部首句段架艘棵颗座所道项门节场批百千万亿小公星毫平立";
/// Words after which 3+ digits are a number to read digit by digit.
const DIGIT_KEYWORDS: [&str; 16] = [
    "号", "码", "电话", "手机", "分机", "热线", "拨打", "致电", "房间", "车牌", "航班", "车次",
    "邮编", "尾数", "账户", "帐户",
];
/// Characters allowed between such a word and the number (`电话：`, `尾号为`).
const KEYWORD_GAP: [char; 5] = [':', ' ', '是', '为', '#'];
/// After four digits: a year (2026年, 2026届, 2026款, 2024级).
const YEAR_SUFFIX: &str = "年届款级";
/// Scale characters kept after an amount (¥5万 → 五万元).
const SCALE: &str = "百千万亿";
const CURRENCY: [(char, &str); 4] = [('¥', "元"), ('$', "美元"), ('€', "欧元"), ('£', "英镑")];
/// Units after a number, longest first: (symbol, reading, is a temperature).
const UNITS: [(&str, &str, bool); 22] = [
    ("km/h", "公里每小时", false),
    ("km²", "平方公里", false),
    ("m/s", "米每秒", false),
    ("°C", "摄氏度", true),
    ("°F", "华氏度", true),
    ("m²", "平方米", false),
    ("m³", "立方米", false),
    ("km", "公里", false),
    ("kg", "公斤", false),
    ("cm", "厘米", false),
    ("mm", "毫米", false),
    ("mg", "毫克", false),
    ("ml", "毫升", false),
    ("mL", "毫升", false),
    ("℃", "摄氏度", true),
    ("℉", "华氏度", true),
    ("㎡", "平方米", false),
    ("㎞", "公里", false),
    ("㎏", "公斤", false),
    ("°", "度", true),
    ("m", "米", false),
    ("g", "克", false),
];

/// Full-width and look-alike forms of the characters numbers are made of.
fn fold(c: char) -> char {
    match c {
        '０'..='９' => char::from_digit(u32::from(c) - u32::from('０'), 10).unwrap_or(c),
        '％' => '%',
        '．' => '.',
        '：' => ':',
        '－' | '−' | '‐' | '‑' => '-',
        '＋' => '+',
        '／' => '/',
        '～' | '〜' => '~',
        '＝' => '=',
        '＄' => '$',
        '￥' => '¥',
        '￡' => '£',
        _ => c,
    }
}

fn is_digit_at(chars: &[char], i: usize) -> bool {
    chars.get(i).is_some_and(char::is_ascii_digit)
}

/// End of the run of ASCII digits starting at `i`.
fn digit_run(chars: &[char], i: usize) -> usize {
    let mut end = i;
    while is_digit_at(chars, end) {
        end += 1;
    }
    end
}

/// Length of the digit run at `i`, looking no further than `cap + 1` digits
/// (so a result of `cap + 1` means "longer than `cap`").
fn capped_run(chars: &[char], i: usize, cap: usize) -> usize {
    let mut n = 0;
    while n <= cap && is_digit_at(chars, i + n) {
        n += 1;
    }
    n
}

fn prev_char(chars: &[char], i: usize) -> Option<char> {
    i.checked_sub(1).and_then(|p| chars.get(p)).copied()
}

/// Value of ASCII digits when it has at most 16 significant digits.
fn value(ds: &[char]) -> Option<u64> {
    let first = ds.iter().position(|&c| c != '0').unwrap_or(ds.len());
    let ds = &ds[first..];
    if ds.len() > 16 {
        return None;
    }
    ds.iter().try_fold(0u64, |n, c| {
        n.checked_mul(10)?.checked_add(u64::from(c.to_digit(10)?))
    })
}

fn push_spelled(out: &mut String, ds: &[char]) {
    for d in ds.iter().filter_map(|c| c.to_digit(10)) {
        out.push(DIGITS[d as usize % 10]);
    }
}

fn spelled(ds: &[char]) -> String {
    let mut s = String::new();
    push_spelled(&mut s, ds);
    s
}

/// 1..=9999 with its place units; `leading` writes 10..=19 as 十…, not 一十….
fn read4(n: u64, leading: bool, out: &mut String) {
    const UNIT: [&str; 4] = ["千", "百", "十", ""];
    let ds = [n / 1000 % 10, n / 100 % 10, n / 10 % 10, n % 10];
    let mut started = false;
    let mut zero = false;
    for (k, &d) in ds.iter().enumerate() {
        if d == 0 {
            zero |= started;
            continue;
        }
        if zero {
            out.push('零');
            zero = false;
        }
        if !(k == 2 && d == 1 && leading && !started) {
            out.push(DIGITS[d as usize]);
        }
        out.push_str(UNIT[k]);
        started = true;
    }
}

/// 1..10^8 with 万.
fn read_wan(n: u64, leading: bool, out: &mut String) {
    let (hi, lo) = (n / 10_000, n % 10_000);
    if hi == 0 {
        return read4(lo, leading, out);
    }
    read4(hi, leading, out);
    out.push('万');
    if lo > 0 {
        if lo < 1000 {
            out.push('零');
        }
        read4(lo, false, out);
    }
}

/// 0..10^16 as a cardinal: 一万零八十六, 一亿零五百万, 十二万三千.
fn cardinal(n: u64) -> String {
    let mut out = String::new();
    let (hi, lo) = (n / 100_000_000, n % 100_000_000);
    if n == 0 {
        out.push('零');
    } else if hi == 0 {
        read_wan(lo, true, &mut out);
    } else {
        read_wan(hi, true, &mut out);
        out.push('亿');
        if lo > 0 {
            if lo < 10_000_000 {
                out.push('零');
            }
            read_wan(lo, false, &mut out);
        }
    }
    out
}

/// An integer as a cardinal, or digit by digit when it is too long.
fn int_reading(ds: &[char]) -> String {
    match value(ds) {
        Some(v) => cardinal(v),
        None => spelled(ds),
    }
}

/// 两 for 2 where Chinese says it: before a measure word it takes (两个),
/// and as the first digit of 两百/两千/两万/两亿; never after 第.
fn apply_liang(text: &mut String, v: u64, prev: Option<char>, liang_next: bool) {
    if prev == Some('第') {
        return;
    }
    if v == 2 {
        if liang_next && !matches!(prev, Some('点' | '.' | '/' | ':')) {
            *text = "两".to_string();
        }
    } else if v >= 100 {
        if let Some(rest) = text.strip_prefix('二') {
            if !rest.starts_with('十') {
                *text = format!("两{rest}");
            }
        }
    }
}

/// Whether a measure word that takes 两 follows at `i`, directly or after a
/// range (2-3小时 → 两到三小时).
fn liang_next(chars: &[char], i: usize) -> bool {
    let takes_liang = |j: usize| chars.get(j).is_some_and(|c| LIANG_BEFORE.contains(*c));
    if takes_liang(i) {
        return true;
    }
    let run = capped_run(chars, i + 1, 4);
    matches!(chars.get(i), Some('-' | '~' | '–' | '—' | '到' | '至'))
        && (1..=4).contains(&run)
        && takes_liang(i + 1 + run)
}

/// The digits of a number, its decimal digits and the index past it.
struct Num {
    int: Vec<char>,
    frac: Option<Vec<char>>,
    end: usize,
    grouped: bool,
}

/// Integer (with `,` thousands separators) and an optional decimal part.
fn scan_num(chars: &[char], start: usize) -> Num {
    let mut end = digit_run(chars, start);
    let mut int = chars[start..end].to_vec();
    let mut grouped = false;
    if int.len() <= 3 {
        while chars.get(end) == Some(&',') && capped_run(chars, end + 1, 3) == 3 {
            int.extend_from_slice(&chars[end + 1..end + 4]);
            end += 4;
            grouped = true;
        }
    }
    let mut frac = None;
    if chars.get(end) == Some(&'.') && is_digit_at(chars, end + 1) {
        let fe = digit_run(chars, end + 1);
        frac = Some(chars[end + 1..fe].to_vec());
        end = fe;
    }
    Num {
        int,
        frac,
        end,
        grouped,
    }
}

/// Cardinal or decimal reading; `money` drops the decimals' trailing zeros.
fn num_reading(num: &Num, money: bool) -> String {
    let mut text = int_reading(&num.int);
    if let Some(frac) = &num.frac {
        let keep = if money {
            frac.iter().rposition(|&c| c != '0').map_or(0, |p| p + 1)
        } else {
            frac.len()
        };
        if keep > 0 {
            text.push('点');
            push_spelled(&mut text, &frac[..keep]);
        }
    }
    text
}

/// Whether 元/块 (possibly after 万/亿…) follows at `i`.
fn money_follows(chars: &[char], i: usize) -> bool {
    let yuan = |c: Option<&char>| matches!(c, Some('元' | '块'));
    yuan(chars.get(i))
        || (chars.get(i).is_some_and(|c| SCALE.contains(*c)) && yuan(chars.get(i + 1)))
}

/// A unit at `i` (optionally after one space for multi-letter units):
/// (reading, end, is a temperature).
fn unit_at(chars: &[char], i: usize) -> Option<(&'static str, usize, bool)> {
    let spaced = chars.get(i) == Some(&' ');
    let at = if spaced { i + 1 } else { i };
    UNITS.iter().find_map(|&(sym, word, temp)| {
        let len = sym.chars().count();
        if spaced && (len < 2 || !sym.chars().all(|c| c.is_ascii_alphabetic())) {
            return None;
        }
        if !starts_with(chars, at, sym) {
            return None;
        }
        let letter_end = sym.chars().last().is_some_and(|c| c.is_ascii_alphabetic());
        if letter_end && chars.get(at + len).is_some_and(char::is_ascii_alphanumeric) {
            return None;
        }
        Some((word, at + len, temp))
    })
}

/// A number that `item_at` finds at `i`, or `None` where nothing starts there.
fn item_at(chars: &[char], i: usize) -> Option<Item> {
    let c = *chars.get(i)?;
    if c.is_ascii_digit() {
        return Some(number_item(chars, i));
    }
    if !is_digit_at(chars, i + 1) {
        return None;
    }
    if c == '-' {
        let prev = prev_char(chars, i);
        let after_word = prev.is_some_and(|p| {
            p.is_ascii_alphanumeric() || matches!(p, '.' | ')' | ']' | '）' | '_' | '%')
        });
        return if after_word {
            None
        } else {
            negative_item(chars, i + 1)
        };
    }
    let word = CURRENCY.iter().find(|(sym, _)| *sym == c)?.1;
    Some(money_item(chars, i + 1, word))
}

/// A number starting at digit `start`; always one, ending after `start`.
fn number_item(chars: &[char], start: usize) -> Item {
    if let Some(it) = date_item(chars, start)
        .or_else(|| time_item(chars, start))
        .or_else(|| chain_item(chars, start))
        .or_else(|| fraction_item(chars, start))
    {
        return it;
    }
    let num = scan_num(chars, start);
    if let Some(it) = suffixed_item(chars, start, &num, false) {
        return it;
    }
    let end = num.end;
    if num.frac.is_some() {
        let text = num_reading(&num, money_follows(chars, end));
        return Item {
            text,
            end,
            kind: Kind::Number,
        };
    }
    if !num.grouped {
        if let Some((text, kind)) = digit_string(chars, start, &num.int, end) {
            return Item { text, end, kind };
        }
    }
    let mut text = int_reading(&num.int);
    if let Some(v) = value(&num.int) {
        apply_liang(
            &mut text,
            v,
            prev_char(chars, start),
            liang_next(chars, end),
        );
    }
    Item {
        text,
        end,
        kind: Kind::Number,
    }
}

/// `-` then a number: 负 + cardinal, decimal, percentage or quantity.
/// `None` for what has no sign (digit strings, years), so the `-` stays.
fn negative_item(chars: &[char], start: usize) -> Option<Item> {
    let num = scan_num(chars, start);
    if let Some(it) = suffixed_item(chars, start, &num, true) {
        return Some(it);
    }
    if num.frac.is_none() && !num.grouped && digit_string(chars, start, &num.int, num.end).is_some()
    {
        return None;
    }
    let text = format!("负{}", num_reading(&num, money_follows(chars, num.end)));
    Some(Item {
        text,
        end: num.end,
        kind: Kind::Number,
    })
}

/// A percentage or a number with a unit.
fn suffixed_item(chars: &[char], start: usize, num: &Num, neg: bool) -> Option<Item> {
    let sign = if neg { "负" } else { "" };
    let end = num.end;
    let per = match chars.get(end) {
        Some('%') => Some("百分之"),
        Some('‰') => Some("千分之"),
        _ => None,
    };
    if let Some(per) = per {
        return Some(Item {
            text: format!("{sign}{per}{}", num_reading(num, false)),
            end: end + 1,
            kind: Kind::Quantity,
        });
    }
    let (word, unit_end, temperature) = unit_at(chars, end)?;
    let mut text = num_reading(num, false);
    if num.frac.is_none() && !neg {
        if let Some(v) = value(&num.int) {
            apply_liang(&mut text, v, prev_char(chars, start), !temperature);
        }
    }
    Some(Item {
        text: format!("{sign}{text}{word}"),
        end: unit_end,
        kind: Kind::Quantity,
    })
}

/// An amount after a currency sign: ¥12.50 → 十二点五元, ¥5万 → 五万元.
fn money_item(chars: &[char], start: usize, word: &str) -> Item {
    let num = scan_num(chars, start);
    let mut text = num_reading(&num, true);
    if num.frac.is_none() {
        if let Some(v) = value(&num.int) {
            apply_liang(&mut text, v, None, true);
        }
    }
    let mut end = num.end;
    while let Some(&c) = chars.get(end).filter(|c| SCALE.contains(**c)) {
        text.push(c);
        end += 1;
    }
    if !starts_with(chars, end, word) {
        text.push_str(word);
    }
    Item {
        text,
        end,
        kind: Kind::Quantity,
    }
}

/// An integer (no separators, no decimals) to read digit by digit, with the
/// kind of item it makes; `None` for a cardinal.
fn digit_string(chars: &[char], start: usize, ds: &[char], end: usize) -> Option<(String, Kind)> {
    let len = ds.len();
    let next = chars.get(end).copied();
    let prev = prev_char(chars, start);
    if len > 16 {
        return Some((spelled(ds), Kind::Digits));
    }
    if len >= 2 && ds[0] == '0' {
        if len == 2 {
            match next {
                // 05月, 08日, 09点: the zero is padding.
                Some(c) if "月日号时点".contains(c) => return None,
                // 05分, 09秒: 零五分.
                Some('分' | '秒') => {
                    let mut text = "零".to_string();
                    if ds[1] != '0' {
                        push_spelled(&mut text, &ds[1..]);
                    }
                    return Some((text, Kind::Number));
                }
                _ => {}
            }
        }
        return Some((spelled(ds), Kind::Digits));
    }
    if len == 4 && (next.is_some_and(|c| YEAR_SUFFIX.contains(c)) || year_range_follows(chars, end))
    {
        return Some((spelled(ds), Kind::Quantity));
    }
    // After a letter or a keyword (G1234, 验证码是6789); mobile numbers; 400/800
    // service numbers; a country code (+86).
    let code = (len >= 3
        && (prev.is_some_and(|c| c.is_ascii_alphabetic()) || keyword_before(chars, start)))
        || (len == 11 && ds[0] == '1' && !is_measure_at(chars, end))
        || (len == 10 && (ds.starts_with(&['4', '0', '0']) || ds.starts_with(&['8', '0', '0'])))
        || (prev == Some('+') && (start < 2 || !is_digit_at(chars, start - 2)));
    code.then(|| (spelled(ds), Kind::Digits))
}

/// `-`, `~`, 至 or 到, then four digits and a year suffix (2020-2025年).
fn year_range_follows(chars: &[char], i: usize) -> bool {
    matches!(chars.get(i), Some('-' | '~' | '–' | '—' | '至' | '到'))
        && capped_run(chars, i + 1, 4) == 4
        && chars.get(i + 5).is_some_and(|c| YEAR_SUFFIX.contains(*c))
}

/// Whether a word of `DIGIT_KEYWORDS` ends right before `start` (a few
/// `KEYWORD_GAP` characters between allowed).
fn keyword_before(chars: &[char], start: usize) -> bool {
    let mut j = start;
    for _ in 0..3 {
        match prev_char(chars, j) {
            Some(c) if KEYWORD_GAP.contains(&c) => j -= 1,
            _ => break,
        }
    }
    DIGIT_KEYWORDS.iter().any(|k| ends_with_before(chars, j, k))
}

/// `YYYY-MM-DD`, `YYYY/MM/DD` or `YYYY.MM.DD` with a valid month and day.
fn date_item(chars: &[char], s: usize) -> Option<Item> {
    if capped_run(chars, s, 4) != 4 {
        return None;
    }
    let sep = *chars.get(s + 4)?;
    if !matches!(sep, '-' | '/' | '.') {
        return None;
    }
    let m_len = capped_run(chars, s + 5, 2);
    let p = s + 5 + m_len;
    if !(1..=2).contains(&m_len) || chars.get(p) != Some(&sep) {
        return None;
    }
    let d_len = capped_run(chars, p + 1, 2);
    let end = p + 1 + d_len;
    if !(1..=2).contains(&d_len) || chars.get(end) == Some(&sep) && is_digit_at(chars, end + 1) {
        return None;
    }
    let month = value(&chars[s + 5..p])?;
    let day = value(&chars[p + 1..end])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let text = format!(
        "{}年{}月{}日",
        spelled(&chars[s..s + 4]),
        cardinal(month),
        cardinal(day)
    );
    Some(Item {
        text,
        end,
        kind: Kind::Quantity,
    })
}

/// `H:MM` or `H:MM:SS` (hours up to 24).
fn time_item(chars: &[char], s: usize) -> Option<Item> {
    let h_len = capped_run(chars, s, 2);
    let colon = s + h_len;
    if !(1..=2).contains(&h_len)
        || chars.get(colon) != Some(&':')
        || capped_run(chars, colon + 1, 2) != 2
    {
        return None;
    }
    let mut end = colon + 3;
    let h = value(&chars[s..colon])?;
    let m = value(&chars[colon + 1..end])?;
    let mut sec = 0;
    if chars.get(end) == Some(&':') && is_digit_at(chars, end + 1) {
        if capped_run(chars, end + 1, 2) != 2 {
            return None;
        }
        sec = value(&chars[end + 1..end + 3])?;
        end += 3;
        if chars.get(end) == Some(&':') && is_digit_at(chars, end + 1) {
            return None;
        }
    }
    if h > 24 || m > 59 || sec > 59 || h == 24 && m + sec > 0 {
        return None;
    }
    let mut text = if h == 2 {
        "两".to_string()
    } else {
        cardinal(h)
    };
    text.push('点');
    let two_digits = |text: &mut String, v: u64| {
        if v < 10 {
            text.push('零');
            if v > 0 {
                text.push(DIGITS[v as usize]);
            }
        } else {
            text.push_str(&cardinal(v));
        }
    };
    if m > 0 || sec > 0 {
        two_digits(&mut text, m);
        text.push('分');
    }
    if sec > 0 {
        two_digits(&mut text, sec);
        text.push('秒');
    }
    Some(Item {
        text,
        end,
        kind: Kind::Quantity,
    })
}

/// Digit groups joined by `-` (phone numbers, codes) or 3+ groups joined by
/// `.` (addresses, versions), read digit by digit.
fn chain_item(chars: &[char], s: usize) -> Option<Item> {
    let first_end = digit_run(chars, s);
    let sep = *chars.get(first_end)?;
    if !matches!(sep, '-' | '.') || !is_digit_at(chars, first_end + 1) {
        return None;
    }
    let mut groups = vec![(s, first_end)];
    let mut end = first_end;
    while chars.get(end) == Some(&sep) && is_digit_at(chars, end + 1) {
        let ge = digit_run(chars, end + 1);
        groups.push((end + 1, ge));
        end = ge;
    }
    let chain = groups.len() >= 3
        || sep == '-'
            && (groups
                .iter()
                .any(|&(a, b)| b - a >= 5 || (b - a >= 2 && chars[a] == '0'))
                || keyword_before(chars, s)
                || prev_char(chars, s).is_some_and(|c| c.is_ascii_alphabetic()));
    if !chain {
        return None;
    }
    let joint = if sep == '-' { " " } else { "点" };
    let text = groups
        .into_iter()
        .map(|(a, b)| spelled(&chars[a..b]))
        .collect::<Vec<_>>()
        .join(joint);
    Some(Item {
        text,
        end,
        kind: Kind::Digits,
    })
}

/// `a/b` that is clearly a fraction: 1 ≤ a < b, b ≤ 10 or 100 or 1000.
fn fraction_item(chars: &[char], s: usize) -> Option<Item> {
    let a_len = capped_run(chars, s, 3);
    let slash = s + a_len;
    if a_len > 3 || chars.get(slash) != Some(&'/') {
        return None;
    }
    let b_len = capped_run(chars, slash + 1, 4);
    let end = slash + 1 + b_len;
    if !(1..=4).contains(&b_len)
        || chars[s] == '0'
        || chars.get(slash + 1) == Some(&'0')
        || chars.get(end) == Some(&'/')
        || chars.get(end) == Some(&'.') && is_digit_at(chars, end + 1)
        || prev_char(chars, s).is_some_and(|c| c == '/' || c == '.' || c.is_ascii_alphabetic())
    {
        return None;
    }
    let a = value(&chars[s..slash])?;
    let b = value(&chars[slash + 1..end])?;
    if a == 0 || a >= b || !(b <= 10 || b == 100 || b == 1000) {
        return None;
    }
    Some(Item {
        text: format!("{}分之{}", cardinal(b), cardinal(a)),
        end,
        kind: Kind::Quantity,
    })
}

/// A symbol at `i` between the number just read (`left`) and one starting at
/// `i + 1`: its reading and that number.
fn connector(chars: &[char], i: usize, left: Kind) -> Option<(&'static str, Item)> {
    let c = *chars.get(i)?;
    if !matches!(c, '-' | '~' | '–' | '—' | '+' | '×' | '*' | '÷' | '=' | ':') {
        return None;
    }
    let next = *chars.get(i + 1)?;
    let right = if next.is_ascii_digit() {
        number_item(chars, i + 1)
    } else {
        let word = CURRENCY.iter().find(|(sym, _)| *sym == next)?.1;
        if !is_digit_at(chars, i + 2) {
            return None;
        }
        money_item(chars, i + 2, word)
    };
    let numbers = left == Kind::Number && right.kind == Kind::Number;
    let neither_digits = left != Kind::Digits && right.kind != Kind::Digits;
    let word = match c {
        '-' if numbers && chars.get(right.end) == Some(&'=') => "减",
        '-' | '~' | '–' | '—' if neither_digits => "到",
        '+' if numbers => "加",
        '×' | '*' if numbers => "乘",
        '÷' if numbers => "除以",
        '=' if neither_digits => "等于",
        ':' if numbers => "比",
        _ => return None,
    };
    Some((word, right))
}

/// Rewrites digits and number symbols in `text` as spoken Chinese (see the
/// module documentation); other characters are kept as they are.
pub fn normalize_for_speech(text: &str) -> String {
    let orig: Vec<char> = text.chars().collect();
    let chars: Vec<char> = orig.iter().map(|&c| fold(c)).collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut last: Option<(Kind, usize)> = None;
    let mut i = 0;
    while i < chars.len() {
        let joined = match last {
            Some((kind, end)) if end == i => connector(&chars, i, kind),
            _ => None,
        };
        let item = if let Some((word, item)) = joined {
            out.push_str(word);
            Some(item)
        } else {
            item_at(&chars, i)
        };
        if let Some(item) = item {
            out.push_str(&item.text);
            last = Some((item.kind, item.end));
            i = item.end;
        } else {
            out.push(orig[i]);
            i += 1;
        }
    }
    out
}

fn is_sentence_end(c: char, next: Option<char>) -> bool {
    matches!(
        c,
        '。' | '！' | '？' | '!' | '?' | '；' | ';' | '\n' | '\r' | '…'
    ) || c == '.' && next.is_none_or(char::is_whitespace)
}

fn is_clause_end(c: char, _next: Option<char>) -> bool {
    matches!(c, '，' | ',' | '、' | '：')
}

/// `text` cut after each character `is_end` accepts, together with the
/// closing marks and further ends that follow it (`？！`, `。”`).
fn split_after(text: &str, is_end: fn(char, Option<char>) -> bool) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut it = text.char_indices().peekable();
    while let Some((_, c)) = it.next() {
        let next = it.peek().map(|&(_, n)| n);
        if !is_end(c, next) {
            continue;
        }
        // Absorb what closes the sentence too; a `.` here counts as an end
        // whatever follows it (`...`).
        while let Some(&(_, n)) = it.peek() {
            if is_end(n, Some(' ')) || "”’\"')）」』》】]".contains(n) {
                it.next();
            } else {
                break;
            }
        }
        let cut = it.peek().map_or(text.len(), |&(p, _)| p);
        pieces.push(&text[start..cut]);
        start = cut;
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// Pushes `piece` trimmed unless nothing but whitespace is left.
fn push_trimmed(out: &mut Vec<String>, piece: &str) {
    let t = piece.trim();
    if !t.is_empty() {
        out.push(t.to_string());
    }
}

/// Splits long text for synthesis: at sentence-final punctuation
/// (。！？!?；; …, a `.` before whitespace, line breaks), then, for a sentence
/// longer than `max_chars` characters, at commas (，,、：) packing clauses up
/// to `max_chars`, then hard at `max_chars`. Pieces are trimmed and never
/// empty; together they hold every non-whitespace character of `text`, in
/// order. A `max_chars` of 0 counts as 1.
pub fn split_sentences(text: &str, max_chars: usize) -> Vec<String> {
    let max = max_chars.max(1);
    let mut out = Vec::new();
    for sentence in split_after(text, is_sentence_end) {
        let sentence = sentence.trim();
        if sentence.chars().count() <= max {
            push_trimmed(&mut out, sentence);
            continue;
        }
        let mut cur = String::new();
        let mut cur_len = 0;
        for clause in split_after(sentence, is_clause_end) {
            let len = clause.chars().count();
            if cur_len + len > max {
                push_trimmed(&mut out, &cur);
                cur.clear();
                cur_len = 0;
            }
            if len <= max {
                cur.push_str(clause);
                cur_len += len;
                continue;
            }
            let clause: Vec<char> = clause.chars().collect();
            for chunk in clause.chunks(max) {
                push_trimmed(&mut out, &chunk.iter().collect::<String>());
            }
        }
        push_trimmed(&mut out, &cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::itn::digit_norm;

    /// (written, spoken).
    const CASES: &[(&str, &str)] = &[
        // cardinals
        ("356", "三百五十六"),
        ("10086", "一万零八十六"),
        ("共10086人", "共一万零八十六人"),
        ("0", "零"),
        ("10", "十"),
        ("20", "二十"),
        ("105", "一百零五"),
        ("110", "一百一十"),
        ("1005", "一千零五"),
        ("1010", "一千零一十"),
        ("1200", "一千二百"),
        ("100000", "十万"),
        ("120000", "十二万"),
        ("100010", "十万零一十"),
        ("123456789", "一亿二千三百四十五万六千七百八十九"),
        ("1300000000", "十三亿"),
        ("101000000", "一亿零一百万"),
        ("1000000000000", "一万亿"),
        ("1,234,567", "一百二十三万四千五百六十七"),
        ("12万", "十二万"),
        // 两 and 二
        ("2个", "两个"),
        ("12个", "十二个"),
        ("2号", "二号"),
        ("2月2日", "二月二日"),
        ("2年", "两年"),
        ("2小时", "两小时"),
        ("2个小时", "两个小时"),
        ("2点", "两点"),
        ("3点2分", "三点二分"),
        ("第2名", "第二名"),
        ("第200名", "第二百名"),
        ("200", "两百"),
        ("2000元", "两千元"),
        ("20000", "两万"),
        ("2万", "两万"),
        ("2.5万", "二点五万"),
        ("我有3个苹果和2本书。", "我有三个苹果和两本书。"),
        // negatives and decimals
        ("-5", "负五"),
        ("温度-5度", "温度负五度"),
        ("3.14", "三点一四"),
        ("0.5", "零点五"),
        ("3.10", "三点一零"),
        ("-0.25", "负零点二五"),
        ("3.", "三."),
        // amounts
        ("¥12.50", "十二点五元"),
        ("12.5元", "十二点五元"),
        ("12.50元", "十二点五元"),
        ("12.00元", "十二元"),
        ("￥100", "一百元"),
        ("¥2", "两元"),
        ("¥5万", "五万元"),
        ("$5", "五美元"),
        ("¥100元", "一百元"),
        // percentages
        ("15%", "百分之十五"),
        ("3.5%", "百分之三点五"),
        ("2.5%", "百分之二点五"),
        ("100%", "百分之一百"),
        ("-3%", "负百分之三"),
        ("１５％", "百分之十五"),
        ("5‰", "千分之五"),
        // digit strings
        ("13800138000", "一三八零零一三八零零零"),
        ("电话：13800138000", "电话：一三八零零一三八零零零"),
        ("拨打10086", "拨打一零零八六"),
        ("验证码是6789", "验证码是六七八九"),
        ("尾号为4456", "尾号为四四五六"),
        ("工号007", "工号零零七"),
        ("房间号是302", "房间号是三零二"),
        ("01234", "零一二三四"),
        ("010-12345678", "零一零 一二三四五六七八"),
        ("400-800-8888", "四零零 八零零 八八八八"),
        ("4008123123", "四零零八一二三一二三"),
        ("+86 13800138000", "+八六 一三八零零一三八零零零"),
        ("G1234次", "G一二三四次"),
        ("A380", "A三八零"),
        ("192.168.1.1", "一九二点一六八点一点一"),
        (
            "99999999999999999999",
            "九九九九九九九九九九九九九九九九九九九九",
        ),
        // years and dates
        ("2026年", "二零二六年"),
        ("２０２６年", "二零二六年"),
        ("98年", "九十八年"),
        ("2026-11-28", "二零二六年十一月二十八日"),
        ("2026/11/28", "二零二六年十一月二十八日"),
        ("2026.1.5", "二零二六年一月五日"),
        ("2026年11月28日", "二零二六年十一月二十八日"),
        ("2026年05月08日", "二零二六年五月八日"),
        ("2020-2025年", "二零二零到二零二五年"),
        ("1998至2000年", "一九九八至二零零零年"),
        // times
        ("14:05", "十四点零五分"),
        ("8:30", "八点三十分"),
        ("14:05:09", "十四点零五分零九秒"),
        ("14:00:30", "十四点零分三十秒"),
        ("14:00", "十四点"),
        ("2:30", "两点三十分"),
        ("0:00", "零点"),
        ("14：05", "十四点零五分"),
        ("10:00-12:00", "十点到十二点"),
        ("14点05分", "十四点零五分"),
        // fractions, ranges, arithmetic
        ("1/3", "三分之一"),
        ("3/4杯", "四分之三杯"),
        ("11/28", "十一/二十八"),
        ("3-5天", "三到五天"),
        ("3~5天", "三到五天"),
        ("1-2个", "一到两个"),
        ("2-3小时", "两到三小时"),
        ("2到3天", "两到三天"),
        ("2-3号", "二到三号"),
        ("3%-5%", "百分之三到百分之五"),
        ("3+5=8", "三加五等于八"),
        ("10-3=7", "十减三等于七"),
        ("3×4", "三乘四"),
        ("比分3:2", "比分三比二"),
        // units
        ("36.5℃", "三十六点五摄氏度"),
        ("-5°C", "负五摄氏度"),
        ("2℃", "二摄氏度"),
        ("5km", "五公里"),
        ("2kg", "两公斤"),
        ("5 kg", "五公斤"),
        ("100m²", "一百平方米"),
        ("60km/h", "六十公里每小时"),
        ("3-5km", "三到五公里"),
        ("5min", "五min"),
        // Latin text, symbols and odd input
        ("5G网络", "五G网络"),
        ("iPhone15", "iPhone十五"),
        ("COVID-19", "COVID-十九"),
        ("第3章", "第三章"),
        ("hello world", "hello world"),
        ("你好😀", "你好😀"),
        ("", ""),
        ("-", "-"),
        ("%", "%"),
        ("¥", "¥"),
        ("25:00", "二十五:零零"),
    ];

    #[test]
    fn table() {
        let mut failures = Vec::new();
        for (input, want) in CASES {
            let got = normalize_for_speech(input);
            if got != *want {
                failures.push(format!("{input} → {got} (want {want})"));
            }
        }
        assert!(CASES.len() >= 60, "{} cases", CASES.len());
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        /// A number of 1 to `max_digits` digits, often with runs of zeros.
        fn number(&mut self, max_digits: u64) -> u64 {
            let digits = 1 + self.below(max_digits);
            let sparse = self.below(2) == 0;
            let mut n = 1 + self.below(9);
            for _ in 1..digits {
                let d = if sparse && self.below(3) > 0 {
                    0
                } else {
                    self.below(10)
                };
                n = n * 10 + d;
            }
            n
        }
        fn digits(&mut self, len: u64) -> String {
            (0..len)
                .map(|_| char::from(b'0' + self.below(10) as u8))
                .collect()
        }
    }

    /// `itn` applied to `tn`'s output gives back `want`.
    fn round_trip(input: &str, want: &str, failures: &mut Vec<String>) {
        let spoken = normalize_for_speech(input);
        let back = digit_norm(&spoken);
        if back != want {
            failures.push(format!("{input} → {spoken} → {back} (want {want})"));
        }
    }

    #[test]
    fn itn_inverts_tn() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut failures = Vec::new();
        for _ in 0..400 {
            let n = rng.number(16);
            round_trip(&format!("共{n}个"), &format!("共{n}个"), &mut failures);
            let n = rng.number(8);
            round_trip(&format!("共-{n}个"), &format!("共-{n}个"), &mut failures);
            let int = rng.number(9) / 10;
            let frac_len = 1 + rng.below(4);
            let frac = rng.digits(frac_len);
            let x = format!("{int}.{frac}");
            round_trip(&format!("{x}米"), &format!("{x}米"), &mut failures);
            let p = if rng.below(2) == 0 {
                x
            } else {
                rng.number(4).to_string()
            };
            round_trip(&format!("{p}%"), &format!("{p}%"), &mut failures);
            let (y, m, d) = (1000 + rng.below(2000), 1 + rng.below(12), 1 + rng.below(28));
            let want = format!("{y}年{m}月{d}日");
            for date in [
                format!("{y}-{m:02}-{d:02}"),
                format!("{y}/{m}/{d}"),
                format!("{y}.{m}.{d:02}"),
                format!("{y}年{m}月{d}日"),
            ] {
                round_trip(&date, &want, &mut failures);
            }
            let (h, mi, s) = (rng.below(24), rng.below(60), rng.below(60));
            let with_secs = rng.below(2) == 0;
            let clock = |v: u64| {
                if v < 10 {
                    format!("0{v}")
                } else {
                    v.to_string()
                }
            };
            let (input, want) = if with_secs && s > 0 {
                let mins = if mi == 0 { "0".to_string() } else { clock(mi) };
                (
                    format!("明天{h}:{mi:02}:{s:02}"),
                    format!("明天{h}点{mins}分{}秒", clock(s)),
                )
            } else if mi == 0 {
                (format!("明天{h}:00"), format!("明天{h}点"))
            } else {
                (
                    format!("明天{h}:{mi:02}"),
                    format!("明天{h}点{}分", clock(mi)),
                )
            };
            round_trip(&input, &want, &mut failures);
        }
        for phone in ["13800138000", "13912345678", "01012345678", "95588"] {
            round_trip(
                &format!("电话{phone}"),
                &format!("电话{phone}"),
                &mut failures,
            );
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    fn has_digit(s: &str) -> bool {
        s.chars()
            .any(|c| c.is_ascii_digit() || ('０'..='９').contains(&c))
    }

    #[test]
    fn any_input_is_read_without_digits_and_without_panic() {
        let mut rng = Rng(42);
        // Lossily decoded random bytes.
        for _ in 0..2000 {
            let len = rng.below(64) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
            let text = String::from_utf8_lossy(&bytes);
            let out = normalize_for_speech(&text);
            assert!(!has_digit(&out), "{text:?} → {out:?}");
            let _ = split_sentences(&text, rng.below(10) as usize);
        }
        // Strings made of the characters the parser looks at.
        let alphabet: Vec<char> =
            "0123456789０９-.:/,%‰¥$年月日号个点分秒元万第电话码 km℃°C+=×~至。，\n😀\u{0}"
                .chars()
                .collect();
        for _ in 0..5000 {
            let len = rng.below(40);
            let text: String = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                .collect();
            let out = normalize_for_speech(&text);
            assert!(!has_digit(&out), "{text:?} → {out:?}");
        }
    }

    #[test]
    fn long_input_takes_linear_time() {
        let inputs = [
            "电话13800138000，金额¥1,234.50，时间2026-11-28 14:05，占15%。".repeat(2000),
            "9".repeat(100_000),
            "1-".repeat(50_000),
            "1.".repeat(50_000),
            "1,000".repeat(20_000),
            "-".repeat(100_000),
            "2:".repeat(50_000),
        ];
        let start = std::time::Instant::now();
        for input in &inputs {
            let out = normalize_for_speech(input);
            assert!(!has_digit(&out));
            let pieces = split_sentences(&out, 50);
            assert!(!pieces.is_empty());
        }
        assert!(start.elapsed().as_secs() < 10, "{:?}", start.elapsed());
    }

    fn non_space(s: &str) -> String {
        s.chars().filter(|c| !c.is_whitespace()).collect()
    }

    #[test]
    fn splitter_examples() {
        assert_eq!(
            split_sentences("你好。今天天气很好！你去吗？", 100),
            ["你好。", "今天天气很好！", "你去吗？"]
        );
        assert_eq!(
            split_sentences("他说：“走吧！”然后走了。\n\n下一段", 100),
            ["他说：“走吧！”", "然后走了。", "下一段"]
        );
        assert_eq!(
            split_sentences("一二三四，五六七八，九十", 9),
            ["一二三四，", "五六七八，九十"]
        );
        assert_eq!(
            split_sentences("一二三四五六七", 3),
            ["一二三", "四五六", "七"]
        );
        assert_eq!(split_sentences("Hello. World?", 100), ["Hello.", "World?"]);
        assert_eq!(split_sentences("3.14", 100), ["3.14"]);
        assert!(split_sentences("", 10).is_empty());
        assert!(split_sentences(" \n\t ", 10).is_empty());
        assert_eq!(split_sentences("abc", 0), ["a", "b", "c"]);
    }

    #[test]
    fn splitter_properties() {
        let mut rng = Rng(7);
        let alphabet: Vec<char> = "你好世界abc 。！？!?；;\n，,、：.“”12\t".chars().collect();
        for _ in 0..3000 {
            let len = rng.below(80);
            let text: String = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                .collect();
            let max = rng.below(20) as usize;
            let pieces = split_sentences(&text, max);
            for p in &pieces {
                assert!(!p.trim().is_empty(), "{text:?} → {pieces:?}");
                assert!(
                    p.chars().count() <= max.max(1),
                    "{text:?} {max} → {pieces:?}"
                );
            }
            assert_eq!(non_space(&pieces.concat()), non_space(&text), "{text:?}");
        }
    }
}
