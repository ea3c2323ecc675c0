//! Authentication at the edge: the AK/SK signature or the `X-Auth-Token` of
//! every `/v1/{project_id}/...` request (REST and WebSocket upgrade; a
//! browser's upgrade offers its token as a `sis-token.<token>` subprotocol
//! instead, the console's way), the
//! project check, the failure lock, and the IAM-style token API
//! (`POST`/`DELETE /v3/auth/tokens`).
//!
//! Never logged: secret keys, passwords, tokens.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::IntoResponse;
use sis_auth::secrets;
use sis_auth::sign::{self, Authorization, RequestParts};
use sis_core::time::{now_ms, rfc3339_utc};

use crate::config::AuthMode;
use crate::errors::{self, AppError, HandlerResult};
use crate::state::{
    clip, AuthState, Principal, RequestLog, MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_TOKEN_BODY_BYTES,
    MAX_URI_BYTES,
};

/// Gives the argon2id block of a finished password check back to the
/// system. glibc's threshold for mapping a block on its own rises to the
/// size of the last one freed, so from the second check on the 19 MiB block
/// comes from the arena of the thread that runs it and stays there when
/// freed: a flood of sign-ins kept ~19 MiB per arena (1 GB measured).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How long a sign-in waits for a free password check before 429.
const PASSWORD_CHECK_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// `{project_id}` of `/v1/{project_id}/...`.
fn path_project(path: &str) -> Option<&str> {
    let mut it = path.split('/');
    match (it.next(), it.next(), it.next()) {
        (Some(""), Some("v1"), Some(p)) if !p.is_empty() => Some(p),
        _ => None,
    }
}

/// Middleware on every `/v1/{project_id}/...` route: the only place a
/// [`Principal`] is made.
pub async fn authenticate(
    State(st): State<Arc<AuthState>>,
    mut req: Request,
    next: Next,
) -> HandlerResult {
    let project_id = path_project(req.uri().path())
        .map(str::to_string)
        .ok_or_else(|| errors::unauthenticated("project id not found in the path"))?;
    // the project asked for, in the request's log line (refused or not)
    if let Some(log) = req.extensions().get::<RequestLog>() {
        log.note(|n| n.project = Some(clip(&project_id)));
    }
    if st.mode == AuthMode::Sis {
        // refusals are counted by what was presented (`sis_auth_failures_total`)
        let token = header(req.headers(), "x-auth-token")
            .map(str::to_string)
            .or_else(|| subprotocol_token(&req));
        req = if let Some(token) = token {
            check_token(&st, &token, &project_id)
                .await
                .inspect_err(|_| crate::metrics::auth_failure("token"))?;
            req
        } else if req.headers().contains_key("authorization") {
            check_signature(&st, req, &project_id)
                .await
                .inspect_err(|_| crate::metrics::auth_failure("signature"))?
        } else {
            crate::metrics::auth_failure("no_credentials");
            return Err(errors::unauthenticated("x-auth-token not found"));
        };
    }
    req.extensions_mut().insert(Principal { project_id });
    Ok(next.run(req).await)
}

/// The subprotocol a browser offers beside `sis` (`ws.rs`'s `SUBPROTOCOL`) to
/// carry its token (`sis-token.<token>`): a browser cannot set headers on a
/// WebSocket, only `Sec-WebSocket-Protocol`. Never chosen for the answer.
pub const TOKEN_SUBPROTOCOL_PREFIX: &str = "sis-token.";

/// The token of a WebSocket upgrade request (GET with `Upgrade: websocket`)
/// offered as a `sis-token.<token>` subprotocol; `None` for any other
/// request, so a REST call cannot present a token this way.
fn subprotocol_token(req: &Request) -> Option<String> {
    let upgrade = req.method() == axum::http::Method::GET
        && header(req.headers(), "upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        return None;
    }
    req.headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(TOKEN_SUBPROTOCOL_PREFIX))
        .map(str::to_string)
}

async fn check_token(st: &AuthState, token: &str, project_id: &str) -> Result<(), AppError> {
    let t = st
        .store
        .token(&secrets::token_digest(token))
        .await
        .map_err(|e| errors::store(&e))?
        .filter(|t| t.revoked_ms.is_none())
        .ok_or_else(|| errors::unauthenticated("decrypt token fail"))?;
    if t.expires_ms <= now_ms() {
        return Err(errors::unauthenticated(&format!(
            "token expires, expires_at: {}",
            rfc3339_utc(t.expires_ms, 6)
        )));
    }
    match t.project {
        None => Err(errors::token_rejected(
            "the token is not scoped to a project",
        )),
        Some(p) if p.id != project_id => Err(errors::token_rejected(
            "the token belongs to another project",
        )),
        Some(_) => Ok(()),
    }
}

fn unix_now() -> i64 {
    now_ms().div_euclid(1000)
}

async fn check_signature(
    st: &AuthState,
    req: Request,
    project_id: &str,
) -> Result<Request, AppError> {
    let (req, cred) = verify_signature(st, req).await?;
    if cred.project_id != project_id {
        return Err(errors::other_project());
    }
    Ok(req)
}

/// An AK/SK-signed request checked: the request (its body read back in)
/// and the access key's credential.
async fn verify_signature(
    st: &AuthState,
    req: Request,
) -> Result<(Request, sis_store::Credential), AppError> {
    let malformed = || errors::unauthenticated("the Authorization header is malformed");
    let auth_value = header(req.headers(), "authorization")
        .ok_or_else(malformed)?
        .to_string();
    let auth = Authorization::parse(&auth_value).map_err(|_| malformed())?;
    let now = unix_now();
    if st.ak_failures.is_locked(auth.access_key, now) {
        return Err(errors::unauthenticated(
            "AK access failed to reach the limit, forbidden",
        ));
    }
    let unknown_key = || errors::unauthenticated("Get secretKey failed");
    let cred = st
        .store
        .credential(auth.access_key)
        .await
        .map_err(|e| errors::store(&e))?
        .filter(|c| c.revoked_ms.is_none())
        .ok_or_else(unknown_key)?;
    let key = st
        .master_key
        .as_ref()
        .ok_or_else(|| errors::internal_error().detail("no master key to unseal secret keys"))?;
    let secret = key
        .open(&cred.access_key, &cred.secret_sealed)
        .map_err(|_| {
            unknown_key()
                .detail(format!(
                    "secret key of {} cannot be unsealed with the configured master key",
                    cred.access_key
                ))
                .server_fault()
        })?;

    let (parts, body) = req.into_parts();
    // an unsigned payload (what the v3 SDK sends for octet-stream uploads)
    // is not read here: it streams on to the handler, whatever its size
    let (body, body_hash) = match header(&parts.headers, "x-sdk-content-sha256") {
        Some(v) if v == sign::UNSIGNED_PAYLOAD => (body, v.to_string()),
        _ => {
            let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
                .await
                .map_err(|e| errors::body(&e))?;
            let hash = sign::body_sha256(&bytes);
            (Body::from(bytes), hash)
        }
    };
    let request = RequestParts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        body_hash: &body_hash,
    };
    match sign::verify(secret.as_bytes(), &auth, &request, now) {
        Ok(()) => st.ak_failures.record_success(auth.access_key, now),
        Err(e) => {
            let locked = st.ak_failures.record_failure(auth.access_key, now);
            if locked {
                tracing::warn!(
                    access_key = auth.access_key,
                    "access key locked after repeated signature failures"
                );
            }
            return Err(errors::signature(&e));
        }
    }
    Ok((Request::from_parts(parts, body), cred))
}

/// `GET /v3/projects?name=REGION` (IAM's KeystoneListProjects, as the v3
/// SDK calls it to find its project when `BasicCredentials` has none): the
/// caller's own project, signed with AK/SK or with a token scoped to it,
/// when its name is `name` (or no name is asked); else an empty list. Never
/// another project. Without `--auth sis` there is no caller to answer for.
pub async fn list_projects(State(st): State<Arc<AuthState>>, req: Request) -> HandlerResult {
    if st.mode != AuthMode::Sis {
        return Err(unauthorized("IAM project discovery needs --auth sis"));
    }
    let name: Option<String> = sis_protocol::query::pairs(req.uri().query())?
        .into_iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v);
    let project_id = if let Some(token) = header(req.headers(), "x-auth-token") {
        let t = st
            .store
            .token(&secrets::token_digest(token))
            .await
            .map_err(|e| errors::store(&e))?
            .filter(|t| t.revoked_ms.is_none() && t.expires_ms > now_ms())
            .ok_or_else(|| errors::unauthenticated("decrypt token fail"))?;
        t.project.map(|p| p.id)
    } else if req.headers().contains_key("authorization") {
        let (_, cred) = verify_signature(&st, req).await?;
        Some(cred.project_id)
    } else {
        return Err(errors::unauthenticated("x-auth-token not found"));
    };
    let project = match project_id {
        Some(id) => st.store.project(&id).await.map_err(|e| errors::store(&e))?,
        None => None,
    };
    let projects: Vec<serde_json::Value> = project
        .into_iter()
        .filter(|p| name.as_deref().is_none_or(|n| n == p.name))
        .map(|p| {
            serde_json::json!({
                "id": p.id, "name": p.name, "domain_id": p.domain.id, "parent_id": p.domain.id,
                "description": "", "enabled": true, "is_domain": false,
                "links": {"self": format!("/v3/projects/{}", p.id)},
            })
        })
        .collect();
    Ok(axum::Json(serde_json::json!({
        "links": {"self": "/v3/projects", "previous": null, "next": null},
        "projects": projects,
    }))
    .into_response())
}

/// Header and URI size limits of the gateway (APIG.0201), before anything else.
pub async fn size_limits(req: Request, next: Next) -> HandlerResult {
    if req.uri().to_string().len() > MAX_URI_BYTES {
        return Err(errors::uri_too_large());
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(errors::headers_too_large());
    }
    Ok(next.run(req).await)
}

// ---- IAM-style token API ----

fn str_at<'a>(v: &'a serde_json::Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str()
}

fn domain_json(d: &sis_store::Domain) -> serde_json::Value {
    serde_json::json!({"id": d.id, "name": d.name})
}

fn bad_request(message: &str) -> AppError {
    AppError::iam(StatusCode::BAD_REQUEST, message)
}

fn unauthorized(message: &str) -> AppError {
    AppError::iam(StatusCode::UNAUTHORIZED, message)
}

/// The store failed during sign-in or revocation.
fn iam_store_error(e: &sis_store::StoreError) -> AppError {
    AppError::iam(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        .detail(format!("store unavailable: {e}"))
}

/// `POST /v3/auth/tokens`: password method, project- or domain-scoped.
pub async fn issue_token(
    State(st): State<Arc<AuthState>>,
    log: Option<Extension<RequestLog>>,
    body: Body,
) -> HandlerResult {
    let log = log.map(|Extension(l)| l).unwrap_or_default();
    let body = axum::body::to_bytes(body, MAX_TOKEN_BODY_BYTES)
        .await
        .map_err(|e| errors::body(&e))?;
    let v = serde_json::from_slice::<serde_json::Value>(&body)
        .map_err(|_| bad_request("The request body is not valid JSON."))?;
    let identity = &v["auth"]["identity"];
    let methods_ok = identity["methods"]
        .as_array()
        .is_some_and(|m| m.iter().any(|x| x == "password"));
    if !methods_ok {
        return Err(bad_request(
            "Only the password identity method is supported.",
        ));
    }
    let user_v = &identity["password"]["user"];
    let (Some(name), Some(password)) = (str_at(user_v, &["name"]), str_at(user_v, &["password"]))
    else {
        return Err(bad_request(
            "auth.identity.password.user needs name and password.",
        ));
    };
    let domain = str_at(user_v, &["domain", "name"])
        .or_else(|| str_at(user_v, &["domain", "id"]))
        .ok_or_else(|| bad_request("auth.identity.password.user.domain needs name or id."))?;
    log.note(|n| n.user = Some(clip(&format!("{domain}/{name}"))));
    let now = unix_now();
    let lock_key = format!("{domain}\u{0}{name}");
    let who = || format!("domain {domain}, user {name}");
    if st.user_failures.is_locked(&lock_key, now) {
        return Err(unauthorized(
            "The account is locked after repeated sign-in failures; retry later.",
        )
        .detail(who()));
    }
    // argon2id needs 19 MiB and a core for a while: only a few at once,
    // and nothing queues behind them
    let permit = tokio::time::timeout(
        PASSWORD_CHECK_WAIT,
        st.password_checks.clone().acquire_owned(),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .ok_or_else(errors::sign_ins_throttled)?;
    let user = st
        .store
        .user_named(domain, name)
        .await
        .map_err(|e| iam_store_error(&e))?;
    let password = password.to_string();
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || {
        // held until the hash is done, even if the client has gone
        let _permit = permit;
        let ok = match hash {
            Some(h) => secrets::verify_password(&password, &h),
            None => {
                secrets::burn_password_time(&password);
                false
            }
        };
        release_freed_memory();
        ok
    })
    .await
    .unwrap_or(false);
    let user = match (ok, user) {
        (true, Some(u)) => u,
        _ => {
            st.user_failures.record_failure(&lock_key, now);
            crate::metrics::auth_failure("password");
            return Err(unauthorized("The username or password is wrong.").detail(who()));
        }
    };
    st.user_failures.record_success(&lock_key, now);

    let scope = &v["auth"]["scope"];
    let project = if scope.get("project").is_some() {
        let found = if let Some(id) = str_at(scope, &["project", "id"]) {
            st.store.project(id).await
        } else if let Some(pname) = str_at(scope, &["project", "name"]) {
            st.store.project_named(&user.domain.id, pname).await
        } else {
            return Err(bad_request("auth.scope.project needs id or name."));
        };
        match found.map_err(|e| iam_store_error(&e))? {
            Some(p) if p.domain.id == user.domain.id => Some(p),
            _ => {
                return Err(
                    unauthorized("The project does not exist or the user may not use it.")
                        .detail(who()),
                )
            }
        }
    } else {
        None
    };

    log.note(|n| n.project = project.as_ref().map(|p| p.id.clone()));
    let token = secrets::new_token();
    let issued = now_ms();
    let expires = issued + st.token_ttl_s * 1000;
    st.store
        .insert_token(
            &secrets::token_digest(&token),
            &user.id,
            project.as_ref().map(|p| p.id.as_str()),
            issued,
            expires,
        )
        .await
        .map_err(|e| iam_store_error(&e))?;
    let mut tok = serde_json::json!({
        "methods": ["password"],
        "issued_at": rfc3339_utc(issued, 6),
        "expires_at": rfc3339_utc(expires, 6),
        "user": {"id": user.id, "name": user.name, "domain": domain_json(&user.domain), "password_expires_at": ""},
        "roles": [{"id": "0", "name": "sis_user"}],
        "catalog": [],
    });
    match &project {
        Some(p) => {
            tok["project"] =
                serde_json::json!({"id": p.id, "name": p.name, "domain": domain_json(&p.domain)})
        }
        None => tok["domain"] = domain_json(&user.domain),
    }
    let subject = HeaderValue::from_str(&token).map_err(|_| {
        AppError::iam(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            .detail("a new token is not a valid header value")
    })?;
    let mut r = (
        StatusCode::CREATED,
        [("content-type", "application/json;charset=utf8")],
        serde_json::json!({ "token": tok }).to_string(),
    )
        .into_response();
    r.headers_mut().insert("x-subject-token", subject);
    Ok(r)
}

/// `DELETE /v3/auth/tokens`: revokes `X-Subject-Token`; the caller's valid
/// `X-Auth-Token` must belong to the same user.
pub async fn revoke_token(State(st): State<Arc<AuthState>>, headers: HeaderMap) -> HandlerResult {
    let (Some(caller), Some(subject)) = (
        header(&headers, "x-auth-token"),
        header(&headers, "x-subject-token"),
    ) else {
        return Err(bad_request(
            "X-Auth-Token and X-Subject-Token are required.",
        ));
    };
    let now = now_ms();
    let valid = |t: &Option<sis_store::Token>| {
        t.as_ref()
            .filter(|t| t.revoked_ms.is_none() && t.expires_ms > now)
            .map(|t| t.user.id.clone())
    };
    let subject_digest = secrets::token_digest(subject);
    let c = st
        .store
        .token(&secrets::token_digest(caller))
        .await
        .map_err(|e| iam_store_error(&e))?;
    let s = st
        .store
        .token(&subject_digest)
        .await
        .map_err(|e| iam_store_error(&e))?;
    let caller_user = valid(&c).ok_or_else(|| unauthorized("The X-Auth-Token is not valid."))?;
    match valid(&s) {
        Some(u) if u == caller_user => {
            st.store
                .revoke_token(&subject_digest)
                .await
                .map_err(|e| iam_store_error(&e))?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(AppError::iam(
            StatusCode::NOT_FOUND,
            "The X-Subject-Token was not found.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::path_project;

    #[test]
    fn project_from_path() {
        assert_eq!(path_project("/v1/abc/asr/short-audio"), Some("abc"));
        assert_eq!(path_project("/v1//asr"), None);
        assert_eq!(path_project("/v2/abc/asr"), None);
        assert_eq!(path_project("v1/abc"), None);
    }
}
