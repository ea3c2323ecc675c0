//! Hot-word vocabularies (SIS-API.md §10): the create/update body with every
//! field rule, the list query, and the response bodies.
//! `POST/GET /v1/{project_id}/asr/vocabularies`,
//! `PUT/GET/DELETE /v1/{project_id}/asr/vocabularies/{vocabulary_id}`.
//!
//! The entries of `contents` follow `sis_core::hotwords` (SIS's words, plus
//! this server's hot word 3.0 syntax: docs/VOCABULARIES.md).

use serde::Serialize;
use serde_json::{Map, Value};
use sis_core::hotwords;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, SisCode};
use crate::short_audio::{body_object, field, json_body, string};

/// Longest `name`, in bytes.
pub const MAX_NAME_BYTES: usize = 32;
/// Longest `description`, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 255;
/// The `language` values accepted: the only one SIS documents. English
/// words are written upper-case inside a `chinese_mandarin` table.
pub const LANGUAGES: [&str; 1] = ["chinese_mandarin"];
/// Default and largest `limit` of the list.
pub const DEFAULT_LIMIT: usize = 10;
pub const MAX_LIMIT: usize = 1000;
/// Largest body a vocabulary of `max_words` entries may need: each entry of
/// at most 32 + 3 bytes, every byte `\u`-escaped (6 characters), plus quotes
/// and separators, and room for the other fields.
pub fn max_body_bytes(max_words: usize) -> usize {
    64 * 1024 + max_words.saturating_mul(256)
}

/// The create and update body as [`parse_vocabulary`] reads it, for the
/// OpenAPI document (the schema states the parser's rules).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct VocabularyBody {
    #[schema(pattern = "^[A-Za-z0-9_#-]{1,32}$")]
    name: String,
    /// At most 255 bytes of UTF-8.
    #[schema(max_length = 255)]
    description: Option<String>,
    #[schema(schema_with = language_schema)]
    language: String,
    /// Hot words (`词`, `词|N` with a weight from 1 to 10, `谐音=目标`):
    /// Chinese characters and upper-case Latin letters, at most 32 bytes
    /// each (docs/VOCABULARIES.md); at most `--vocabulary-max-words`
    /// (default 10000) entries: a setting of the server, so not a
    /// `maxItems` of the document.
    #[schema(min_items = 1, inline)]
    contents: Vec<HotWord>,
}

/// One entry of `contents`: the schema admits a subset of what
/// `sis_core::hotwords` accepts (words up to 10 characters, an optional
/// weight).
#[derive(ToSchema)]
#[schema(value_type = String, pattern = r"^[\u4e00-\u9fa5A-Z]{1,10}(\|([1-9]|10))?$")]
#[allow(dead_code)]
pub struct HotWord(String);

fn language_schema() -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(LANGUAGES))
}

/// The list's query, as [`parse_list`] reads it.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListQuery {
    /// Vocabularies skipped (default 0).
    #[param(minimum = 0)]
    offset: Option<u64>,
    /// Default 10.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Only vocabularies whose name contains this.
    name: Option<String>,
}

/// A validated create or update body (an update replaces every field).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VocabularyRequest {
    pub name: String,
    pub description: String,
    pub language: String,
    pub contents: Vec<String>,
}

/// A name: letters, digits, `_`, `-`, `#`, at most [`MAX_NAME_BYTES`].
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'#'))
}

fn optional_string<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, ApiError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => string(v, name).map(Some),
    }
}

/// Parses and checks a create or update body; `max_words` is the server's
/// limit of entries per vocabulary.
pub fn parse_vocabulary(body: &[u8], max_words: usize) -> Result<VocabularyRequest, ApiError> {
    let value = json_body(body)?;
    let obj = body_object(&value)?;

    let name = string(field(obj, "name", "name")?, "name")?;
    if name.is_empty() {
        return Err(ApiError::invalid("name cannot be empty"));
    }
    if !valid_name(name) {
        return Err(ApiError::invalid(format!(
            "'name' is invalid: at most {MAX_NAME_BYTES} bytes of letters, digits, '_', '-' and '#'"
        )));
    }

    let description = optional_string(obj, "description")?.unwrap_or("");
    if description.len() > MAX_DESCRIPTION_BYTES {
        return Err(ApiError::invalid(format!(
            "'description' is {} bytes long, more than {MAX_DESCRIPTION_BYTES}",
            description.len()
        )));
    }

    let language = string(field(obj, "language", "language")?, "language")?;
    if language.is_empty() {
        return Err(ApiError::invalid("language cannot be empty"));
    }
    if !LANGUAGES.contains(&language) {
        return Err(ApiError::new(
            SisCode::LanguageUnsupported,
            format!(
                "language '{}' is not supported; supported: {}",
                clip(language),
                LANGUAGES.join(", ")
            ),
        ));
    }

    let contents = field(obj, "contents", "contents")?
        .as_array()
        .ok_or_else(|| ApiError::invalid("'contents' must be an array of strings"))?;
    if contents.is_empty() {
        return Err(ApiError::invalid("contents cannot be empty"));
    }
    if contents.len() > max_words {
        return Err(ApiError::invalid(format!(
            "contents has {} hot words, more than the limit of {max_words}",
            contents.len()
        )));
    }
    let mut words = Vec::with_capacity(contents.len());
    for (i, v) in contents.iter().enumerate() {
        let entry = v
            .as_str()
            .ok_or_else(|| ApiError::invalid(format!("'contents[{i}]' must be a string")))?;
        if let Err(e) = hotwords::parse_entry(entry) {
            return Err(ApiError::new(
                SisCode::HotWordInvalid,
                format!("hot word contents[{i}] '{}' is illegal: {e}", clip(entry)),
            ));
        }
        words.push(entry.to_string());
    }
    Ok(VocabularyRequest {
        name: name.to_string(),
        description: description.to_string(),
        language: language.to_string(),
        contents: words,
    })
}

/// At most 64 characters of a value the client sent, for a message.
pub(crate) fn clip(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// A validated list request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListRequest {
    /// Vocabularies skipped (a row offset, as Huawei Cloud list APIs count).
    pub offset: usize,
    pub limit: usize,
    /// Only vocabularies whose name contains this.
    pub name: Option<String>,
}

fn number(name: &str, value: &str, lo: usize, hi: usize) -> Result<usize, ApiError> {
    let n: usize = value
        .parse()
        .ok()
        .filter(|n| (lo..=hi).contains(n))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "'{name}' is invalid: '{}', expected a whole number from {lo} to {hi}",
                clip(value)
            ))
        })?;
    Ok(n)
}

/// The list's `offset` and `limit` (query) and the optional name filter
/// (query `name`, or the body `{"name": ...}` the v3 SDK may send on this
/// GET; the body's wins).
pub fn parse_list(query: Option<&str>, body: &[u8]) -> Result<ListRequest, ApiError> {
    let mut req = ListRequest {
        offset: 0,
        limit: DEFAULT_LIMIT,
        name: None,
    };
    for (k, v) in crate::query::pairs(query)? {
        match k.as_str() {
            "offset" => req.offset = number("offset", &v, 0, i64::MAX as usize)?,
            "limit" => req.limit = number("limit", &v, 1, MAX_LIMIT)?,
            "name" => req.name = Some(v).filter(|n| !n.is_empty()),
            _ => {}
        }
    }
    if !body.iter().all(u8::is_ascii_whitespace) {
        let value = json_body(body)?;
        let obj = body_object(&value)?;
        if let Some(n) = optional_string(obj, "name")? {
            req.name = Some(n.to_string()).filter(|n| !n.is_empty());
        }
    }
    Ok(req)
}

/// A vocabulary as GET shows it.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[schema(as = Vocabulary)]
pub struct VocabularyView<'a> {
    pub vocabulary_id: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub language: &'a str,
    pub contents: &'a [String],
}

/// A vocabulary as the list shows it.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[schema(as = VocabularySummary)]
pub struct SummaryView<'a> {
    pub vocabulary_id: &'a str,
    pub name: &'a str,
    pub language: &'a str,
    pub description: &'a str,
}

/// `{"vocabulary_id": ...}`, the create and update response.
#[derive(Serialize, ToSchema)]
pub struct VocabularyId<'a> {
    pub vocabulary_id: &'a str,
}

pub fn id_body(vocabulary_id: &str) -> String {
    serde_json::to_string(&VocabularyId { vocabulary_id }).unwrap_or_default()
}

/// The list response.
#[derive(Serialize, ToSchema)]
pub struct VocabularyList<'a> {
    /// How many vocabularies the filter matches.
    pub count: usize,
    /// The page asked for.
    pub result: &'a [SummaryView<'a>],
}

/// The GET body.
pub fn vocabulary_body(v: &VocabularyView<'_>) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// `{"count": N, "result": [...]}`: `count` is the number of vocabularies
/// the filter matches, `result` the page asked for.
pub fn list_body(count: usize, page: &[SummaryView<'_>]) -> String {
    serde_json::to_string(&VocabularyList {
        count,
        result: page,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    fn ok() -> Value {
        serde_json::json!({"name": "test_vocab", "description": "desc",
                           "language": "chinese_mandarin", "contents": ["华为", "HUAWEI"]})
    }

    fn refused(v: Value) -> ApiError {
        parse_vocabulary(&body(v), 5).unwrap_err()
    }

    #[test]
    fn a_valid_body() {
        let r = parse_vocabulary(&body(ok()), 5).unwrap();
        assert_eq!(r.name, "test_vocab");
        assert_eq!(r.description, "desc");
        assert_eq!(r.contents, ["华为", "HUAWEI"]);
        let mut v = ok();
        v.as_object_mut().unwrap().remove("description");
        v["contents"] = serde_json::json!(["华为云|8", "花为=华为", "SIS"]);
        let r = parse_vocabulary(&body(v), 5).unwrap();
        assert_eq!(r.description, "");
        assert_eq!(r.contents.len(), 3);
        let mut v = ok();
        v["name"] = "A-b_9#".into();
        v["description"] = "描".repeat(85).into();
        assert!(parse_vocabulary(&body(v), 5).is_ok());
    }

    #[test]
    fn every_field_rule() {
        let with = |k: &str, x: Value| {
            let mut v = ok();
            v[k] = x;
            v
        };
        let without = |k: &str| {
            let mut v = ok();
            v.as_object_mut().unwrap().remove(k);
            v
        };
        let cases: Vec<(Value, &str, &str)> = vec![
            (without("name"), "SIS.0012", "'name' is required"),
            (with("name", "".into()), "SIS.0032", "name cannot be empty"),
            (with("name", "a b".into()), "SIS.0032", "'name' is invalid"),
            (with("name", "热词".into()), "SIS.0032", "'name' is invalid"),
            (with("name", "a.b".into()), "SIS.0032", "'name' is invalid"),
            (with("name", "a".repeat(33).into()), "SIS.0032", "32 bytes"),
            (with("name", 5.into()), "SIS.0032", "must be a string"),
            (
                with("description", "d".repeat(256).into()),
                "SIS.0032",
                "255",
            ),
            (
                with("description", "描".repeat(86).into()),
                "SIS.0032",
                "255",
            ),
            (
                with("description", true.into()),
                "SIS.0032",
                "must be a string",
            ),
            (without("language"), "SIS.0012", "'language' is required"),
            (
                with("language", "".into()),
                "SIS.0032",
                "language cannot be empty",
            ),
            (
                with("language", "english_us".into()),
                "SIS.0205",
                "not supported",
            ),
            (without("contents"), "SIS.0012", "'contents' is required"),
            (with("contents", "华为".into()), "SIS.0032", "array"),
            (
                with("contents", serde_json::json!([])),
                "SIS.0032",
                "cannot be empty",
            ),
            (
                with("contents", serde_json::json!(["华为", 1])),
                "SIS.0032",
                "contents[1]",
            ),
            (
                with(
                    "contents",
                    serde_json::json!(["A", "B", "C", "D", "E", "F"]),
                ),
                "SIS.0032",
                "more than the limit of 5",
            ),
            (
                with("contents", serde_json::json!(["华为1"])),
                "SIS.0203",
                "digit",
            ),
            (
                with("contents", serde_json::json!(["华 为"])),
                "SIS.0203",
                "spaces",
            ),
            (
                with("contents", serde_json::json!(["Huawei"])),
                "SIS.0203",
                "upper-case",
            ),
            (
                with("contents", serde_json::json!(["华为！"])),
                "SIS.0203",
                "character",
            ),
            (
                with("contents", serde_json::json!(["华".repeat(11)])),
                "SIS.0203",
                "33 bytes",
            ),
            (
                with("contents", serde_json::json!([""])),
                "SIS.0203",
                "empty",
            ),
            (
                with("contents", serde_json::json!(["华为|11"])),
                "SIS.0203",
                "weight",
            ),
            (
                with("contents", serde_json::json!(["a=b=c"])),
                "SIS.0203",
                "contents[0]",
            ),
        ];
        for (v, code, msg) in cases {
            let e = refused(v.clone());
            assert_eq!(e.code.as_str(), code, "{v}: {e}");
            assert!(e.message.contains(msg), "{v}: {e}");
        }
        assert_eq!(
            parse_vocabulary(b"{", 5).unwrap_err().code,
            SisCode::InvalidParam
        );
        assert_eq!(
            parse_vocabulary(b"[]", 5).unwrap_err().code,
            SisCode::InvalidParam
        );
    }

    #[test]
    fn list_queries() {
        assert_eq!(
            parse_list(None, b"").unwrap(),
            ListRequest {
                offset: 0,
                limit: 10,
                name: None
            }
        );
        let r = parse_list(Some("limit=10&offset=20"), b"").unwrap();
        assert_eq!((r.offset, r.limit), (20, 10));
        let r = parse_list(Some("limit=3"), br#"{"name": "vocab"}"#).unwrap();
        assert_eq!((r.limit, r.name.as_deref()), (3, Some("vocab")));
        let r = parse_list(Some("name=a%23b"), b"  ").unwrap();
        assert_eq!(r.name.as_deref(), Some("a#b"));
        let r = parse_list(Some("name=x"), br#"{"name": null}"#).unwrap();
        assert_eq!(r.name.as_deref(), Some("x"));
        assert!(parse_list(None, b"{}").unwrap().name.is_none());
        for bad in [
            "limit=0",
            "limit=1001",
            "limit=x",
            "offset=-1",
            "offset=",
            "name=%zz",
        ] {
            let e = parse_list(Some(bad), b"").unwrap_err();
            assert_eq!(e.code, SisCode::InvalidParam, "{bad}");
        }
        assert!(parse_list(None, b"not json").is_err());
        assert!(parse_list(None, br#"{"name": 1}"#).is_err());
    }

    #[test]
    fn response_shapes() {
        let v: Value = serde_json::from_str(&id_body("A-1")).unwrap();
        assert_eq!(v, serde_json::json!({"vocabulary_id": "A-1"}));
        let contents = vec!["华为".to_string()];
        let v: Value = serde_json::from_str(&vocabulary_body(&VocabularyView {
            vocabulary_id: "A-1",
            name: "n",
            description: "",
            language: "chinese_mandarin",
            contents: &contents,
        }))
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"vocabulary_id": "A-1", "name": "n", "description": "",
                               "language": "chinese_mandarin", "contents": ["华为"]})
        );
        let page = [SummaryView {
            vocabulary_id: "A-1",
            name: "n",
            language: "chinese_mandarin",
            description: "d",
        }];
        let v: Value = serde_json::from_str(&list_body(3, &page)).unwrap();
        assert_eq!(v["count"], 3);
        assert_eq!(v["result"][0]["vocabulary_id"], "A-1");
        assert_eq!(v["result"][0].as_object().unwrap().len(), 4);
        let v: Value = serde_json::from_str(&list_body(0, &[])).unwrap();
        assert_eq!(v, serde_json::json!({"count": 0, "result": []}));
    }
}
