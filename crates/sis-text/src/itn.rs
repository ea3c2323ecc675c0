//! Chinese inverse text normalisation for `digit_norm=yes`.
//!
//! Spoken numbers become Arabic numerals where a reader expects them:
//! digit strings (一三八零零一三八零零零 → 13800138000), cardinals and
//! decimals (三百五十六点七元 → 356.7元), dates (二零二六年十一月二十日 →
//! 2026年11月20日), clock times (下午三点十五分 → 下午3点15分), percentages
//! (百分之十五 → 15%). Idioms that merely contain number characters (十分感谢,
//! 千万, 万一, 一点儿, 一下) are left alone.
//!
//! The output is a list of pieces, each with the range of input characters it
//! came from, so word timings survive normalisation.

use std::ops::Range;

use crate::zh::{ends_with_before, is_measure_at, starts_with, DIGITS};

/// One output unit and the input characters (indices into `chars()`) it replaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    pub text: String,
    pub src: Range<usize>,
}

fn digit_value(c: char) -> Option<u64> {
    Some(match c {
        '〇' | '洞' => 0,
        '幺' => 1,
        '两' => 2,
        _ => DIGITS.iter().position(|&d| d == c)? as u64,
    })
}

fn unit_value(c: char) -> Option<u64> {
    Some(match c {
        '十' => 10,
        '百' => 100,
        '千' => 1000,
        '万' => 10_000,
        '亿' => 100_000_000,
        _ => return None,
    })
}

const TIME_OF_DAY: [&str; 10] = [
    "上午", "下午", "晚上", "早上", "凌晨", "中午", "傍晚", "今天", "明天", "昨天",
];

/// A maximal run of number characters starting at `i`.
struct Run {
    end: usize,
    has_unit: bool,
}

fn scan_run(chars: &[char], i: usize) -> Option<Run> {
    let mut end = i;
    let mut has_unit = false;
    while end < chars.len() {
        let c = chars[end];
        if digit_value(c).is_some() {
            end += 1;
        } else if unit_value(c).is_some() {
            has_unit = true;
            end += 1;
        } else {
            break;
        }
    }
    (end > i).then_some(Run { end, has_unit })
}

/// Value of a cardinal with place units (三百五十六, 十二万三千, 一百五 = 150).
fn cardinal_value(chars: &[char]) -> Option<u64> {
    let mut total: u64 = 0; // completed 亿 groups
    let mut section: u64 = 0; // completed 万 groups inside the current 亿 group
    let mut group: u64 = 0; // below 万
    let mut pending: Option<u64> = None; // a digit not yet given a unit
    let mut last_unit: u64 = 0;
    let mut zero_seen = false;
    for (k, &c) in chars.iter().enumerate() {
        if let Some(d) = digit_value(c) {
            if pending.is_some() {
                return None; // two digits in a row inside a cardinal
            }
            if d == 0 {
                zero_seen = true;
                continue;
            }
            pending = Some(d);
        } else if let Some(u) = unit_value(c) {
            match u {
                10 | 100 | 1000 => {
                    let d = match pending.take() {
                        Some(d) => d,
                        None if u == 10 && (k == 0 || zero_seen || group == 0) => 1,
                        None => return None,
                    };
                    group += d * u;
                    last_unit = u;
                }
                10_000 => {
                    let g = group + pending.take().unwrap_or(0);
                    if g == 0 {
                        return None;
                    }
                    section += g * 10_000;
                    group = 0;
                    last_unit = u;
                }
                _ => {
                    let g = section + group + pending.take().unwrap_or(0);
                    if g == 0 {
                        return None;
                    }
                    total += g * 100_000_000;
                    section = 0;
                    group = 0;
                    last_unit = u;
                }
            }
            zero_seen = false;
        } else {
            return None;
        }
    }
    let tail = match pending {
        // 一百五 = 150, 三万五 = 35000: a trailing digit right after a unit
        // (no 零 between) counts in the next lower place.
        Some(d) if !zero_seen && last_unit >= 100 => d * last_unit / 10,
        Some(d) => d,
        None => 0,
    };
    Some(total + section + group + tail)
}

fn digits_string(chars: &[char]) -> Option<String> {
    chars
        .iter()
        .map(|&c| digit_value(c).map(|d| char::from(b'0' + d as u8)))
        .collect()
}

/// A number at `i`: returns (text, end). Cardinals with units become their
/// value, digit runs become digit strings.
fn number_at(chars: &[char], i: usize) -> Option<(String, usize, bool)> {
    let run = scan_run(chars, i)?;
    let slice = &chars[i..run.end];
    if run.has_unit {
        // A cardinal must start with a digit or 十 (百/千/万 first is an idiom: 千万, 万一).
        if !(digit_value(slice[0]).is_some() || slice[0] == '十') {
            return None;
        }
        // Trim trailing units that cannot belong (none expected) and evaluate.
        cardinal_value(slice).map(|v| (v.to_string(), run.end, true))
    } else {
        digits_string(slice).map(|s| (s, run.end, false))
    }
}

/// Normalises `input`, returning pieces with their source spans.
pub fn normalize(input: &str) -> Vec<Piece> {
    let chars: Vec<char> = input.chars().collect();
    let mut out: Vec<Piece> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if let Some((text, end)) = match_at(&chars, i) {
            out.push(Piece { text, src: i..end });
            i = end;
        } else {
            out.push(Piece {
                text: chars[i].to_string(),
                src: i..i + 1,
            });
            i += 1;
        }
    }
    out
}

/// Normalised text only.
pub fn digit_norm(input: &str) -> String {
    normalize(input).into_iter().map(|p| p.text).collect()
}

fn match_at(chars: &[char], i: usize) -> Option<(String, usize)> {
    // Percent: 百分之十五 → 15%, 百分之三点五 → 3.5%
    if starts_with(chars, i, "百分之") {
        let (n, end) = plain_number(chars, i + 3)?;
        return Some((format!("{n}%"), end));
    }
    // Negative numbers: 负三 → -3
    if chars[i] == '负' {
        let (n, end) = plain_number(chars, i + 1)?;
        return Some((format!("-{n}"), end));
    }
    let (num, end, has_unit) = number_at(chars, i)?;
    let run_len = end - i;
    let next = chars.get(end).copied();

    // Clock time: H点 ...
    if next == Some('点') {
        if let Some(t) = clock_time(chars, i, &num, end) {
            return Some(t);
        }
    }
    // Decimal: N点 digits (not followed by 分, which is a time)
    if next == Some('点') {
        if let Some((frac, fend)) = decimal_digits(chars, end + 1) {
            return Some((format!("{num}.{frac}"), fend));
        }
    }
    // 十分 (very) is an adverb unless it is 十分钟.
    if num == "10" && chars[i] == '十' && run_len == 1 && next == Some('分') {
        if chars.get(end + 1) == Some(&'钟') {
            return Some((num, end));
        }
        return None;
    }
    if has_unit {
        return Some((num, end));
    }
    // Digit strings: phone numbers, codes, years (二零二六年).
    if run_len >= 2 {
        return Some((num, end));
    }
    // A lone digit: only as a quantity or calendar unit (三个, 五天, 十一月),
    // or the first end of a range of quantities (三到五天).
    if matches!(next, Some('到') | Some('至')) {
        if let Some((_, e2, _)) = number_at(chars, end + 1) {
            if is_measure_at(chars, e2) {
                return Some((num, end));
            }
        }
    }
    if chars[i] == '两' && !is_measure_at(chars, end) {
        return None;
    }
    if is_measure_at(chars, end) {
        // 一下 / 一些 etc. are not measures; 一 + 点 handled above.
        return Some((num, end));
    }
    None
}

/// Number (cardinal or digits) with an optional decimal part, for 百分之/负.
fn plain_number(chars: &[char], i: usize) -> Option<(String, usize)> {
    let (num, end, _) = number_at(chars, i)?;
    if chars.get(end) == Some(&'点') {
        if let Some((frac, fend)) = decimal_digits(chars, end + 1) {
            return Some((format!("{num}.{frac}"), fend));
        }
    }
    Some((num, end))
}

/// Digits after 点 read one by one (七, 七五, 零五), not followed by 分.
fn decimal_digits(chars: &[char], i: usize) -> Option<(String, usize)> {
    let run = scan_run(chars, i)?;
    if run.has_unit {
        return None;
    }
    if chars.get(run.end) == Some(&'分') {
        return None;
    }
    digits_string(&chars[i..run.end]).map(|s| (s, run.end))
}

fn clock_time(chars: &[char], start: usize, hour: &str, dot: usize) -> Option<(String, usize)> {
    let h: u64 = hour.parse().ok()?;
    if h > 24 {
        return None;
    }
    let after = dot + 1;
    match chars.get(after) {
        Some('半') => return Some((format!("{h}点半"), after + 1)),
        Some('钟') => return Some((format!("{h}点钟"), after + 1)),
        _ => {}
    }
    // Minutes: 十五分, 零五分, 三十 (with or without 分) when read with a unit.
    if let Some(run) = scan_run(chars, after) {
        let mins = &chars[after..run.end];
        let followed_by_fen = chars.get(run.end) == Some(&'分');
        let (m, text) = if run.has_unit {
            let v = cardinal_value(mins)?;
            (v, v.to_string())
        } else if followed_by_fen {
            let s = digits_string(mins)?;
            (s.parse().ok()?, s)
        } else {
            return None; // 三点五 is a decimal
        };
        if m >= 60 {
            return None;
        }
        let text = if text.len() == 1 && mins.len() == 2 && mins[0] == '零' {
            format!("0{text}")
        } else {
            text
        };
        let end = if followed_by_fen {
            run.end + 1
        } else {
            run.end
        };
        let suffix = if followed_by_fen { "分" } else { "" };
        return Some((format!("{h}点{text}{suffix}"), end));
    }
    // Bare hour: only where a time is clearly meant (下午三点, 九点开门), and
    // never 一点 alone (a little).
    let time_context = TIME_OF_DAY
        .iter()
        .any(|w| ends_with_before(chars, start, w));
    if time_context || (h != 1 && chars[start] != '两') {
        return Some((format!("{h}点"), after));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (spoken, normalised). Covers the examples and the idioms that
    /// must survive.
    const CASES: &[(&str, &str)] = &[
        // digit strings
        ("一三八零零一三八零零零", "13800138000"),
        ("幺三八零零幺三八零零零", "13800138000"),
        ("我的电话是一三九一二三四五六七八", "我的电话是13912345678"),
        ("验证码是六七八九", "验证码是6789"),
        ("工号零零七", "工号007"),
        ("房间号是三零二", "房间号是302"),
        ("请拨打九五五八八", "请拨打95588"),
        ("尾号四四五六的卡", "尾号4456的卡"),
        ("密码是零零零零零零", "密码是000000"),
        ("分机号八零二", "分机号802"),
        ("一二三", "123"),
        ("零一", "01"),
        ("幺幺零", "110"),
        ("拨打幺二零", "拨打120"),
        // cardinals
        ("三百五十六点七元", "356.7元"),
        ("一千零五", "1005"),
        ("一千零一十", "1010"),
        ("十", "10"),
        ("十二", "12"),
        ("二十", "20"),
        ("一百零一", "101"),
        ("一百一十", "110"),
        ("两百", "200"),
        ("两千", "2000"),
        ("两万", "20000"),
        ("一万", "10000"),
        ("一万零一", "10001"),
        ("十万", "100000"),
        ("十二万三千", "123000"),
        ("三十万五千零二十", "305020"),
        ("九十九万九千九百九十九", "999999"),
        ("一百五", "150"),
        ("三万五", "35000"),
        ("两百五十块", "250块"),
        ("三亿", "300000000"),
        ("一亿两千万", "120000000"),
        ("十一", "11"),
        ("一十五", "15"),
        ("金额是五千元", "金额是5000元"),
        ("余额还有三十二块五", "余额还有32块五"),
        ("共计一千二百三十四元", "共计1234元"),
        ("手续费是二十元", "手续费是20元"),
        ("需要三到五天", "需要3到5天"),
        ("三个工作日", "3个工作日"),
        ("大概需要四十分钟", "大概需要40分钟"),
        ("十分钟", "10分钟"),
        ("两个人", "2个人"),
        ("五次", "5次"),
        ("一年", "1年"),
        ("七天", "7天"),
        ("二十四小时", "24小时"),
        ("三公里", "3公里"),
        ("八岁", "8岁"),
        ("第三个", "第3个"),
        ("零元", "0元"),
        // decimals
        ("三点五", "3.5"),
        ("零点五", "0.5"),
        ("一点二五", "1.25"),
        ("三百五十六点七", "356.7"),
        ("利率是四点三五", "利率是4.35"),
        ("十二点零八元", "12.08元"),
        ("一千零一十九点六四", "1019.64"),
        // percent and negative
        ("百分之十五", "15%"),
        ("百分之三点五", "3.5%"),
        ("百分之百", "百分之百"),
        ("百分之一百", "100%"),
        ("零下负三度", "零下-3度"),
        ("负五", "-5"),
        // dates
        ("二零二六年十一月二十日", "2026年11月20日"),
        ("二零二六年十一月二十号", "2026年11月20号"),
        ("一九九八年三月五日", "1998年3月5日"),
        ("十二月三十一号", "12月31号"),
        ("五月一日", "5月1日"),
        ("二零三九年一月", "2039年1月"),
        ("九八年", "98年"),
        ("今天是十月一号", "今天是10月1号"),
        // times
        ("下午三点十五分", "下午3点15分"),
        ("早上九点半", "早上9点半"),
        ("晚上八点", "晚上8点"),
        ("上午十点零五分", "上午10点05分"),
        ("三点钟", "3点钟"),
        ("银行九点开门", "银行9点开门"),
        ("十二点三十分", "12点30分"),
        ("两点半", "2点半"),
        ("凌晨一点", "凌晨1点"),
        ("下午一点二十分", "下午1点20分"),
        ("九点三十", "9点30"),
        ("退房时间是中午十二点", "退房时间是中午12点"),
        // idioms and words that only contain number characters
        ("十分感谢", "十分感谢"),
        ("十分满意", "十分满意"),
        ("千万不要告诉别人", "千万不要告诉别人"),
        ("万一出了问题", "万一出了问题"),
        ("有一点问题", "有一点问题"),
        ("请稍等一下", "请稍等一下"),
        ("一些材料", "一些材料"),
        ("一起办理", "一起办理"),
        ("一定", "一定"),
        ("一般三到五天", "一般3到5天"),
        ("统一", "统一"),
        ("唯一", "唯一"),
        ("您好请问有什么可以帮您", "您好请问有什么可以帮您"),
        ("满意请按一", "满意请按一"),
        ("两者", "两者"),
        ("三心二意", "三心二意"),
        ("", ""),
        ("hello 一三八零零", "hello 13800"),
    ];

    #[test]
    fn table() {
        let mut failures = Vec::new();
        for (input, want) in CASES {
            let got = digit_norm(input);
            if got != *want {
                failures.push(format!("{input} → {got} (want {want})"));
            }
        }
        assert!(CASES.len() >= 100, "{} cases", CASES.len());
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn spans_cover_input() {
        for (input, _) in CASES {
            let pieces = normalize(input);
            let mut at = 0;
            for p in &pieces {
                assert_eq!(p.src.start, at, "{input}");
                at = p.src.end;
            }
            assert_eq!(at, input.chars().count(), "{input}");
        }
    }

    #[test]
    fn spans_of_a_phone_number() {
        let p = normalize("电话一三八零零");
        assert_eq!(p.len(), 3);
        assert_eq!(
            p[2],
            Piece {
                text: "13800".into(),
                src: 2..7
            }
        );
    }
}
