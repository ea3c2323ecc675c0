//! Configuration in two phases: clap parses flags and environment into
//! [`ServeArgs`]; [`ServeArgs::validate`] turns them into a [`ServeConfig`]
//! that nothing downstream re-checks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use sis_engine::{EngineConfig, VadSettings};

#[derive(Parser, Debug)]
#[command(
    name = "sisd",
    version,
    about = "Self-hosted speech service speaking the Huawei Cloud SIS API"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start the server.
    Serve(Box<ServeArgs>),
    /// Manage model packs.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Manage projects (tenants) in the store.
    #[command(subcommand)]
    Projects(ProjectsCommand),
    /// Manage IAM-style users (password sign-in for tokens).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage AK/SK credentials.
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// Print a new random master key (64 hex digits) for sealing secret keys.
    Keygen,
    /// An engine worker process (started by `serve`; speaks a binary
    /// protocol on stdin/stdout).
    #[command(hide = true)]
    EngineWorker,
}

/// Where the store is and how secrets in it are sealed.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Data directory (embedded storage, installed models).
    #[arg(long, env = "SIS_DATA_DIR", default_value = "sisd-data")]
    pub data_dir: PathBuf,
    /// Store URL: sqlite://PATH or postgres://... Default: sqlite://DATA_DIR/sisd.db.
    #[arg(long, env = "SIS_STORE_URL")]
    pub store: Option<String>,
    /// File holding the master key (64 hex digits) that seals secret keys at
    /// rest. Alternatively the environment variable SIS_MASTER_KEY.
    #[arg(long, env = "SIS_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
}

impl StoreArgs {
    pub fn url(&self) -> String {
        self.store
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("sisd.db").display()))
    }

    /// The master key, if the operator provided one.
    pub fn master_key(&self) -> anyhow::Result<Option<sis_auth::MasterKey>> {
        let (text, from) = match (&self.master_key_file, std::env::var("SIS_MASTER_KEY")) {
            (Some(f), _) => (
                std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read master key file {}", f.display()))?,
                f.display().to_string(),
            ),
            (None, Ok(v)) => (v, "SIS_MASTER_KEY".to_string()),
            (None, Err(_)) => return Ok(None),
        };
        sis_auth::MasterKey::from_hex(&text)
            .map(Some)
            .with_context(|| format!("master key from {from}"))
    }

    pub fn require_master_key(&self) -> anyhow::Result<sis_auth::MasterKey> {
        self.master_key()?.context(
            "a master key is required to seal secret keys: give --master-key-file FILE or set SIS_MASTER_KEY (create one with `sisd keygen`)",
        )
    }
}

#[derive(Subcommand, Debug)]
pub enum ProjectsCommand {
    /// Create a project; prints it as one JSON line.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// Project name (IAM clients scope tokens by it; SIS uses region names such as cn-north-4).
        #[arg(long)]
        name: String,
        /// Domain (account) the project belongs to; created if new.
        #[arg(long, default_value = "default")]
        domain: String,
        /// Project id (32 lower-case hex digits). Default: random.
        #[arg(long)]
        id: Option<String>,
    },
    /// List projects, one JSON line each.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Create a user. The password is read from the first line of standard
    /// input, or from SIS_USER_PASSWORD.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, default_value = "default")]
        domain: String,
        #[arg(long)]
        name: String,
    },
    /// List users, one JSON line each (no password hashes).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a user and revoke its tokens.
    Delete {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, default_value = "default")]
        domain: String,
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum CredentialsCommand {
    /// Create an AK/SK pair for a project; prints one JSON line with
    /// access_key, secret_key and project_id. The secret is shown only here.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        project: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List access keys, one JSON line each (never the secret).
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        project: Option<String>,
    },
    /// Revoke an access key.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        access_key: String,
    },
}

#[derive(Args, Debug, Clone)]
pub struct ModelDirs {
    /// Models directory (a pack, or a directory of packs). Repeatable.
    /// Default: DATA_DIR/models.
    #[arg(long = "models", env = "SIS_MODELS", value_delimiter = ':')]
    pub models: Vec<PathBuf>,
    /// Data directory (embedded storage, installed models).
    #[arg(long, env = "SIS_DATA_DIR", default_value = "sisd-data")]
    pub data_dir: PathBuf,
}

impl ModelDirs {
    pub fn dirs(&self) -> Vec<PathBuf> {
        if self.models.is_empty() {
            vec![self.data_dir.join("models")]
        } else {
            self.models.clone()
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// List installed packs and the properties they serve.
    List(ModelDirs),
    /// Check every installed pack: files present, sha256, metadata.
    Verify(ModelDirs),
    /// Install a pack from the catalog by NAME, or from a local PATH with --from.
    Install {
        /// Catalog name (see `sisd models catalog`).
        name: Option<String>,
        /// A pack directory or archive (.tar, .tar.gz, .tar.bz2).
        #[arg(long)]
        from: Option<PathBuf>,
        /// Where to install. Default: DATA_DIR/models.
        #[arg(long)]
        models_dir: Option<PathBuf>,
        #[arg(long, env = "SIS_DATA_DIR", default_value = "sisd-data")]
        data_dir: PathBuf,
        /// Base URL of a mirror of the sherpa-onnx release assets.
        #[arg(long, env = "SIS_MODEL_BASE_URL")]
        base_url: Option<String>,
    },
    /// Show the catalog of installable packs.
    Catalog,
    /// Load one pack with sherpa-onnx and exit (used in a child process at start-up).
    #[command(hide = true)]
    Probe { dir: PathBuf },
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SIS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Models directory (a pack, or a directory of packs). Repeatable.
    /// Default: DATA_DIR/models.
    #[arg(long = "models", env = "SIS_MODELS", value_delimiter = ':')]
    pub models: Vec<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Authentication: `sis` (AK/SK signatures and IAM-style tokens, needs a
    /// master key) or `none` (no authentication; loopback only, for local
    /// development).
    #[arg(long, env = "SIS_AUTH", default_value = "none")]
    pub auth: String,
    /// Real-time (WebSocket) sessions that may be open at once; more get SIS.0312.
    #[arg(long, env = "SIS_MAX_STREAMS", default_value_t = 1000)]
    pub max_streams: usize,
    /// Lifetime of tokens issued by POST /v3/auth/tokens, in seconds.
    #[arg(long, env = "SIS_TOKEN_TTL_S", default_value_t = 86_400)]
    pub token_ttl_s: u64,
    /// Decode worker threads (default: number of cores).
    #[arg(long, env = "SIS_WORKERS")]
    pub workers: Option<usize>,
    /// Engine worker processes that run the models (a native crash ends
    /// one of them, not the server); 0 runs the engine in this process
    /// (default: one per 4 cores, at least 1, at most 8).
    #[arg(long, env = "SIS_ENGINE_WORKERS")]
    pub engine_workers: Option<usize>,
    /// Requests that may wait for a decode worker before new ones get SIS.0312.
    #[arg(long, env = "SIS_QUEUE", default_value_t = 256)]
    pub queue: usize,
    /// Skip the child-process probe of each pack at start-up.
    #[arg(long)]
    pub no_probe: bool,
    /// Do not split audio at pauses with the VAD pack.
    #[arg(long)]
    pub no_vad: bool,
    /// Split only audio at least this many seconds long with the VAD pack.
    #[arg(long, env = "SIS_VAD_MIN_AUDIO_S", default_value_t = 10.0)]
    pub vad_min_audio_s: f32,
    /// Transcription jobs processed at once by this process (default: cores).
    #[arg(long, env = "SIS_JOB_WORKERS")]
    pub job_workers: Option<usize>,
    /// Seconds after its worker's last heartbeat that a running job is taken
    /// over by another worker (a worker renews every third of it).
    #[arg(long, env = "SIS_JOB_LEASE_S", default_value_t = 30)]
    pub job_lease_s: u64,
    /// Hours a finished job's result is kept (SIS: 72).
    #[arg(long, env = "SIS_JOB_RETENTION_H", default_value_t = 72.0)]
    pub job_retention_h: f64,
    /// Hosts or CIDRs that data_url and callback_url may reach although they
    /// are loopback, private or link-local (comma-separated, e.g. 127.0.0.1).
    #[arg(long, env = "SIS_FETCH_ALLOW", default_value = "")]
    pub fetch_allow: String,
    /// Largest audio file a job downloads, in MB.
    #[arg(long, env = "SIS_FETCH_MAX_MB", default_value_t = 300)]
    pub fetch_max_mb: u64,
    /// Seconds a job's download may take beyond what its size needs at
    /// --fetch-min-rate-kb (the deadline grows with the bytes received).
    #[arg(long, env = "SIS_FETCH_TIMEOUT_S", default_value_t = 60.0)]
    pub fetch_timeout_s: f64,
    /// Average rate, in kB/s, a download must keep beyond --fetch-timeout-s;
    /// a slower one ends its job in ERROR (0: no rate, the deadline is
    /// --fetch-timeout-s).
    #[arg(long, env = "SIS_FETCH_MIN_RATE_KB", default_value_t = 100)]
    pub fetch_min_rate_kb: u64,
    /// Seconds a download may receive nothing before its job ends in ERROR.
    #[arg(long, env = "SIS_FETCH_STALL_S", default_value_t = 15.0)]
    pub fetch_stall_s: f64,
    /// Jobs of one project this process runs at once (default: half of
    /// --job-workers, at least 1), so one project cannot hold every worker.
    #[arg(long, env = "SIS_JOB_PROJECT_MAX")]
    pub job_project_max: Option<usize>,
    /// Seconds one callback POST may take, until its response status.
    #[arg(long, env = "SIS_CALLBACK_TIMEOUT_S", default_value_t = 10.0)]
    pub callback_timeout_s: f64,
    /// Callbacks delivered at once.
    #[arg(long, env = "SIS_CALLBACK_CONCURRENCY", default_value_t = 16)]
    pub callback_concurrency: usize,
    /// Key that signs result callbacks (X-Sis-Signature). Default: a random
    /// key kept in DATA_DIR/callback.key (give every node the same key).
    #[arg(long, env = "SIS_CALLBACK_KEY", hide_env_values = true)]
    pub callback_key: Option<String>,
    /// Object storage for job audio and results: file:///DIR or
    /// s3://BUCKET[/PREFIX] (endpoint and credentials from AWS_* variables).
    /// Default: none (results in the store, audio spooled in DATA_DIR/jobs).
    #[arg(long, env = "SIS_OBJECTS_URL")]
    pub objects: Option<String>,
    /// HTTP and WebSocket connections open at once; more are closed at once.
    #[arg(long, env = "SIS_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Seconds a connection has to send a request's headers (from its
    /// accept, or from the first byte of a later request), WebSocket
    /// upgrades included; then it is closed.
    #[arg(long, env = "SIS_HEADER_TIMEOUT_S", default_value_t = 10.0)]
    pub header_timeout_s: f64,
    /// Seconds a keep-alive connection may wait for its next request (or a
    /// client may leave a response unread); then it is closed.
    #[arg(long, env = "SIS_IDLE_TIMEOUT_S", default_value_t = 60.0)]
    pub idle_timeout_s: f64,
    /// Seconds a request body may send nothing; then the request is answered
    /// 408 and the connection closed.
    #[arg(long, env = "SIS_BODY_STALL_S", default_value_t = 15.0)]
    pub body_stall_s: f64,
    /// Seconds a whole request body may take after its headers.
    #[arg(long, env = "SIS_BODY_TIMEOUT_S", default_value_t = 120.0)]
    pub body_timeout_s: f64,
    /// On SIGTERM/SIGINT, seconds real-time sessions may take to finish
    /// before they get FATAL_ERROR.
    #[arg(long, env = "SIS_SHUTDOWN_GRACE_S", default_value_t = 30.0)]
    pub shutdown_grace_s: f64,
    /// Password checks (argon2id, 19 MiB each) of POST /v3/auth/tokens run at
    /// once; more sign-ins get 429 APIG.0308 (default: twice the cores, at
    /// most 4).
    #[arg(long, env = "SIS_PASSWORD_CHECKS")]
    pub password_checks: Option<usize>,
    /// Memory that short-audio requests being read, decoded or recognised may
    /// hold together (each counts twice its body plus 60 s of decoded audio);
    /// beyond it a request gets 429 SIS.0312 before its body is read.
    #[arg(long, env = "SIS_SHORT_AUDIO_MEMORY_MB", default_value_t = 512)]
    pub short_audio_memory_mb: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    None,
    Sis,
}

/// Validated server configuration.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub auth: AuthMode,
    pub store_url: String,
    /// Present when `auth` is `Sis`.
    pub master_key: Option<sis_auth::MasterKey>,
    pub token_ttl_s: i64,
    pub engine: EngineConfig,
    /// Engine worker processes (0: the engine runs in the server process).
    pub engine_workers: usize,
    pub jobs: crate::jobs::JobsConfig,
    pub fetch: sis_fetch::FetchPolicy,
    pub http: crate::http::Limits,
    /// Real-time sessions' time to finish after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// Password checks that may run at once.
    pub password_checks: usize,
    pub short_audio_memory_mb: usize,
}

/// `--NAME` seconds between `lo` and `hi`, as a duration.
fn seconds(name: &str, v: f64, lo: f64, hi: f64) -> anyhow::Result<Duration> {
    if !(lo..=hi).contains(&v) {
        bail!("--{name} must be between {lo} and {hi} seconds");
    }
    Ok(Duration::from_secs_f64(v))
}

/// Creates a directory (and missing parents) readable by the owner only.
fn private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))
}

/// Takes group and other permissions off a file or directory the server
/// created (an older version made them world-readable).
pub fn make_private(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o077 != 0 {
            match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "permissions tightened to {mode:o}")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "readable by others and cannot be made private")
                }
            }
        }
    }
}

impl ServeArgs {
    pub fn validate(&self) -> anyhow::Result<ServeConfig> {
        let listen: SocketAddr = self
            .listen
            .parse()
            .with_context(|| format!("--listen {}: expected IP:PORT", self.listen))?;
        let auth = match self.auth.as_str() {
            "none" => AuthMode::None,
            "sis" => AuthMode::Sis,
            other => bail!("--auth {other}: expected 'sis' or 'none'"),
        };
        if auth == AuthMode::None && !listen.ip().is_loopback() {
            bail!("--auth none is refused on {listen}: without authentication the server may only listen on a loopback address (use --auth sis)");
        }
        let master_key = match auth {
            AuthMode::Sis => Some(self.store.require_master_key()?),
            AuthMode::None => self.store.master_key()?,
        };
        if !(1..=366 * 86_400).contains(&self.token_ttl_s) {
            bail!("--token-ttl-s must be between 1 and 31622400 (366 days)");
        }
        let data_dir = &self.store.data_dir;
        private_dir(data_dir)?;
        let model_dirs = ModelDirs {
            models: self.models.clone(),
            data_dir: data_dir.clone(),
        };
        let mut packs = Vec::new();
        for d in model_dirs.dirs() {
            let found = sis_engine::pack::discover(&d)?;
            if found.is_empty() {
                bail!(
                    "no model packs in {} (install some with `sisd models install`)",
                    d.display()
                );
            }
            packs.extend(found);
        }
        let workers = self.workers.unwrap_or_else(workers_default);
        if workers == 0 || workers > 512 {
            bail!("--workers {workers}: must be between 1 and 512");
        }
        if !(0.0..=3600.0).contains(&self.vad_min_audio_s) {
            bail!("--vad-min-audio-s must be between 0 and 3600");
        }
        if self.max_streams == 0 {
            bail!("--max-streams must be at least 1");
        }
        let engine_workers = self.engine_workers.unwrap_or_else(engine_workers_default);
        if engine_workers > 64 {
            bail!("--engine-workers {engine_workers}: must be between 0 and 64");
        }
        if self.queue == 0 {
            bail!("--queue must be at least 1");
        }
        let job_workers = self.job_workers.unwrap_or(workers);
        if job_workers == 0 || job_workers > 256 {
            bail!("--job-workers {job_workers}: must be between 1 and 256");
        }
        if !(3..=3600).contains(&self.job_lease_s) {
            bail!("--job-lease-s must be between 3 and 3600");
        }
        if !(0.001..=8760.0).contains(&self.job_retention_h) {
            bail!("--job-retention-h must be between 0.001 and 8760 (a year)");
        }
        if self.fetch_max_mb == 0 || self.fetch_max_mb > 4096 {
            bail!("--fetch-max-mb must be between 1 and 4096");
        }
        let allow = sis_fetch::AllowList::parse(&self.fetch_allow)
            .map_err(|e| anyhow::anyhow!("--fetch-allow / SIS_FETCH_ALLOW: {e}"))?;
        let job_secs = |name: &str, v: f64, hi: f64| {
            if !(0.1..=hi).contains(&v) {
                bail!("--{name} must be between 0.1 and {hi} seconds");
            }
            Ok(std::time::Duration::from_secs_f64(v))
        };
        if self.fetch_min_rate_kb > 10_000_000 {
            bail!("--fetch-min-rate-kb must be at most 10000000 (10 GB/s)");
        }
        let fetch = sis_fetch::FetchPolicy {
            allow,
            max_bytes: self.fetch_max_mb * 1_000_000,
            total_timeout: job_secs("fetch-timeout-s", self.fetch_timeout_s, 86_400.0)?,
            min_rate: self.fetch_min_rate_kb * 1000,
            stall_timeout: job_secs("fetch-stall-s", self.fetch_stall_s, 3600.0)?,
            callback_timeout: job_secs("callback-timeout-s", self.callback_timeout_s, 600.0)?,
            ..Default::default()
        };
        let job_project_max = self.job_project_max.unwrap_or((job_workers / 2).max(1));
        if job_project_max == 0 || job_project_max > job_workers {
            bail!("--job-project-max {job_project_max}: must be between 1 and --job-workers ({job_workers})");
        }
        if !(1..=1024).contains(&self.callback_concurrency) {
            bail!("--callback-concurrency must be between 1 and 1024");
        }
        let spool = data_dir.join("jobs");
        private_dir(&spool)?;
        make_private(&spool, 0o700);
        if self.max_connections < 16 || self.max_connections > 1_000_000 {
            bail!("--max-connections must be between 16 and 1000000");
        }
        let http = crate::http::Limits {
            max_connections: self.max_connections,
            header_timeout: seconds("header-timeout-s", self.header_timeout_s, 0.1, 3600.0)?,
            idle_timeout: seconds("idle-timeout-s", self.idle_timeout_s, 0.1, 86_400.0)?,
            body_stall: seconds("body-stall-s", self.body_stall_s, 0.1, 3600.0)?,
            body_timeout: seconds("body-timeout-s", self.body_timeout_s, 0.1, 86_400.0)?,
        };
        let shutdown_grace = seconds("shutdown-grace-s", self.shutdown_grace_s, 0.0, 86_400.0)?;
        // each check holds 19 MiB while it runs: a few are plenty for
        // sign-ins (tokens last a day) and bound the memory
        let password_checks = self
            .password_checks
            .unwrap_or_else(|| (2 * workers_default()).min(4));
        if !(1..=1024).contains(&password_checks) {
            bail!("--password-checks must be between 1 and 1024");
        }
        // at least one largest request must fit
        if !(32..=1 << 20).contains(&self.short_audio_memory_mb) {
            bail!("--short-audio-memory-mb must be between 32 and 1048576");
        }
        let callback_key = match &self.callback_key {
            Some(k) if k.len() < 16 => bail!("--callback-key must be at least 16 characters"),
            Some(k) => k.as_bytes().to_vec(),
            None => local_callback_key(data_dir)?,
        };
        if let Some(u) = &self.objects {
            let ok = u
                .strip_prefix("file://")
                .is_some_and(|d| d.starts_with('/'))
                || u.strip_prefix("s3://")
                    .is_some_and(|b| !b.is_empty() && !b.starts_with('/'));
            if !ok {
                bail!("--objects {u}: expected file:///ABSOLUTE/DIR or s3://BUCKET[/PREFIX]");
            }
        }
        let probe_exe = if self.no_probe {
            None
        } else {
            Some(
                std::env::current_exe()
                    .context("cannot find the sisd executable for the pack probe")?,
            )
        };
        Ok(ServeConfig {
            listen,
            data_dir: data_dir.clone(),
            auth,
            store_url: self.store.url(),
            master_key,
            token_ttl_s: self.token_ttl_s as i64,
            engine: EngineConfig {
                packs,
                workers,
                queue: self.queue,
                max_batch: 8,
                threads_per_decode: 1,
                probe_exe,
                use_vad: !self.no_vad,
                vad_min_audio_s: self.vad_min_audio_s,
                vad: VadSettings::default(),
                max_streams: self.max_streams,
                stream_workers: workers,
            },
            engine_workers,
            jobs: crate::jobs::JobsConfig {
                workers: job_workers,
                lease_ms: self.job_lease_s as i64 * 1000,
                retention_ms: (self.job_retention_h * 3_600_000.0) as i64,
                spool,
                callback_key,
                objects_url: self.objects.clone(),
                project_max: job_project_max,
                callback_concurrency: self.callback_concurrency,
            },
            fetch,
            http,
            shutdown_grace,
            password_checks,
            short_audio_memory_mb: self.short_audio_memory_mb,
        })
    }
}

/// One engine worker per 4 cores, 1 to 8. Each worker process costs a fixed
/// set of protocol threads and wake-ups: on 2 cores a second worker costs
/// about 5 % of the real-time streams held (BENCHMARKS.md), while more
/// workers only make a native crash's blast radius smaller.
fn engine_workers_default() -> usize {
    (workers_default() / 4).clamp(1, 8)
}

/// The number of cores.
fn workers_default() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// The callback signing key kept in the data directory, created on first use.
fn local_callback_key(data_dir: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join("callback.key");
    if let Ok(k) = std::fs::read_to_string(&path) {
        let k = k.trim();
        if k.len() >= 16 {
            make_private(&path, 0o600);
            return Ok(k.as_bytes().to_vec());
        }
    }
    let key = sis_auth::MasterKey::generate_hex();
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(format!("{key}\n").as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))?;
    make_private(&path, 0o600);
    Ok(key.into_bytes())
}
