//! The IAM-style token and project APIs (`POST`/`DELETE /v3/auth/tokens`,
//! `GET /v3/projects`): their bodies, for the OpenAPI document. sisd's
//! `auth.rs` reads and writes them (the subset of Huawei Cloud IAM's
//! Keystone API the SIS SDKs use); the error body is
//! [`crate::error::IamErrorBody`].
#![allow(dead_code)]

use utoipa::ToSchema;

/// `POST /v3/auth/tokens`: the password method, scoped to a project (or to
/// the user's domain when `scope` has no project).
#[derive(ToSchema)]
pub struct TokenRequest {
    auth: TokenAuth,
}

#[derive(ToSchema)]
pub struct TokenAuth {
    identity: Identity,
    #[schema(required = false)]
    scope: TokenScope,
}

#[derive(ToSchema)]
pub struct Identity {
    /// Must hold `password`.
    #[schema(inline, min_items = 1)]
    methods: Vec<IdentityMethod>,
    password: PasswordIdentity,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum IdentityMethod {
    Password,
}

#[derive(ToSchema)]
pub struct PasswordIdentity {
    user: PasswordUser,
}

#[derive(ToSchema)]
pub struct PasswordUser {
    name: String,
    password: String,
    /// `name` or `id`.
    domain: NameOrId,
}

/// A domain or project named by `name` or by `id`.
#[derive(ToSchema)]
pub struct NameOrId {
    #[schema(required = false)]
    name: String,
    #[schema(required = false)]
    id: String,
}

#[derive(ToSchema)]
pub struct TokenScope {
    /// `id` or `name` (in the user's domain).
    #[schema(required = false)]
    project: NameOrId,
}

/// The 201 response (the token itself is the `X-Subject-Token` header).
#[derive(ToSchema)]
pub struct TokenResponse {
    token: TokenInfo,
}

#[derive(ToSchema)]
pub struct TokenInfo {
    methods: Vec<String>,
    /// RFC 3339, UTC.
    issued_at: String,
    expires_at: String,
    user: TokenUser,
    roles: Vec<IdName>,
    catalog: Vec<serde_json::Value>,
    /// A project-scoped token's project.
    #[schema(required = false)]
    project: ScopedProject,
    /// A domain-scoped token's domain.
    #[schema(required = false)]
    domain: IdName,
}

#[derive(ToSchema)]
pub struct TokenUser {
    id: String,
    name: String,
    domain: IdName,
    password_expires_at: String,
}

#[derive(ToSchema)]
pub struct IdName {
    id: String,
    name: String,
}

#[derive(ToSchema)]
pub struct ScopedProject {
    id: String,
    name: String,
    domain: IdName,
}

/// `GET /v3/projects`: the caller's own project when its name matches.
#[derive(ToSchema)]
pub struct ProjectList {
    links: ListLinks,
    projects: Vec<ProjectInfo>,
}

#[derive(ToSchema)]
pub struct ListLinks {
    #[schema(rename = "self")]
    this: String,
    previous: Option<String>,
    next: Option<String>,
}

#[derive(ToSchema)]
pub struct ProjectInfo {
    id: String,
    name: String,
    domain_id: String,
    parent_id: String,
    description: String,
    enabled: bool,
    is_domain: bool,
    links: SelfLink,
}

#[derive(ToSchema)]
pub struct SelfLink {
    #[schema(rename = "self")]
    this: String,
}
