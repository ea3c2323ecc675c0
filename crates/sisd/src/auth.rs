//! Authentication at the edge: the AK/SK signature or the `X-Auth-Token` of
//! every `/v1/{project_id}/...` request (REST and WebSocket upgrade), the
//! project check, the failure lock, and the IAM-style token API
//! (`POST`/`DELETE /v3/auth/tokens`).
//!
//! Never logged: secret keys, passwords, tokens.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sis_auth::secrets::{self, MasterKey};
use sis_auth::sign::{self, Authorization, RequestParts, SignError};
use sis_auth::FailureLimiter;
use sis_core::time::{now_ms, rfc3339_utc};
use sis_protocol::{ApiError, SisCode};
use sis_store::Store;

use crate::config::AuthMode;
use crate::errors::ErrorResponse;
use crate::server::{RequestId, MAX_BODY_BYTES};

const IAM_PREFIX: &str = "Incorrect IAM authentication information: ";

pub struct AuthState {
    pub mode: AuthMode,
    pub store: Store,
    pub master_key: Option<MasterKey>,
    pub token_ttl_s: i64,
    /// 5 signature failures of one access key lock it for 5 minutes.
    pub ak_failures: FailureLimiter,
    /// 5 wrong passwords of one user lock its sign-in for 5 minutes.
    pub user_failures: FailureLimiter,
    /// Password checks (argon2id, 19 MiB each) running at once; a sign-in
    /// that finds none free is refused at once (429 APIG.0308).
    pub password_checks: Arc<tokio::sync::Semaphore>,
}

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

/// Who is calling, once authenticated; handlers read it from the extensions.
#[derive(Clone, Debug)]
pub struct Principal {
    pub project_id: String,
}

fn gateway(message: &str) -> ApiError {
    ApiError::new(SisCode::GatewayAuth, format!("{IAM_PREFIX}{message}"))
}

fn deny(rid: &RequestId, error: ApiError) -> Response {
    tracing::info!(
        request_id = rid.0,
        code = error.code.as_str(),
        msg = %error.message,
        "authentication refused"
    );
    ErrorResponse {
        error,
        request_id: rid.0.clone(),
    }
    .into_response()
}

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

/// Middleware on every `/v1/{project_id}/...` route.
pub async fn authenticate(State(st): State<Arc<AuthState>>, req: Request, next: Next) -> Response {
    let rid = req
        .extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(|| RequestId(String::new()));
    let Some(project_id) = path_project(req.uri().path()).map(str::to_string) else {
        return deny(&rid, gateway("project id not found in the path"));
    };
    if st.mode == AuthMode::None {
        let mut req = req;
        req.extensions_mut().insert(Principal { project_id });
        return next.run(req).await;
    }
    let result = if let Some(token) = header(req.headers(), "x-auth-token") {
        let token = token.to_string();
        check_token(&st, &token, &project_id).await.map(|()| req)
    } else if req.headers().contains_key("authorization") {
        check_signature(&st, req, &project_id).await
    } else {
        Err(gateway("x-auth-token not found"))
    };
    match result {
        Ok(mut req) => {
            req.extensions_mut().insert(Principal { project_id });
            next.run(req).await
        }
        Err(e) => deny(&rid, e),
    }
}

async fn check_token(st: &AuthState, token: &str, project_id: &str) -> Result<(), ApiError> {
    let t = st
        .store
        .token(&secrets::token_digest(token))
        .await
        .map_err(store_error)?
        .filter(|t| t.revoked_ms.is_none())
        .ok_or_else(|| gateway("decrypt token fail"))?;
    if t.expires_ms <= now_ms() {
        return Err(gateway(&format!(
            "token expires, expires_at: {}",
            rfc3339_utc(t.expires_ms, 6)
        )));
    }
    match t.project {
        None => Err(ApiError::new(
            SisCode::TokenRejected,
            "token verification failed: the token is not scoped to a project",
        )),
        Some(p) if p.id != project_id => Err(ApiError::new(
            SisCode::TokenRejected,
            "token verification failed: the token belongs to another project",
        )),
        Some(_) => Ok(()),
    }
}

fn store_error(e: sis_store::StoreError) -> ApiError {
    tracing::error!(error = %e, "store unavailable during authentication");
    ApiError::new(SisCode::Internal, "internal service error").with_status(500)
}

fn unix_now() -> i64 {
    now_ms().div_euclid(1000)
}

async fn check_signature(
    st: &AuthState,
    req: Request,
    project_id: &str,
) -> Result<Request, ApiError> {
    let auth_value = header(req.headers(), "authorization")
        .ok_or_else(|| gateway("the Authorization header is malformed"))?
        .to_string();
    let auth = Authorization::parse(&auth_value)
        .map_err(|_| gateway("the Authorization header is malformed"))?;
    let now = unix_now();
    if st.ak_failures.is_locked(auth.access_key, now) {
        return Err(gateway("AK access failed to reach the limit, forbidden"));
    }
    let cred = st
        .store
        .credential(auth.access_key)
        .await
        .map_err(store_error)?
        .filter(|c| c.revoked_ms.is_none())
        .ok_or_else(|| gateway("Get secretKey failed"))?;
    let key = st.master_key.as_ref().ok_or_else(|| {
        ApiError::new(SisCode::Internal, "internal service error").with_status(500)
    })?;
    let secret = key
        .open(&cred.access_key, &cred.secret_sealed)
        .map_err(|_| {
            tracing::error!(
                access_key = cred.access_key,
                "secret key cannot be unsealed with the configured master key"
            );
            gateway("Get secretKey failed")
        })?;

    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(crate::server::body_error)?;
    let body_hash = match header(&parts.headers, "x-sdk-content-sha256") {
        Some(v) if v == sign::UNSIGNED_PAYLOAD => v.to_string(),
        _ => sign::body_sha256(&bytes),
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
            return Err(gateway(&match e {
                SignError::Expired => "calc ak sk signature fail:signature expired".to_string(),
                SignError::MissingDate => "x-sdk-date not found".to_string(),
                SignError::BadDate => "x-sdk-date is malformed".to_string(),
                SignError::MissingSignedHeader(h) => {
                    format!("verify aksk signature fail, signed header {h} not found")
                }
                SignError::Malformed => "the Authorization header is malformed".to_string(),
                SignError::Mismatch => "verify aksk signature fail".to_string(),
            }));
        }
    }
    if cred.project_id != project_id {
        return Err(ApiError::new(
            SisCode::GatewayForbidden,
            "The IAM user is not authorized to access the API.",
        ));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Header and URI size limits of the gateway (APIG.0201), before anything else.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
pub const MAX_URI_BYTES: usize = 32 * 1024;

pub async fn size_limits(
    Extension(rid): Extension<RequestId>,
    req: Request,
    next: Next,
) -> Response {
    let uri_len = req.uri().to_string().len();
    if uri_len > MAX_URI_BYTES {
        return deny(
            &rid,
            ApiError::new(SisCode::GatewayRequest, "Request URI too large.").with_status(414),
        );
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return deny(
            &rid,
            ApiError::new(SisCode::GatewayRequest, "Request headers too large.").with_status(494),
        );
    }
    next.run(req).await
}

// ---- IAM-style token API ----

fn iam_error(status: StatusCode, message: &str) -> Response {
    let title = match status {
        StatusCode::BAD_REQUEST => "Bad Request",
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::NOT_FOUND => "Not Found",
        _ => "Error",
    };
    let body = serde_json::json!({
        "error": {"code": status.as_u16(), "title": title, "message": message}
    });
    (
        status,
        [("content-type", "application/json;charset=utf8")],
        body.to_string(),
    )
        .into_response()
}

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

/// Largest `POST /v3/auth/tokens` body.
const MAX_TOKEN_BODY_BYTES: usize = 64 * 1024;

/// `POST /v3/auth/tokens`: password method, project- or domain-scoped.
pub async fn issue_token(
    State(st): State<Arc<AuthState>>,
    Extension(rid): Extension<RequestId>,
    body: Body,
) -> Response {
    let body = match axum::body::to_bytes(body, MAX_TOKEN_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => return deny(&rid, crate::server::body_error(e)),
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return iam_error(
            StatusCode::BAD_REQUEST,
            "The request body is not valid JSON.",
        );
    };
    let identity = &v["auth"]["identity"];
    let methods_ok = identity["methods"]
        .as_array()
        .is_some_and(|m| m.iter().any(|x| x == "password"));
    if !methods_ok {
        return iam_error(
            StatusCode::BAD_REQUEST,
            "Only the password identity method is supported.",
        );
    }
    let user_v = &identity["password"]["user"];
    let (Some(name), Some(password)) = (str_at(user_v, &["name"]), str_at(user_v, &["password"]))
    else {
        return iam_error(
            StatusCode::BAD_REQUEST,
            "auth.identity.password.user needs name and password.",
        );
    };
    let Some(domain) =
        str_at(user_v, &["domain", "name"]).or_else(|| str_at(user_v, &["domain", "id"]))
    else {
        return iam_error(
            StatusCode::BAD_REQUEST,
            "auth.identity.password.user.domain needs name or id.",
        );
    };
    let now = unix_now();
    let lock_key = format!("{domain}\u{0}{name}");
    if st.user_failures.is_locked(&lock_key, now) {
        return iam_error(
            StatusCode::UNAUTHORIZED,
            "The account is locked after repeated sign-in failures; retry later.",
        );
    }
    // argon2id needs 19 MiB and a core for a while: only a few at once,
    // and nothing queues behind them
    let permit = match tokio::time::timeout(
        PASSWORD_CHECK_WAIT,
        st.password_checks.clone().acquire_owned(),
    )
    .await
    {
        Ok(Ok(p)) => p,
        _ => {
            // not logged one by one: a flood would flood the log too
            let mut r = ErrorResponse {
                error: ApiError::new(
                    SisCode::GatewayThrottled,
                    "The throttling threshold has been reached: too many sign-ins at once, retry later.",
                ),
                request_id: rid.0.clone(),
            }
            .into_response();
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            return r;
        }
    };
    let user = match st.store.user_named(domain, name).await {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(error = %e, "store unavailable during sign-in");
            return iam_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
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
            tracing::info!(domain, user = name, "sign-in refused");
            return iam_error(
                StatusCode::UNAUTHORIZED,
                "The username or password is wrong.",
            );
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
            return iam_error(
                StatusCode::BAD_REQUEST,
                "auth.scope.project needs id or name.",
            );
        };
        match found {
            Ok(Some(p)) if p.domain.id == user.domain.id => Some(p),
            Ok(_) => {
                return iam_error(
                    StatusCode::UNAUTHORIZED,
                    "The project does not exist or the user may not use it.",
                )
            }
            Err(e) => {
                tracing::error!(error = %e, "store unavailable during sign-in");
                return iam_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
            }
        }
    } else {
        None
    };

    let token = secrets::new_token();
    let issued = now_ms();
    let expires = issued + st.token_ttl_s * 1000;
    if let Err(e) = st
        .store
        .insert_token(
            &secrets::token_digest(&token),
            &user.id,
            project.as_ref().map(|p| p.id.as_str()),
            issued,
            expires,
        )
        .await
    {
        tracing::error!(error = %e, "cannot store token");
        return iam_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    }
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
    let mut r = (
        StatusCode::CREATED,
        [("content-type", "application/json;charset=utf8")],
        serde_json::json!({ "token": tok }).to_string(),
    )
        .into_response();
    match HeaderValue::from_str(&token) {
        Ok(h) => {
            r.headers_mut().insert("x-subject-token", h);
            r
        }
        Err(_) => iam_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

/// `DELETE /v3/auth/tokens`: revokes `X-Subject-Token`; the caller's valid
/// `X-Auth-Token` must belong to the same user.
pub async fn revoke_token(State(st): State<Arc<AuthState>>, headers: HeaderMap) -> Response {
    let (Some(caller), Some(subject)) = (
        header(&headers, "x-auth-token"),
        header(&headers, "x-subject-token"),
    ) else {
        return iam_error(
            StatusCode::BAD_REQUEST,
            "X-Auth-Token and X-Subject-Token are required.",
        );
    };
    let now = now_ms();
    let valid = |t: &Option<sis_store::Token>| {
        t.as_ref()
            .filter(|t| t.revoked_ms.is_none() && t.expires_ms > now)
            .map(|t| t.user.id.clone())
    };
    let subject_digest = secrets::token_digest(subject);
    let (c, s) = match (
        st.store.token(&secrets::token_digest(caller)).await,
        st.store.token(&subject_digest).await,
    ) {
        (Ok(c), Ok(s)) => (c, s),
        _ => return iam_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    };
    let Some(caller_user) = valid(&c) else {
        return iam_error(StatusCode::UNAUTHORIZED, "The X-Auth-Token is not valid.");
    };
    match valid(&s) {
        Some(u) if u == caller_user => match st.store.revoke_token(&subject_digest).await {
            Ok(_) => StatusCode::NO_CONTENT.into_response(),
            Err(_) => iam_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        },
        _ => iam_error(StatusCode::NOT_FOUND, "The X-Subject-Token was not found."),
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
