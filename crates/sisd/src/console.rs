//! The web console at `/console`: a few static files (crates/sisd/console/,
//! plain HTML, CSS and JavaScript, no build step) compiled into the binary,
//! and `voices.json`, the TTS voices `sis_engine::tts::VOICES` knows.
//!
//! The routes are public: the page signs in itself (`POST /v3/auth/tokens`)
//! and calls the SIS API with the token like any other client; a WebSocket
//! offers it as a subprotocol (`auth.rs`). Every answer carries a strict
//! Content-Security-Policy (this origin only, no inline script or style),
//! so nothing is loaded from elsewhere and the console works offline.

use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::errors::{self, HandlerResult};

/// Only this origin: scripts, styles, the AudioWorklet, fetch and
/// WebSocket (`connect-src 'self'` covers ws: and wss: of this host);
/// `blob:` media for the synthesised audio; nothing may frame the page.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A file of the console: its name under `/console/`, content type, bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("../console/index.html"),
};

const ASSETS: &[Asset] = &[
    INDEX,
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../console/console.css"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../console/console.js"),
    },
    Asset {
        name: "capture-worklet.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../console/capture-worklet.js"),
    },
];

fn respond(content_type: &'static str, body: String) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // the files change with the binary: always revalidate
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `GET /console` and `GET /console/`: the page.
pub async fn index() -> Response {
    respond(INDEX.content_type, INDEX.body.to_string())
}

/// `GET /console/{file}`: a file of the console, or the gateway's 404.
pub async fn asset(Path(file): Path<String>) -> HandlerResult {
    if file == "voices.json" {
        return Ok(respond("application/json", voices_json()));
    }
    ASSETS
        .iter()
        .find(|a| a.name == file)
        .map(|a| respond(a.content_type, a.body.to_string()))
        .ok_or_else(errors::not_found)
}

/// The voices `POST /v1/{project_id}/tts` takes, for the playground's list.
fn voices_json() -> String {
    let voices: Vec<serde_json::Value> = sis_engine::tts::VOICES
        .iter()
        .map(|v| {
            serde_json::json!({
                "property": v.name,
                "gender": v.gender.as_str(),
                "premium": v.premium,
                "only_16k": v.only_16k,
            })
        })
        .collect();
    serde_json::json!({ "voices": voices }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_names_is_served() {
        for a in ASSETS.iter().filter(|a| a.name != "index.html") {
            assert!(
                INDEX.body.contains(&format!("/console/{}", a.name))
                    || ASSETS.iter().any(|b| b.body.contains(a.name)),
                "{} is served but nothing names it",
                a.name
            );
        }
    }

    #[test]
    fn no_inline_script_or_style_and_nothing_from_elsewhere() {
        for a in ASSETS {
            let body = a.body;
            assert!(!body.contains("<script>"), "{}: inline script", a.name);
            assert!(!body.contains("<style"), "{}: inline style", a.name);
            assert!(!body.contains(" style=\""), "{}: style attribute", a.name);
            assert!(!body.contains(" onclick="), "{}: inline handler", a.name);
            assert!(!body.contains("http://"), "{}: another origin", a.name);
            assert!(!body.contains("https://"), "{}: another origin", a.name);
        }
    }

    #[test]
    fn voices_are_the_engines() {
        let v: serde_json::Value =
            serde_json::from_str(&voices_json()).expect("voices.json is JSON");
        let voices = v["voices"].as_array().expect("a list");
        assert_eq!(voices.len(), sis_engine::tts::VOICES.len());
        assert!(voices
            .iter()
            .any(|v| v["property"] == "chinese_xiaoyan_common"));
    }
}
