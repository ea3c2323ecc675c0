//! `sisd`: the server binary. Thin glue over the library crates.

mod admin;
mod auth;
mod config;
mod config_file;
mod console;
mod download;
mod errors;
mod flash;
mod http;
mod jobs;
mod metrics;
mod models;
#[cfg(test)]
mod module_graph;
mod openai;
mod openapi;
mod quotas;
mod rasr;
#[cfg(test)]
mod router_tests;
mod rtts;
mod server;
mod short_audio;
mod shutdown;
mod state;
mod tts;
mod vocabularies;
mod ws;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::FromArgMatches;
use config::Command;
use sis_pool::EnginePool;

fn main() -> ExitCode {
    malloc_policy();
    let cli = config_file::parse_cli();
    let var = |name: &str| std::env::var(name).ok();
    let spec = config::log_filter(var("RUST_LOG").as_deref(), var("SIS_LOG").as_deref());
    let filter = tracing_subscriber::EnvFilter::try_new(&spec).unwrap_or_else(|e| {
        eprintln!("sisd: ignoring the log filter {spec:?} ({e}); logging at info");
        tracing_subscriber::EnvFilter::new(config::log_filter(None, None))
    });
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config::log_format(&cli) {
        config::LogFormat::Json => {
            // engine worker processes inherit it (no other thread runs yet)
            std::env::set_var("SIS_LOG_FORMAT", "json");
            logs.json().with_current_span(false).init();
        }
        config::LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    if matches!(
        cli.command,
        Command::Serve(_)
            | Command::Projects(_)
            | Command::Users(_)
            | Command::Credentials(_)
            | Command::Quotas(_)
            | Command::ApiKeys(_)
    ) {
        // the store, keys, spooled audio: files this process creates are
        // its owner's only (0600, directories 0700)
        // SAFETY: umask only swaps the process's file mode mask; no memory is involved.
        unsafe {
            libc::umask(0o077);
        }
    }
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Models(cmd) => models::run(cmd),
        Command::Projects(cmd) => admin::projects(cmd),
        Command::Users(cmd) => admin::users(cmd),
        Command::Credentials(cmd) => admin::credentials(cmd),
        Command::EngineWorker => match sis_pool::run_worker() {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) => Err(anyhow::anyhow!("engine worker: {e}")),
        },
        Command::Config(cmd) => config_command(cmd),
        Command::Quotas(cmd) => admin::quotas(cmd),
        Command::ApiKeys(cmd) => admin::api_keys(cmd),
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

fn config_command(cmd: config::ConfigCommand) -> anyhow::Result<ExitCode> {
    use config_file::{check, check_env, effective, example, serve_command, with_file};
    let serve = serve_command();
    let file = match cmd {
        config::ConfigCommand::Example => {
            print!("{}", example(&serve));
            return Ok(ExitCode::SUCCESS);
        }
        config::ConfigCommand::Check { file } => {
            file.or_else(|| std::env::var_os(config_file::ENV).map(Into::into))
        }
    };
    let (values, mut errors) = match &file {
        Some(f) => match check(&serve, f) {
            Ok(checked) => checked,
            Err(e) => {
                eprintln!("sisd: {e}");
                return Ok(ExitCode::from(2));
            }
        },
        None => Default::default(),
    };
    let env_errors = check_env(&serve);
    let env_ok = env_errors.is_empty();
    errors.extend(env_errors);
    let serve = with_file(serve, &values);
    // the file's refused keys are left out; what is left is checked as a
    // whole (an environment variable's mistake would only be repeated)
    let shown = match serve.clone().try_get_matches_from(["serve"]) {
        _ if !env_ok => None,
        Err(e) => {
            errors.push(config_file::clap_reason(&e));
            None
        }
        Ok(m) => match config::ServeArgs::from_arg_matches(&m).map(|a| a.validate()) {
            Err(e) => {
                errors.push(e.to_string());
                None
            }
            Ok(Err(e)) => {
                errors.push(format!("{e:#}"));
                None
            }
            Ok(Ok(_)) => Some(effective(&serve, &m, &values)),
        },
    };
    if !errors.is_empty() {
        let from = file.map_or("the environment".into(), |f| f.display().to_string());
        eprintln!(
            "sisd: {} mistake(s) in the configuration ({from}):",
            errors.len()
        );
        for e in errors {
            eprintln!("  {e}");
        }
        return Ok(ExitCode::from(2));
    }
    print!("{}", shown.unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

fn serve(args: config::ServeArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = args.validate()?;
    let prepared = cfg.prepare()?;
    cfg.http.max_connections = fit_descriptors(cfg.http.max_connections);
    tracing::info!(
        packs = cfg.engine.packs.len(),
        data_dir = %cfg.data_dir.display(),
        store = %sis_store::redact_url(&cfg.store_url),
        auth = ?cfg.auth,
        job_files_dir = cfg.fetch.local_dir.as_ref().map(|d| d.display().to_string()),
        "loading model packs"
    );
    let engine = Arc::new(
        EnginePool::start(cfg.engine.clone(), cfg.engine_workers).context("cannot start")?,
    );
    for p in engine.packs() {
        tracing::info!(pack = %p.name, kind = p.kind.as_str(), properties = ?p.properties, voices = ?p.speakers, test_only = p.test_only, "pack loaded");
    }
    let test_packs: Vec<&str> = engine
        .packs()
        .iter()
        .filter(|p| p.test_only)
        .map(|p| p.name.as_str())
        .collect();
    if !test_packs.is_empty() {
        tracing::warn!(
            packs = ?test_packs,
            "{}; real packs: `sisd models install --defaults`",
            sis_engine::pack::TEST_ONLY_WARNING
        );
    }
    let synthesizer = Arc::new(sis_engine::tts::Synthesizer::with_packs(
        cfg.tts.clone(),
        Arc::new(sis_pool::PoolVoices(engine.clone())),
    ));
    match synthesizer.availability() {
        sis_engine::tts::Availability::Ready { version } => tracing::info!(
            espeak_ng = %cfg.tts.espeak.display(),
            version = %version,
            max_processes = cfg.tts.max_processes,
            "speech synthesis ready (espeak-ng, a separate process)"
        ),
        sis_engine::tts::Availability::Unavailable { reason } => tracing::warn!(
            espeak_ng = %cfg.tts.espeak.display(),
            reason = %reason,
            "speech synthesis unavailable: POST /tts answers SIS.0100 (install espeak-ng or set --espeak-ng)"
        ),
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = rt.block_on(async move {
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
        let objects = match &cfg.objects_url {
            Some(u) => Some(
                sis_store::Objects::open(u)
                    .with_context(|| format!("cannot open object storage {u}"))?,
            ),
            None => None,
        };
        // uploads for jobs: in the object storage when there is one (every
        // node sees them), else a directory of this node
        let uploads = match &objects {
            Some(o) => o.clone(),
            None => {
                // absolute: DATA_DIR may be given relative (./scripts/serve)
                let dir = std::path::absolute(cfg.data_dir.join("uploads"))
                    .context("cannot resolve the uploads directory")?;
                sis_store::Objects::open(&format!("file://{}", dir.display()))
                    .with_context(|| format!("cannot open the uploads directory {}", dir.display()))?
            }
        };
        let mut flash_buckets = std::collections::HashMap::new();
        for (name, url) in &cfg.flash_buckets {
            let objects = sis_store::Objects::open(url)
                .with_context(|| format!("cannot open flash bucket {name} at {url}"))?;
            flash_buckets.insert(name.clone(), objects);
        }
        let shutdown = shutdown::Shutdown::default();
        let vocabularies = Arc::new(sis_store::VocabularyCache::new(store.clone()));
        let jobs = Arc::new(sis_jobs::Jobs {
            store: store.clone(),
            objects,
            uploads,
            engine: engine.clone(),
            fetcher,
            config: prepared.jobs,
            stop: sis_jobs::Stop::new(shutdown.subscribe()),
            public: errors::job,
            vocabularies: vocabularies.clone(),
        });
        let job_workers = jobs.spawn();
        let quotas = quotas::Quotas::new(store.clone());
        quotas.spawn_upkeep();
        let auth = Arc::new(state::AuthState::new(
            cfg.auth,
            store,
            cfg.master_key.clone(),
            cfg.token_ttl_s,
            cfg.password_checks,
        ));
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.listen))?;
        metrics::handle();
        let app_state = state::AppState {
            engine,
            auth,
            rasr_connections: Default::default(),
            rtts_connections: Default::default(),
            short_audio_budget: Arc::new(state::MemoryBudget::new(cfg.short_audio_memory_mb)),
            jobs,
            vocabularies,
            vocabulary_limits: cfg.vocabularies,
            tts: synthesizer,
            flash: Arc::new(state::FlashSettings {
                buckets: flash_buckets,
                timeout: cfg.flash_timeout,
                spool: cfg.jobs.spool.clone(),
            }),
            shutdown: shutdown.clone(),
            metrics_on_main: cfg.metrics_listen.is_none(),
            quotas: quotas.clone(),
        };
        let app = server::router(app_state.clone());
        if let Some(addr) = cfg.metrics_listen {
            let admin = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--metrics-listen)"))?;
            let metrics_app = axum::Router::new()
                .route("/metrics", axum::routing::get(server::serve_metrics))
                .with_state(app_state.clone());
            tokio::spawn(async move {
                if let Err(e) = axum::serve(admin, metrics_app).await {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            });
            tracing::info!(metrics_listen = %addr, "metrics on their own listener");
        }
        // every second: the engine's observations are taken (its bounded
        // buffers never fill between scrapes) and the exporter's upkeep
        // folds histogram samples into their buckets (without it they pile
        // up until a scrape, growing memory with every request)
        {
            let engine = app_state.engine.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    metrics::record_engine(&engine);
                    metrics::handle().run_upkeep();
                }
            });
        }
        let connections = Arc::new(http::Connections::new(cfg.http.max_connections));
        let accept = tokio::spawn(http::accept_loop(
            listener,
            app,
            cfg.http,
            connections.clone(),
            shutdown.clone(),
        ));
        tracing::info!(listen = %cfg.listen, max_connections = cfg.http.max_connections, "sisd ready");

        let signal = shutdown::signal().await;
        tracing::info!(
            signal,
            open_connections = connections.open(),
            grace_s = cfg.shutdown_grace.as_secs_f64(),
            "stopping: no new connections or jobs; requests in flight and real-time sessions may finish"
        );
        shutdown.begin(cfg.shutdown_grace);
        let _ = accept.await;
        // a second signal stops waiting
        let drained = async {
            // job workers give their leases back at once
            for w in job_workers {
                let _ = w.await;
            }
            tracing::info!("job workers stopped; their leases are released");
            connections.all_closed().await;
        };
        let limit = cfg.shutdown_grace + Duration::from_secs(5) + SEND_SLACK;
        tokio::select! {
            r = tokio::time::timeout(limit, drained) => match r {
                Ok(()) => tracing::info!("all connections closed"),
                Err(_) => tracing::warn!(open_connections = connections.open(), "connections still open after the grace period; closing them"),
            },
            s = shutdown::signal() => tracing::warn!(signal = s, open_connections = connections.open(), "second signal; not waiting any longer"),
        }
        anyhow::Ok(())
    });
    // blocking work still running (a job's decoder noticing its lease is
    // gone) is not waited for
    rt.shutdown_timeout(Duration::from_secs(2));
    result?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Room for the WebSocket send limit of a FATAL_ERROR and close frame.
const SEND_SLACK: Duration = ws::REALTIME.send;

/// Descriptors kept free of connections: the store, packs, job files, the
/// probe's pipes.
const RESERVED_FDS: u64 = 256;

/// Raises the soft limit on open files to the hard limit, and lowers the
/// connection cap to fit under it, so clients cannot exhaust descriptors.
fn fit_descriptors(max_connections: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct passed.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return max_connections;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        lim.rlim_cur
    };
    let room = soft.saturating_sub(RESERVED_FDS).max(16);
    if (max_connections as u64) > room {
        tracing::warn!(
            open_files_limit = soft,
            max_connections = room,
            "--max-connections lowered to fit the open-files limit (raise it with ulimit -n)"
        );
        room as usize
    } else {
        max_connections
    }
}

/// Blocks of 1 MiB and more (an argon2id check's 19 MiB, a minute of short
/// audio) are mapped on their own and given back to the system when freed.
/// glibc's default raises this threshold after the first such free, so
/// freed blocks then stay in whichever heap arena a thread used: a burst of
/// sign-ins left up to 46 MB resident after it ended.
///
/// And one heap arena per core instead of glibc's eight: a real-time
/// session's buffers are allocated on whichever thread touches them (tokio's,
/// a stream worker's), and with eight arenas per core their free space
/// scattered: at 512 streams sisd took 0.14 MB per stream, 0.11-0.12 with one
/// arena per core, at the same CPU (BENCHMARKS.md, issue 17).
fn malloc_policy() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let arenas = i32::try_from(cores).unwrap_or(i32::MAX);
        // SAFETY: mallopt only sets the policy for later allocations; it is
        // called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}
