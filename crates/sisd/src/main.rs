//! `sisd`: the server binary. Thin glue over the library crates.

mod admin;
mod auth;
mod config;
mod errors;
mod jobs;
mod rasr;
mod server;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use config::{Cli, Command, ModelsCommand};
use sis_engine::{install, pack, Engine};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SIS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Models(cmd) => models(cmd),
        Command::Projects(cmd) => admin::projects(cmd),
        Command::Users(cmd) => admin::users(cmd),
        Command::Credentials(cmd) => admin::credentials(cmd),
        Command::Keygen => {
            println!("{}", sis_auth::MasterKey::generate_hex());
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sisd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: config::ServeArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.validate()?;
    tracing::info!(packs = cfg.engine.packs.len(), data_dir = %cfg.data_dir.display(), auth = ?cfg.auth, "loading model packs");
    let engine = Arc::new(Engine::load(cfg.engine.clone()).context("cannot start")?);
    for p in engine.packs() {
        tracing::info!(pack = %p.name, kind = p.kind.as_str(), properties = ?p.properties, "pack loaded");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let store = sis_store::Store::open(&cfg.store_url)
            .await
            .with_context(|| {
                format!(
                    "cannot open the store {}",
                    sis_store::redact_url(&cfg.store_url)
                )
            })?;
        let fetcher = sis_fetch::Fetcher::new(cfg.fetch.clone())
            .map_err(|e| anyhow::anyhow!("cannot start the fetcher: {e}"))?;
        let objects = match &cfg.jobs.objects_url {
            Some(u) => Some(
                sis_store::Objects::open(u)
                    .with_context(|| format!("cannot open object storage {u}"))?,
            ),
            None => None,
        };
        let jobs = Arc::new(jobs::JobsState {
            store: store.clone(),
            objects,
            engine: engine.clone(),
            fetcher,
            config: cfg.jobs.clone(),
        });
        jobs::spawn(jobs.clone());
        let auth = Arc::new(auth::AuthState {
            mode: cfg.auth,
            store,
            master_key: cfg.master_key.clone(),
            token_ttl_s: cfg.token_ttl_s,
            ak_failures: sis_auth::FailureLimiter::default(),
            user_failures: sis_auth::FailureLimiter::default(),
        });
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.listen))?;
        tracing::info!(listen = %cfg.listen, "sisd ready");
        let app = server::router(server::AppState {
            engine,
            auth,
            rasr_connections: Default::default(),
            jobs,
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("server error")
    })?;
    Ok(ExitCode::SUCCESS)
}

fn models(cmd: ModelsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelsCommand::List(dirs) => {
            for d in dirs.dirs() {
                for p in pack::discover(&d)? {
                    let pk = pack::Pack::open(&p)?;
                    let m = &pk.manifest;
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        m.name,
                        m.kind.as_str(),
                        m.model_type,
                        if m.properties.is_empty() {
                            "-".to_string()
                        } else {
                            m.properties.join(",")
                        },
                        p.display()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Verify(dirs) => {
            let mut bad = 0;
            for d in dirs.dirs() {
                for p in pack::discover(&d)? {
                    match pack::Pack::open(&p).and_then(|pk| pk.check().map(|_| pk)) {
                        Ok(pk) => println!("ok\t{}\t{}", pk.name(), p.display()),
                        Err(e) => {
                            bad += 1;
                            println!("FAILED\t{e}");
                        }
                    }
                }
            }
            Ok(if bad == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        ModelsCommand::Install {
            name,
            from,
            models_dir,
            data_dir,
            base_url,
        } => {
            let dest = models_dir.unwrap_or_else(|| data_dir.join("models"));
            let installed = match (name, from) {
                (None, Some(path)) => install::install_from(&path, &dest)?,
                (Some(name), None) => {
                    let base = base_url.context(
                        "set --base-url or SIS_MODEL_BASE_URL to a mirror of the sherpa-onnx release assets",
                    )?;
                    install::install_catalog(&name, &dest, &base)?
                }
                _ => anyhow::bail!("give either a catalog NAME or --from PATH"),
            };
            println!("installed {}", installed.display());
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Catalog => {
            for e in install::CATALOG {
                println!(
                    "{}\t{}\t{}\t{} bytes\tsha256 {}\t{}",
                    e.name, e.kind, e.model_type, e.archive_bytes, e.archive_sha256, e.description
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Probe { dir } => {
            let pk = pack::Pack::open(&dir)?;
            sis_engine::probe_pack(&pk)?;
            println!("ok {}", pk.name());
            Ok(ExitCode::SUCCESS)
        }
    }
}
