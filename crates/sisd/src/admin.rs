//! Operator commands on the store: projects, users, AK/SK credentials, keygen.
//! Output is one JSON line per item, for scripts.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{bail, Context};
use serde_json::json;
use sis_auth::secrets;
use sis_core::time::rfc3339_utc;
use sis_store::Store;

use crate::config::{self, CredentialsCommand, ProjectsCommand, StoreArgs, UsersCommand};

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Whether a command may create the store when there is none yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Missing {
    /// Commands whose purpose is to create something (`projects create`,
    /// `users create`): the first run of an installation creates the store.
    Create,
    /// Every other command reads or changes what exists: a missing store
    /// means the wrong one was named (another working directory, a missing
    /// `--data-dir`), and an empty new one would hide that.
    Refuse,
}

/// Opens the store found as `serve` finds it ([`StoreArgs::location`]),
/// saying on stderr which one.
async fn open(store: &StoreArgs, missing: Missing) -> anyhow::Result<Store> {
    let loc = store.location()?;
    if let Some(file) = loc.sqlite_file.as_ref().filter(|f| !f.exists()) {
        if missing == Missing::Refuse {
            bail!(
                "no store at {}; start `sisd serve` once or pass --data-dir (SIS_DATA_DIR) or --store (SIS_STORE_URL)",
                file.display()
            );
        }
        if loc.default {
            config::private_dir(&store.data.data_dir)?;
        }
        eprintln!("using store {} (new)", loc.shown());
    } else {
        eprintln!("using store {}", loc.shown());
    }
    Store::open(&loc.url)
        .await
        .with_context(|| format!("cannot open the store {}", loc.shown()))
}

fn project_json(p: &sis_store::Project) -> serde_json::Value {
    json!({"id": p.id, "name": p.name, "domain": p.domain.name})
}

fn user_json(u: &sis_store::User) -> serde_json::Value {
    json!({"id": u.id, "name": u.name, "domain": u.domain.name})
}

pub fn projects(cmd: ProjectsCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match cmd {
            ProjectsCommand::Create {
                store,
                name,
                domain,
                id,
            } => {
                check_name("project name", &name)?;
                check_name("domain", &domain)?;
                let s = open(&store, Missing::Create).await?;
                let p = s.create_project(&domain, &name, id.as_deref()).await?;
                println!("{}", project_json(&p));
            }
            ProjectsCommand::List { store } => {
                for p in open(&store, Missing::Refuse).await?.list_projects().await? {
                    println!("{}", project_json(&p));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn check_name(what: &str, v: &str) -> anyhow::Result<()> {
    if v.is_empty() || v.len() > 64 || v.chars().any(|c| c.is_control()) {
        bail!("{what} must be 1 to 64 characters without control characters");
    }
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    let pw = match std::env::var("SIS_USER_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if pw.chars().count() < 8 {
        bail!("the password must have at least 8 characters");
    }
    Ok(pw)
}

pub fn users(cmd: UsersCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match cmd {
            UsersCommand::Create { store, user } => {
                check_name("user name", &user.name)?;
                check_name("domain", &user.domain)?;
                let pw = read_password()?;
                let hash = secrets::hash_password(&pw)?;
                let u = open(&store, Missing::Create)
                    .await?
                    .create_user(&user.domain, &user.name, &hash)
                    .await?;
                println!("{}", user_json(&u));
            }
            UsersCommand::List { store } => {
                for u in open(&store, Missing::Refuse).await?.list_users().await? {
                    println!("{}", user_json(&u));
                }
            }
            UsersCommand::Delete { store, user } => {
                open(&store, Missing::Refuse)
                    .await?
                    .delete_user(&user.domain, &user.name)
                    .await?;
                println!("{}", json!({"deleted": user.name, "domain": user.domain}));
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn credentials(cmd: CredentialsCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match cmd {
            CredentialsCommand::Create {
                store,
                project,
                description,
            } => {
                let key = store.require_master_key()?;
                // a credential belongs to a project, which a new store lacks
                let s = open(&store, Missing::Refuse).await?;
                let ak = secrets::new_access_key();
                let sk = secrets::new_secret_key();
                s.create_credential(&ak, &project, &key.seal(&ak, &sk), &description)
                    .await?;
                println!(
                    "{}",
                    json!({"access_key": ak, "secret_key": sk, "project_id": project})
                );
            }
            CredentialsCommand::List { store, project } => {
                for c in open(&store, Missing::Refuse)
                    .await?
                    .list_credentials(project.as_deref())
                    .await?
                {
                    println!(
                        "{}",
                        json!({
                            "access_key": c.access_key,
                            "project_id": c.project_id,
                            "description": c.description,
                            "created_at": rfc3339_utc(c.created_ms, 3),
                            "revoked_at": c.revoked_ms.map(|t| rfc3339_utc(t, 3)),
                        })
                    );
                }
            }
            CredentialsCommand::Revoke { store, access_key } => {
                if !open(&store, Missing::Refuse)
                    .await?
                    .revoke_credential(&access_key)
                    .await?
                {
                    bail!("access key {access_key} does not exist or is already revoked");
                }
                println!("{}", json!({"revoked": access_key}));
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn quotas(cmd: crate::config::QuotasCommand) -> anyhow::Result<ExitCode> {
    use crate::config::QuotasCommand;
    let shown = |scope: &str, q: &sis_store::Quota| json!({"scope": scope, "sessions": q.sessions, "jobs": q.jobs, "rps": q.rps});
    runtime()?.block_on(async {
        match cmd {
            QuotasCommand::Set {
                store,
                scope,
                sessions,
                jobs,
                rps,
            } => {
                let s = open(&store, Missing::Refuse).await?;
                let scope = scope.scope();
                if scope.len() == 32 && s.project(&scope).await?.is_none() {
                    bail!("project {scope} not found");
                }
                let n = |v: Option<usize>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
                let q = sis_store::Quota {
                    sessions: n(sessions),
                    jobs: n(jobs),
                    rps: n(rps),
                };
                s.set_quota(&scope, q).await?;
                println!("{}", shown(&scope, &q));
            }
            QuotasCommand::List { store } => {
                for (scope, q) in open(&store, Missing::Refuse).await?.quotas().await? {
                    println!("{}", shown(&scope, &q));
                }
            }
            QuotasCommand::Clear { store, scope } => {
                let scope = scope.scope();
                if !open(&store, Missing::Refuse)
                    .await?
                    .clear_quota(&scope)
                    .await?
                {
                    bail!("no quota for {scope}");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn api_keys(cmd: crate::config::ApiKeysCommand) -> anyhow::Result<ExitCode> {
    use crate::config::ApiKeysCommand;
    runtime()?.block_on(async {
        match cmd {
            ApiKeysCommand::Create {
                store,
                project,
                description,
            } => {
                let s = open(&store, Missing::Refuse).await?;
                let key = format!("sis-{}", secrets::new_secret_key());
                let id = key[..12].to_string();
                s.create_api_key(&id, &secrets::token_digest(&key), &project, &description)
                    .await?;
                println!(
                    "{}",
                    json!({"id": id, "api_key": key, "project_id": project})
                );
            }
            ApiKeysCommand::List { store, project } => {
                for k in open(&store, Missing::Refuse)
                    .await?
                    .list_api_keys(project.as_deref())
                    .await?
                {
                    println!(
                        "{}",
                        json!({"id": k.id, "project_id": k.project_id, "description": k.description,
                               "created": rfc3339_utc(k.created_ms, 0),
                               "revoked": k.revoked_ms.map(|t| rfc3339_utc(t, 0))})
                    );
                }
            }
            ApiKeysCommand::Revoke { store, id } => {
                if !open(&store, Missing::Refuse)
                    .await?
                    .revoke_api_key(&id)
                    .await?
                {
                    bail!("no live API key {id}");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
