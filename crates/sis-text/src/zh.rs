//! Tables and string helpers shared by `itn` (spoken → written) and `tn`
//! (written → spoken).

/// The standard Chinese digit characters, indexed by value.
pub(crate) const DIGITS: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];

/// Characters that may follow a lone number to make it a quantity.
pub(crate) const MEASURE: &str =
    "个位次天年月日号元块角毛分秒岁楼层张台件条家本份周斤米倍人名种套间辆笔趟期折度克吨页章集遍声";
/// Two-character measures whose first character alone means something else.
pub(crate) const MEASURE2: [&str; 6] = ["小时", "公里", "公斤", "星期", "千米", "毫米"];

/// Whether a measure word (`MEASURE`, `MEASURE2`) starts at `i`.
pub(crate) fn is_measure_at(chars: &[char], i: usize) -> bool {
    match chars.get(i) {
        Some(c) if MEASURE.contains(*c) => true,
        Some(_) => MEASURE2.iter().any(|m| starts_with(chars, i, m)),
        None => false,
    }
}

/// Whether `s` occurs in `chars` at `i`.
pub(crate) fn starts_with(chars: &[char], i: usize, s: &str) -> bool {
    s.chars()
        .enumerate()
        .all(|(k, c)| chars.get(i + k) == Some(&c))
}

/// Whether `s` occurs in `chars` right before `i`.
pub(crate) fn ends_with_before(chars: &[char], i: usize, s: &str) -> bool {
    let n = s.chars().count();
    i >= n && starts_with(chars, i - n, s)
}
