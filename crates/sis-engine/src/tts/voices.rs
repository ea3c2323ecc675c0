//! The voices: every SIS `property` of speech synthesis (SIS-API.md §11.3)
//! and the espeak-ng voice that reads it. This table is the only place a
//! voice is defined; `docs/TTS.md` and `sisd models list` show it.
//!
//! Mandarin voices read with `cmn-Latn-pinyin` (espeak-ng's Mandarin, fed
//! pinyin with tone numbers), English ones with `en-us`. The gender is the
//! one the v3 SDK's `TtsConfig` docstring gives each voice (女声, 男声,
//! 童声); espeak-ng's variants `+f1`..`+f5` are female and `+m1`..`+m7`
//! male, and children's voices take a female variant with a raised base
//! pitch. Voices of one gender differ by variant and by base pitch
//! (`espeak-ng -p`, 0..99, 50 its default), so no two voices sound alike.

/// Who a SIS voice is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gender {
    Female,
    Male,
    /// 童声: read by a female variant, higher.
    Child,
}

impl Gender {
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Female => "female",
            Gender::Male => "male",
            Gender::Child => "child",
        }
    }
}

/// The language a voice reads, which decides how text reaches espeak-ng.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    /// Text normalised (numbers in hanzi), hanzi as pinyin with tone
    /// numbers, read by `cmn-Latn-pinyin`.
    Mandarin,
    /// Text as written, read by `en-us`.
    English,
}

/// One SIS voice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Voice {
    /// The SIS `property`.
    pub name: &'static str,
    pub gender: Gender,
    pub language: Language,
    /// The espeak-ng voice with its variant (`-v`).
    pub espeak: &'static str,
    /// espeak-ng's base pitch (`-p`, 0..99).
    pub espeak_pitch: u8,
    /// A premium (精品) voice of SIS (billed per 50 characters there).
    pub premium: bool,
    /// Offered at 16 kHz only (SIS's literature voices).
    pub only_16k: bool,
}

impl Voice {
    /// Whether the voice is offered at `rate` Hz.
    pub fn offers(&self, rate: u32) -> bool {
        rate == 16000 || (rate == 8000 && !self.only_16k)
    }
}

use Gender::{Child, Female, Male};
use Language::{English, Mandarin};

const fn zh(
    name: &'static str,
    gender: Gender,
    espeak: &'static str,
    espeak_pitch: u8,
    premium: bool,
) -> Voice {
    Voice {
        name,
        gender,
        language: Mandarin,
        espeak,
        espeak_pitch,
        premium,
        only_16k: false,
    }
}

const fn en(name: &'static str, gender: Gender, espeak: &'static str, premium: bool) -> Voice {
    Voice {
        name,
        gender,
        language: English,
        espeak,
        espeak_pitch: 50,
        premium,
        only_16k: false,
    }
}

const fn only_16k(v: Voice) -> Voice {
    Voice {
        only_16k: true,
        ..v
    }
}

/// Every voice, SIS's order (§11.3): the normal voices, then the premium ones.
pub const VOICES: &[Voice] = &[
    // normal voices
    zh(
        "chinese_xiaoqi_common",
        Female,
        "cmn-Latn-pinyin+f1",
        50,
        false,
    ), // 小琪，标准女声
    zh(
        "chinese_xiaoyu_common",
        Male,
        "cmn-Latn-pinyin+m1",
        50,
        false,
    ), // 小宇，标准男声
    zh(
        "chinese_xiaoyan_common",
        Female,
        "cmn-Latn-pinyin+f2",
        50,
        false,
    ), // 小燕，温柔女声 (default)
    zh(
        "chinese_xiaowang_common",
        Child,
        "cmn-Latn-pinyin+f4",
        80,
        false,
    ), // 小王，童声
    zh(
        "chinese_xiaowen_common",
        Female,
        "cmn-Latn-pinyin+f3",
        50,
        false,
    ), // 小雯，柔美女声
    zh(
        "chinese_xiaojing_common",
        Female,
        "cmn-Latn-pinyin+f5",
        60,
        false,
    ), // 小婧，俏皮女声
    zh(
        "chinese_xiaosong_common",
        Male,
        "cmn-Latn-pinyin+m3",
        55,
        false,
    ), // 小宋，激昂男声
    zh(
        "chinese_xiaoxia_common",
        Female,
        "cmn-Latn-pinyin+f4",
        55,
        false,
    ), // 小夏，热情女声
    zh(
        "chinese_xiaodai_common",
        Child,
        "cmn-Latn-pinyin+f5",
        85,
        false,
    ), // 小呆，呆萌童声
    zh(
        "chinese_xiaoqian_common",
        Female,
        "cmn-Latn-pinyin+f1",
        40,
        false,
    ), // 小倩，成熟女声
    en("english_cameal_common", Female, "en-us+f2", false), // cameal，柔美女声
    // premium voices
    zh(
        "chinese_huaxiaoxia_common",
        Female,
        "cmn-Latn-pinyin+f3",
        58,
        true,
    ), // 华小夏，热情女声
    zh(
        "chinese_huaxiaogang_common",
        Male,
        "cmn-Latn-pinyin+m2",
        50,
        true,
    ), // 华晓刚，利落男声
    zh(
        "chinese_huaxiaolu_common",
        Female,
        "cmn-Latn-pinyin+f2",
        44,
        true,
    ), // 华小璐，知性女声
    zh(
        "chinese_huaxiaoshu_common",
        Female,
        "cmn-Latn-pinyin+f1",
        45,
        true,
    ), // 华小舒，舒缓女声
    zh(
        "chinese_huaxiaowei_common",
        Female,
        "cmn-Latn-pinyin+f4",
        62,
        true,
    ), // 华小唯，嗲柔女声
    zh(
        "chinese_huaxiaoliang_common",
        Female,
        "cmn-Latn-pinyin+f5",
        52,
        true,
    ), // 华小靓，嘹亮女声
    zh(
        "chinese_huaxiaodong_common",
        Male,
        "cmn-Latn-pinyin+m4",
        40,
        true,
    ), // 华晓东，成熟男声
    zh(
        "chinese_huaxiaoyan_common",
        Female,
        "cmn-Latn-pinyin+f3",
        42,
        true,
    ), // 华小颜，严厉女声
    zh(
        "chinese_huaxiaoxuan_common",
        Female,
        "cmn-Latn-pinyin+f2",
        56,
        true,
    ), // 华小萱，台湾女声
    zh(
        "chinese_huaxiaowen_common",
        Female,
        "cmn-Latn-pinyin+f3",
        54,
        true,
    ), // 华小雯，柔美女声
    zh(
        "chinese_huaxiaoyang_common",
        Male,
        "cmn-Latn-pinyin+m5",
        56,
        true,
    ), // 华晓阳，朝气男声
    zh(
        "chinese_huaxiaomin_common",
        Female,
        "cmn-Latn-pinyin+f4",
        46,
        true,
    ), // 华小闽，闽南女声
    only_16k(zh(
        "chinese_huanvxia_literature",
        Female,
        "cmn-Latn-pinyin+f5",
        45,
        true,
    )), // 华女侠，武侠女声
    only_16k(zh(
        "chinese_huaxiaoxuan_literature",
        Male,
        "cmn-Latn-pinyin+m6",
        40,
        true,
    )), // 华晓悬，悬疑男声
    zh(
        "chinese_huaxiaomei_common",
        Female,
        "cmn-Latn-pinyin+f1",
        56,
        true,
    ), // 华小美，温柔女声
    zh(
        "chinese_huaxiaofei_common",
        Male,
        "cmn-Latn-pinyin+m7",
        55,
        true,
    ), // 华小飞，朝气男声
    zh(
        "chinese_huaxiaolong_common",
        Male,
        "cmn-Latn-pinyin+m1",
        58,
        true,
    ), // 华小龙，朝气男声
    zh(
        "chinese_huaxiaorui_common",
        Female,
        "cmn-Latn-pinyin+f2",
        48,
        true,
    ), // 华小蕊，知性女声
    zh(
        "chinese_huaxiaoru_common",
        Female,
        "cmn-Latn-pinyin+f4",
        50,
        true,
    ), // 华小汝，柔美女声
    zh(
        "chinese_huaxiaohan_common",
        Female,
        "cmn-Latn-pinyin+f5",
        48,
        true,
    ), // 华小涵，知性女声
    zh(
        "chinese_huaxiaoning_common",
        Male,
        "cmn-Latn-pinyin+m2",
        42,
        true,
    ), // 华小宁，沉稳男声
    zh(
        "chinese_huaxiaozhen_common",
        Female,
        "cmn-Latn-pinyin+f1",
        52,
        true,
    ), // 华小珍，温柔女声
    zh(
        "chinese_huaxiaoman_common",
        Female,
        "cmn-Latn-pinyin+f3",
        46,
        true,
    ), // 华小曼，温柔女声
    zh(
        "chinese_huaxiaofang_common",
        Female,
        "cmn-Latn-pinyin+f4",
        58,
        true,
    ), // 华小芳，朝气女声
    zh(
        "chinese_huaxiaojun_common",
        Female,
        "cmn-Latn-pinyin+f5",
        40,
        true,
    ), // 华小筠，成熟女声
    en("english_alvin_common", Male, "en-us+m2", true), // alvin，成熟男声
    en("english_amy_common", Female, "en-us+f3", true), // amy，成熟女声
];

/// The voice a SIS `property` names.
pub fn voice(name: &str) -> Option<&'static Voice> {
    VOICES.iter().find(|v| v.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_sis_voice_once() {
        // SIS-API.md §11.3: 11 normal and 27 premium voices
        assert_eq!(VOICES.len(), 38);
        assert_eq!(VOICES.iter().filter(|v| v.premium).count(), 27);
        let names: HashSet<&str> = VOICES.iter().map(|v| v.name).collect();
        assert_eq!(names.len(), VOICES.len(), "a voice is listed twice");
        assert!(
            voice("chinese_xiaoyan_common").is_some(),
            "the default voice"
        );
        assert!(voice("chinese_xiaoyan").is_none());
        assert!(voice("").is_none());
    }

    #[test]
    fn voices_map_to_espeak_by_language_and_gender() {
        for v in VOICES {
            let (base, variant) = v.espeak.split_once('+').expect("a variant");
            let want = match v.language {
                Language::Mandarin => "cmn-Latn-pinyin",
                Language::English => "en-us",
            };
            assert_eq!(base, want, "{}", v.name);
            assert_eq!(v.name.starts_with("english_"), v.language == English);
            let n: u8 = variant[1..].parse().expect("a numbered variant");
            match v.gender {
                Female | Child => assert!(variant.starts_with('f') && (1..=5).contains(&n)),
                Male => assert!(variant.starts_with('m') && (1..=7).contains(&n)),
            }
            assert!(v.espeak_pitch < 100);
            if v.gender == Child {
                assert!(v.espeak_pitch >= 75, "{}: a child is higher", v.name);
            }
        }
        // no two voices sound alike
        let sounds: HashSet<(&str, u8)> =
            VOICES.iter().map(|v| (v.espeak, v.espeak_pitch)).collect();
        assert_eq!(sounds.len(), VOICES.len());
    }

    #[test]
    fn literature_voices_are_16k_only() {
        let only: Vec<&str> = VOICES
            .iter()
            .filter(|v| v.only_16k)
            .map(|v| v.name)
            .collect();
        assert_eq!(
            only,
            [
                "chinese_huanvxia_literature",
                "chinese_huaxiaoxuan_literature"
            ]
        );
        let v = voice("chinese_huanvxia_literature").expect("listed");
        assert!(v.offers(16000) && !v.offers(8000) && !v.offers(22050));
        let d = voice("chinese_xiaoyan_common").expect("listed");
        assert!(d.offers(8000) && d.offers(16000));
    }
}
