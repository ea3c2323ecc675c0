//! Configuration, in three steps:
//!
//! 1. clap parses flags and environment into typed values ([`ServeArgs`]:
//!    a `SocketAddr`, an [`AuthMode`], durations, numbers whose parsers check
//!    their range). Every default is declared once, in [`defaults`], and
//!    shown by `--help`; README's table of flags is checked against these
//!    definitions (`readme_table_matches_the_flags`).
//! 2. [`ServeArgs::validate`] checks what involves more than one value, fills
//!    the defaults that depend on the machine, and builds the [`ServeConfig`]
//!    that nothing downstream re-checks. It reads (packs, the master key)
//!    and writes nothing.
//! 3. [`ServeConfig::prepare`] does the I/O: DATA_DIR and the job spool
//!    (0700), the store's files tightened, the callback key read or created.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::builder::RangedU64ValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use sis_engine::{EngineConfig, VadSettings};

/// Every default of the command line, declared once.
pub mod defaults {
    use std::path::{Path, PathBuf};

    use super::AuthMode;

    pub const LISTEN: &str = "127.0.0.1:8080";
    pub const DATA_DIR: &str = "sisd-data";
    pub const AUTH: AuthMode = AuthMode::None;
    /// The domain of projects and users created without `--domain`.
    pub const DOMAIN: &str = "default";
    pub const MAX_STREAMS: usize = 1000;
    pub const TOKEN_TTL_S: u64 = 86_400;
    pub const QUEUE: usize = 256;
    pub const VAD_MIN_AUDIO_S: &str = "10";
    pub const JOB_LEASE_S: u64 = 30;
    pub const JOB_RETENTION_H: &str = "72";
    pub const FETCH_ALLOW: &str = "";
    pub const FETCH_MAX_MB: u64 = 300;
    pub const FETCH_TIMEOUT_S: &str = "60";
    pub const FETCH_MIN_RATE_KB: u64 = 100;
    pub const FETCH_STALL_S: &str = "15";
    pub const CALLBACK_TIMEOUT_S: &str = "10";
    pub const CALLBACK_CONCURRENCY: usize = 16;
    pub const MAX_CONNECTIONS: usize = 4096;
    pub const HEADER_TIMEOUT_S: &str = "10";
    pub const IDLE_TIMEOUT_S: &str = "60";
    pub const BODY_STALL_S: &str = "15";
    pub const BODY_TIMEOUT_S: &str = "120";
    pub const SHUTDOWN_GRACE_S: &str = "30";
    pub const SHORT_AUDIO_MEMORY_MB: usize = 512;
    /// SIS documents 10 (v3 SDK) and 100 (API reference): the larger.
    pub const VOCABULARY_MAX_TABLES: usize = 100;
    /// SIS documents 1024 (v3 SDK) and 10000 (newer docs): the larger.
    pub const VOCABULARY_MAX_WORDS: usize = 10_000;
    /// The espeak-ng program: looked up on `PATH`.
    pub const ESPEAK_NG: &str = "espeak-ng";
    pub const TTS_TIMEOUT_S: &str = "30";

    /// `--tts-max-processes`: the number of cores.
    pub fn tts_max_processes() -> usize {
        workers()
    }

    /// `--workers`: the number of cores.
    pub fn workers() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    }

    /// `--engine-workers`: one per 4 cores, 1 to 8. Each worker process
    /// costs a fixed set of protocol threads and wake-ups: on 2 cores a
    /// second worker costs about 5 % of the real-time streams held
    /// (BENCHMARKS.md), while more workers only make a native crash's blast
    /// radius smaller.
    pub fn engine_workers() -> usize {
        (workers() / 4).clamp(1, 8)
    }

    /// `--job-workers`: as many as `--workers`.
    pub fn job_workers(workers: usize) -> usize {
        workers
    }

    /// `--job-project-max`: half of `--job-workers`, at least 1.
    pub fn job_project_max(job_workers: usize) -> usize {
        (job_workers / 2).max(1)
    }

    /// `--password-checks`: one per core, at most 4. Each check holds
    /// 19 MiB and a core while it runs: more checks than cores add memory,
    /// not sign-ins per second (and tokens last a day).
    pub fn password_checks() -> usize {
        workers().min(4)
    }

    /// `--models`: DATA_DIR/models.
    pub fn models(data_dir: &Path) -> PathBuf {
        data_dir.join("models")
    }

    /// `--store`: sqlite://DATA_DIR/sisd.db.
    pub fn store_url(data_dir: &Path) -> String {
        format!("sqlite://{}", data_dir.join("sisd.db").display())
    }

    /// `--callback-key`: a random key kept in DATA_DIR/callback.key.
    pub fn callback_key_file(data_dir: &Path) -> PathBuf {
        data_dir.join("callback.key")
    }

    /// Where job audio is spooled: DATA_DIR/jobs.
    pub fn spool(data_dir: &Path) -> PathBuf {
        data_dir.join("jobs")
    }
}

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
    /// Manage quotas: per project, for every project, for the whole service.
    #[command(subcommand)]
    Quotas(QuotasCommand),
    /// Manage API keys of the OpenAI-compatible endpoints (each maps to a project).
    #[command(subcommand, name = "api-keys")]
    ApiKeys(ApiKeysCommand),
    /// Print a new random master key (64 hex digits) for sealing secret keys.
    Keygen,
    /// The configuration file of `serve`.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// An engine worker process (started by `serve`; speaks a binary
    /// protocol on stdin/stdout).
    #[command(hide = true)]
    EngineWorker,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the configuration `serve` would run with (FILE, or SIS_CONFIG's
    /// file, under the environment's SIS_* variables), each value with where
    /// it came from and secrets redacted; or every mistake, each with its key.
    Check {
        /// A TOML file of `serve`'s settings. Default: SIS_CONFIG.
        file: Option<PathBuf>,
    },
    /// Print a commented configuration file with every key and its default.
    Example,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// The log format of this process: `serve`'s `--log-format`, else
/// SIS_LOG_FORMAT (which `serve` passes on to its engine worker processes).
pub fn log_format(cli: &Cli) -> LogFormat {
    if let Command::Serve(args) = &cli.command {
        return args.log_format;
    }
    match std::env::var("SIS_LOG_FORMAT").as_deref() {
        Ok("json") => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

/// The log filter when neither `RUST_LOG` nor `SIS_LOG` is set.
pub const DEFAULT_LOG: &str = "info";

/// The log filter (`tracing_subscriber::EnvFilter` directives): `RUST_LOG`
/// when set, else `SIS_LOG` (an alias), else [`DEFAULT_LOG`]; `sqlx` at
/// `warn` unless a directive names it (at debug it logs every SQL
/// statement, so `RUST_LOG=debug` would be mostly SQL).
pub fn log_filter(rust_log: Option<&str>, sis_log: Option<&str>) -> String {
    fn given(v: Option<&str>) -> Option<&str> {
        v.map(str::trim).filter(|v| !v.is_empty())
    }
    let spec = given(rust_log)
        .or_else(|| given(sis_log))
        .unwrap_or(DEFAULT_LOG);
    let names_sqlx = spec
        .split(',')
        .any(|d| d.trim_start().trim_start_matches('[').starts_with("sqlx"));
    if names_sqlx {
        spec.to_string()
    } else {
        format!("sqlx=warn,{spec}")
    }
}

/// The data directory.
#[derive(Args, Debug, Clone)]
pub struct DataDir {
    /// Data directory (embedded storage, installed models).
    #[arg(long, env = "SIS_DATA_DIR", default_value = defaults::DATA_DIR)]
    pub data_dir: PathBuf,
}

/// Where the store is and how secrets in it are sealed.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    #[command(flatten)]
    pub data: DataDir,
    /// Store URL: sqlite://PATH or postgres://... Default: sqlite://DATA_DIR/sisd.db.
    #[arg(long, env = "SIS_STORE_URL")]
    pub store: Option<String>,
    /// File holding the master key (64 hex digits) that seals secret keys at
    /// rest. Alternatively the environment variable SIS_MASTER_KEY.
    #[arg(long, env = "SIS_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
}

/// Where the store is: what `serve` and the operator commands open, found
/// by the one function [`StoreArgs::location`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreLocation {
    /// `sqlite://ABSOLUTE_PATH[?...]` or the PostgreSQL URL as given.
    pub url: String,
    /// The SQLite database file, when the store is one.
    pub sqlite_file: Option<PathBuf>,
    /// The store is DATA_DIR's default one (no `--store`).
    pub default: bool,
}

impl StoreLocation {
    /// The URL without a password, for messages and logs.
    pub fn shown(&self) -> String {
        sis_store::redact_url(&self.url)
    }
}

impl StoreArgs {
    /// The store `--store`/`SIS_STORE_URL` names, else DATA_DIR's
    /// (`--data-dir`/`SIS_DATA_DIR`), with a SQLite path made absolute (the
    /// same store whatever the working directory of a later command that
    /// is given the same settings; the directory's links resolved when it
    /// exists). Creates nothing.
    pub fn location(&self) -> anyhow::Result<StoreLocation> {
        let (url, default) = match &self.store {
            Some(u) => (u.clone(), false),
            None => (defaults::store_url(&self.data.data_dir), true),
        };
        let Some(rest) = url.strip_prefix("sqlite://") else {
            return Ok(StoreLocation {
                url,
                sqlite_file: None,
                default,
            });
        };
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        if path.is_empty() {
            bail!("store URL {url}: expected sqlite://PATH or postgres://...");
        }
        let file = std::path::absolute(path)
            .with_context(|| format!("cannot make the store path {path} absolute"))?;
        // `..` and links of a directory that exists resolved, for the message
        let file = match (file.parent(), file.file_name()) {
            (Some(dir), Some(name)) => std::fs::canonicalize(dir)
                .map(|d| d.join(name))
                .unwrap_or(file),
            _ => file,
        };
        let url = match query {
            Some(q) => format!("sqlite://{}?{q}", file.display()),
            None => format!("sqlite://{}", file.display()),
        };
        Ok(StoreLocation {
            url,
            sqlite_file: Some(file),
            default,
        })
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

/// A user of a domain.
#[derive(Args, Debug, Clone)]
pub struct UserName {
    #[arg(long, default_value = defaults::DOMAIN)]
    pub domain: String,
    #[arg(long)]
    pub name: String,
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
        #[arg(long, default_value = defaults::DOMAIN)]
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
        #[command(flatten)]
        user: UserName,
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
        #[command(flatten)]
        user: UserName,
    },
}

/// Whose quota: one project, every project without its own, or the
/// whole service.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct QuotaScope {
    /// A project (its id).
    #[arg(long)]
    pub project: Option<String>,
    /// Every project without a quota of its own.
    #[arg(long = "default")]
    pub default: bool,
    /// The whole service: every project together.
    #[arg(long)]
    pub all: bool,
}

impl QuotaScope {
    /// The scope as the store names it.
    pub fn scope(&self) -> String {
        match (&self.project, self.default) {
            (Some(p), _) => p.clone(),
            (None, true) => sis_store::DEFAULT_SCOPE.to_string(),
            (None, false) => sis_store::ALL_SCOPE.to_string(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum QuotasCommand {
    /// Set a scope's limits (replacing the ones it had; a limit not given
    /// is no limit). Every node applies them within 2 seconds; a refusal is
    /// HTTP 429 APIG.0308.
    Set {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        scope: QuotaScope,
        /// Real-time WebSocket sessions open at once.
        #[arg(long, value_parser = between(0, 1_000_000))]
        sessions: Option<usize>,
        /// Recognition jobs open (waiting or running) at once.
        #[arg(long, value_parser = between(0, 100_000_000))]
        jobs: Option<usize>,
        /// Requests per second (every API under /v1/{project_id}/).
        #[arg(long, value_parser = between(0, 1_000_000))]
        rps: Option<usize>,
    },
    /// List the quotas, one JSON line each.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove a scope's limits.
    Clear {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        scope: QuotaScope,
    },
}

#[derive(Subcommand, Debug)]
pub enum ApiKeysCommand {
    /// Create a key for a project (`Authorization: Bearer KEY` on
    /// /v1/audio/...); prints one JSON line with it. The key is shown only here.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        project: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List keys, one JSON line each (never the key).
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        project: Option<String>,
    },
    /// Revoke a key by its id.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        id: String,
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
    #[command(flatten)]
    pub data: DataDir,
}

impl ModelDirs {
    pub fn dirs(&self) -> Vec<PathBuf> {
        if self.models.is_empty() {
            vec![defaults::models(&self.data.data_dir)]
        } else {
            self.models.clone()
        }
    }
}

/// Speech synthesis's engine: espeak-ng, run as a separate process.
#[derive(Args, Debug, Clone)]
pub struct EspeakArg {
    /// The espeak-ng program (speech synthesis; GPL-3, run as a separate
    /// process, never linked): a path, or a name looked up on PATH.
    #[arg(long = "espeak-ng", env = "SIS_ESPEAK_NG", default_value = defaults::ESPEAK_NG,
          value_name = "PROGRAM")]
    pub espeak_ng: PathBuf,
}

/// `sisd models list`.
#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    #[command(flatten)]
    pub dirs: ModelDirs,
    #[command(flatten)]
    pub espeak: EspeakArg,
}

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// List installed packs and the properties they serve, and the speech
    /// synthesis voices (with espeak-ng's availability).
    List(ListArgs),
    /// Check every installed pack: files present, sha256, metadata.
    Verify(ModelDirs),
    /// Install packs: from the catalog by NAME (downloaded, sha256 checked),
    /// the default real set (--defaults), or from a local PATH (--from).
    /// A running server loads new packs only when restarted.
    Install(InstallArgs),
    /// Show the catalog of installable packs.
    Catalog(CatalogSource),
    /// Load one pack with sherpa-onnx and exit (used in a child process at start-up).
    #[command(hide = true)]
    Probe { dir: PathBuf },
}

/// Where catalog packs come from.
#[derive(Args, Debug, Clone)]
pub struct CatalogSource {
    /// Base URL of a mirror: replaces
    /// https://github.com/k2-fsa/sherpa-onnx/releases/download in every
    /// catalog URL (entries served elsewhere name their path under it).
    #[arg(long, env = "SIS_MODEL_BASE_URL")]
    pub base_url: Option<String>,
    /// A catalog file (TOML, the built-in catalog's format; see
    /// docs/PACKS.md) whose entries add to or replace the built-in ones.
    #[arg(long, env = "SIS_MODEL_CATALOG")]
    pub catalog: Option<PathBuf>,
}

/// `sisd models install`.
#[derive(Args, Debug)]
pub struct InstallArgs {
    /// Catalog names (see `sisd models catalog`).
    pub names: Vec<String>,
    /// Install the catalog's default set (streaming Mandarin, offline
    /// Mandarin, punctuation, VAD); packs already installed are skipped.
    #[arg(long)]
    pub defaults: bool,
    /// A pack directory; sherpa-onnx model files as published (a directory,
    /// or a .tar/.tar.gz/.tar.bz2 release archive); or a single .onnx file.
    #[arg(long, conflicts_with_all = ["names", "defaults", "url"])]
    pub from: Option<PathBuf>,
    /// Where to install. Default: DATA_DIR/models.
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataDir,
    #[command(flatten)]
    pub source: CatalogSource,
    /// Download the one NAME from this URL instead (its sha256 must still be
    /// the catalog's).
    #[arg(long, conflicts_with = "defaults")]
    pub url: Option<String>,
    /// With --from: the pack's name (default: from the directory or file name).
    #[arg(long, requires = "from")]
    pub name: Option<String>,
    /// With --from: the SIS properties the pack serves, comma-separated
    /// (default: by the language of its tokens).
    #[arg(long, requires = "from", value_delimiter = ',')]
    pub properties: Vec<String>,
    /// Seconds to wait for a connection: an unreachable network fails fast.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub connect_timeout_s: u64,
}

/// `--auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// No authentication; loopback only, for local development.
    None,
    /// AK/SK signatures and IAM-style tokens; needs a master key.
    Sis,
}

// ---- value parsers: a flag's value is checked where it is parsed ----

/// Seconds between `lo` and `hi`, as a duration.
fn seconds(lo: f64, hi: f64) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync {
    move |s: &str| {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a number of seconds"))?;
        if !(lo..=hi).contains(&v) {
            return Err(format!("must be between {lo} and {hi} seconds"));
        }
        Ok(Duration::from_secs_f64(v))
    }
}

/// A number between `lo` and `hi`.
fn between(lo: u64, hi: u64) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::<usize>::new().range(lo..=hi)
}

fn hours(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of hours"))?;
    if !(0.001..=8760.0).contains(&v) {
        return Err("must be between 0.001 and 8760 (a year)".into());
    }
    Ok(v)
}

fn vad_seconds(s: &str) -> Result<f32, String> {
    let v: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.0..=3600.0).contains(&v) {
        return Err("must be between 0 and 3600".into());
    }
    Ok(v)
}

fn allow_list(s: &str) -> Result<sis_fetch::AllowList, String> {
    sis_fetch::AllowList::parse(s).map_err(|e| e.to_string())
}

/// `--callback-key`: at least 16 characters.
fn callback_key(s: &str) -> Result<String, String> {
    if s.len() < 16 {
        return Err("must be at least 16 characters".into());
    }
    Ok(s.to_string())
}

/// `--flash-bucket NAME=URL`: the bucket name flash requests give as
/// `obs_bucket_name`, and where its objects are (as `--objects`).
fn flash_bucket(v: &str) -> Result<(String, String), String> {
    let (name, url) = v
        .split_once('=')
        .ok_or("expected NAME=file:///DIR or NAME=s3://BUCKET[/PREFIX]")?;
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !name_ok {
        return Err(format!(
            "bucket name '{name}': lower-case letters, digits, '-' and '.', at most 63"
        ));
    }
    Ok((name.to_string(), objects_url(url)?))
}

/// `--objects`: `file:///ABSOLUTE/DIR` or `s3://BUCKET[/PREFIX]`.
fn objects_url(u: &str) -> Result<String, String> {
    let ok = u
        .strip_prefix("file://")
        .is_some_and(|d| d.starts_with('/'))
        || u.strip_prefix("s3://")
            .is_some_and(|b| !b.is_empty() && !b.starts_with('/'));
    if !ok {
        return Err("expected file:///ABSOLUTE/DIR or s3://BUCKET[/PREFIX]".into());
    }
    Ok(u.to_string())
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// A TOML file of these settings, keyed by flag name (`sisd config
    /// example`); a flag or environment variable overrides its key.
    #[arg(long, env = "SIS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on (IP:PORT).
    #[arg(long, env = "SIS_LISTEN", default_value = defaults::LISTEN)]
    pub listen: SocketAddr,
    /// Models directory (a pack, or a directory of packs). Repeatable.
    /// Default: DATA_DIR/models.
    #[arg(long = "models", env = "SIS_MODELS", value_delimiter = ':')]
    pub models: Vec<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Authentication: `sis` (AK/SK signatures and IAM-style tokens, needs a
    /// master key) or `none` (no authentication; loopback only, for local
    /// development).
    #[arg(long, env = "SIS_AUTH", value_enum, default_value_t = defaults::AUTH)]
    pub auth: AuthMode,
    /// Real-time (WebSocket) sessions that may be open at once; more get SIS.0312.
    #[arg(long, env = "SIS_MAX_STREAMS", default_value_t = defaults::MAX_STREAMS,
          value_parser = between(1, u64::MAX))]
    pub max_streams: usize,
    /// Real-time streams that start a multi-stream decode call without
    /// waiting for more.
    #[arg(long, env = "SIS_STREAM_BATCH", default_value_t = sis_engine::stream::DEFAULT_MAX_BATCH,
          value_parser = between(1, 4096))]
    pub stream_batch: usize,
    /// How long (ms) a ready real-time stream waits for others to share its
    /// decode call; 0 decodes at once. Adds up to this much to each chunk's latency.
    #[arg(long, env = "SIS_STREAM_BATCH_WAIT_MS", default_value_t = sis_engine::stream::DEFAULT_BATCH_WAIT_MS,
          value_parser = clap::value_parser!(u64).range(0..=200))]
    pub stream_batch_wait_ms: u64,
    /// Lifetime of tokens issued by POST /v3/auth/tokens, in seconds (at most 366 days).
    #[arg(long, env = "SIS_TOKEN_TTL_S", default_value_t = defaults::TOKEN_TTL_S,
          value_parser = clap::value_parser!(u64).range(1..=366 * 86_400))]
    pub token_ttl_s: u64,
    /// Decode worker threads (default: number of cores).
    #[arg(long, env = "SIS_WORKERS", value_parser = between(1, 512))]
    pub workers: Option<usize>,
    /// Threads onnxruntime uses inside one decode call (each decode
    /// worker's calls; default 1: workers x threads should not exceed the cores).
    #[arg(long, env = "SIS_THREADS_PER_DECODE", default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(1..=64))]
    pub threads_per_decode: i32,
    /// Engine worker processes that run the models (a native crash ends
    /// one of them, not the server); 0 runs the engine in this process
    /// (default: one per 4 cores, at least 1, at most 8).
    #[arg(long, env = "SIS_ENGINE_WORKERS", value_parser = between(0, 64))]
    pub engine_workers: Option<usize>,
    /// Requests that may wait for a decode worker before new ones get SIS.0312.
    #[arg(long, env = "SIS_QUEUE", default_value_t = defaults::QUEUE,
          value_parser = between(1, u64::MAX))]
    pub queue: usize,
    /// Skip the child-process probe of each pack at start-up.
    #[arg(long)]
    pub no_probe: bool,
    /// Do not split audio at pauses with the VAD pack.
    #[arg(long)]
    pub no_vad: bool,
    /// Split only audio at least this many seconds long with the VAD pack.
    #[arg(long, env = "SIS_VAD_MIN_AUDIO_S", default_value = defaults::VAD_MIN_AUDIO_S,
          value_parser = vad_seconds, value_name = "SECONDS")]
    pub vad_min_audio_s: f32,
    /// Transcription jobs processed at once by this process (default: as
    /// many as --workers).
    #[arg(long, env = "SIS_JOB_WORKERS", value_parser = between(1, 256))]
    pub job_workers: Option<usize>,
    /// Seconds after its worker's last heartbeat that a running job is taken
    /// over by another worker (a worker renews every third of it).
    #[arg(long, env = "SIS_JOB_LEASE_S", default_value_t = defaults::JOB_LEASE_S,
          value_parser = clap::value_parser!(u64).range(3..=3600))]
    pub job_lease_s: u64,
    /// Hours a finished job's result is kept (SIS: 72).
    #[arg(long, env = "SIS_JOB_RETENTION_H", default_value = defaults::JOB_RETENTION_H,
          value_parser = hours, value_name = "HOURS")]
    pub job_retention_h: f64,
    /// Hosts or CIDRs that data_url and callback_url may reach although they
    /// are loopback, private or link-local (comma-separated, e.g. 127.0.0.1).
    #[arg(long, env = "SIS_FETCH_ALLOW", default_value = defaults::FETCH_ALLOW,
          value_parser = allow_list, value_name = "LIST")]
    pub fetch_allow: sis_fetch::AllowList,
    /// A directory whose regular files a job's data_url may name as
    /// file:///PATH (no `..`, no link leading out, no FIFO or device;
    /// at most --fetch-max-mb). Default: none (file: URLs are refused).
    #[arg(long, env = "SIS_JOB_FILES_DIR", value_name = "DIR")]
    pub job_files_dir: Option<PathBuf>,
    /// Largest audio file a job downloads, in MB.
    #[arg(long, env = "SIS_FETCH_MAX_MB", default_value_t = defaults::FETCH_MAX_MB,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub fetch_max_mb: u64,
    /// Seconds a job's download may take beyond what its size needs at
    /// --fetch-min-rate-kb (the deadline grows with the bytes received).
    #[arg(long = "fetch-timeout-s", env = "SIS_FETCH_TIMEOUT_S", default_value = defaults::FETCH_TIMEOUT_S,
          value_parser = seconds(0.1, 86_400.0), value_name = "SECONDS")]
    pub fetch_timeout: Duration,
    /// Average rate, in kB/s, a download must keep beyond --fetch-timeout-s;
    /// a slower one ends its job in ERROR (0: no rate, the deadline is
    /// --fetch-timeout-s).
    #[arg(long, env = "SIS_FETCH_MIN_RATE_KB", default_value_t = defaults::FETCH_MIN_RATE_KB,
          value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub fetch_min_rate_kb: u64,
    /// Seconds a download may receive nothing before its job ends in ERROR.
    #[arg(long = "fetch-stall-s", env = "SIS_FETCH_STALL_S", default_value = defaults::FETCH_STALL_S,
          value_parser = seconds(0.1, 3600.0), value_name = "SECONDS")]
    pub fetch_stall: Duration,
    /// Jobs of one project this process runs at once (default: half of
    /// --job-workers, at least 1), so one project cannot hold every worker.
    #[arg(long, env = "SIS_JOB_PROJECT_MAX", value_parser = between(1, 256))]
    pub job_project_max: Option<usize>,
    /// Seconds one callback POST may take, until its response status.
    #[arg(long = "callback-timeout-s", env = "SIS_CALLBACK_TIMEOUT_S", default_value = defaults::CALLBACK_TIMEOUT_S,
          value_parser = seconds(0.1, 600.0), value_name = "SECONDS")]
    pub callback_timeout: Duration,
    /// Callbacks delivered at once.
    #[arg(long, env = "SIS_CALLBACK_CONCURRENCY", default_value_t = defaults::CALLBACK_CONCURRENCY,
          value_parser = between(1, 1024))]
    pub callback_concurrency: usize,
    /// Key that signs result callbacks (X-Sis-Signature), at least 16
    /// characters. Default: a random key kept in DATA_DIR/callback.key
    /// (give every node the same key).
    #[arg(long, env = "SIS_CALLBACK_KEY", hide_env_values = true, value_parser = callback_key)]
    pub callback_key: Option<String>,
    /// Object storage for job audio and results: file:///DIR or
    /// s3://BUCKET[/PREFIX] (endpoint and credentials from AWS_* variables).
    /// Default: none (results in the store, audio spooled in DATA_DIR/jobs).
    #[arg(long, env = "SIS_OBJECTS_URL", value_parser = objects_url)]
    pub objects: Option<String>,
    /// A bucket flash recognition (`POST .../asr/flash`) reads from:
    /// NAME=file:///DIR or NAME=s3://BUCKET[/PREFIX] (credentials from AWS_*
    /// variables); NAME is what requests give as `obs_bucket_name`.
    /// Repeatable; none by default (flash answers SIS.0507).
    #[arg(long = "flash-bucket", env = "SIS_FLASH_BUCKETS", value_delimiter = ',',
          value_parser = flash_bucket)]
    pub flash_buckets: Vec<(String, String)>,
    /// Longest a flash recognition may take, in seconds (SIS.0033 beyond).
    #[arg(long, env = "SIS_FLASH_TIMEOUT_S", default_value_t = 600, value_parser = between(10, 3600))]
    pub flash_timeout_s: usize,
    /// HTTP and WebSocket connections open at once; more are closed at once.
    #[arg(long, env = "SIS_MAX_CONNECTIONS", default_value_t = defaults::MAX_CONNECTIONS,
          value_parser = between(16, 1_000_000))]
    pub max_connections: usize,
    /// Seconds a connection has to send a request's headers (from its
    /// accept, or from the first byte of a later request), WebSocket
    /// upgrades included; then it is closed.
    #[arg(long = "header-timeout-s", env = "SIS_HEADER_TIMEOUT_S", default_value = defaults::HEADER_TIMEOUT_S,
          value_parser = seconds(0.1, 3600.0), value_name = "SECONDS")]
    pub header_timeout: Duration,
    /// Seconds a keep-alive connection may wait for its next request (or a
    /// client may leave a response unread); then it is closed.
    #[arg(long = "idle-timeout-s", env = "SIS_IDLE_TIMEOUT_S", default_value = defaults::IDLE_TIMEOUT_S,
          value_parser = seconds(0.1, 86_400.0), value_name = "SECONDS")]
    pub idle_timeout: Duration,
    /// Seconds a request body may send nothing; then the request is answered
    /// 408 and the connection closed.
    #[arg(long = "body-stall-s", env = "SIS_BODY_STALL_S", default_value = defaults::BODY_STALL_S,
          value_parser = seconds(0.1, 3600.0), value_name = "SECONDS")]
    pub body_stall: Duration,
    /// Seconds a whole request body may take after its headers.
    #[arg(long = "body-timeout-s", env = "SIS_BODY_TIMEOUT_S", default_value = defaults::BODY_TIMEOUT_S,
          value_parser = seconds(0.1, 86_400.0), value_name = "SECONDS")]
    pub body_timeout: Duration,
    /// On SIGTERM/SIGINT, seconds real-time sessions may take to finish
    /// before they get FATAL_ERROR.
    #[arg(long = "shutdown-grace-s", env = "SIS_SHUTDOWN_GRACE_S", default_value = defaults::SHUTDOWN_GRACE_S,
          value_parser = seconds(0.0, 86_400.0), value_name = "SECONDS")]
    pub shutdown_grace: Duration,
    /// Serve GET /metrics (Prometheus) on this address (IP:PORT) instead of
    /// on --listen: keeps it off the address clients reach.
    #[arg(long, env = "SIS_METRICS_LISTEN", value_name = "IP:PORT")]
    pub metrics_listen: Option<SocketAddr>,
    /// Log lines as `text` or as `json` (one object per line, with the
    /// request's trace_id; never audio or secrets).
    #[arg(long, env = "SIS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Password checks (argon2id, 19 MiB each) of POST /v3/auth/tokens run at
    /// once; more sign-ins get 429 APIG.0308 (default: one per core, at
    /// most 4).
    #[arg(long, env = "SIS_PASSWORD_CHECKS", value_parser = between(1, 1024))]
    pub password_checks: Option<usize>,
    /// Memory that short-audio requests being read, decoded or recognised may
    /// hold together (each counts twice its body plus 60 s of decoded audio);
    /// beyond it a request gets 429 SIS.0312 before its body is read.
    #[arg(long, env = "SIS_SHORT_AUDIO_MEMORY_MB", default_value_t = defaults::SHORT_AUDIO_MEMORY_MB,
          value_parser = between(32, 1 << 20))]
    pub short_audio_memory_mb: usize,
    /// Hot-word vocabularies one project may hold; creating more gets
    /// SIS.0208.
    #[arg(long, env = "SIS_VOCABULARY_MAX_TABLES", default_value_t = defaults::VOCABULARY_MAX_TABLES,
          value_parser = between(1, 100_000))]
    pub vocabulary_max_tables: usize,
    /// Entries (hot words and replacement rules) one vocabulary may hold;
    /// more get SIS.0032.
    #[arg(long, env = "SIS_VOCABULARY_MAX_WORDS", default_value_t = defaults::VOCABULARY_MAX_WORDS,
          value_parser = between(1, MAX_VOCABULARY_WORDS as u64))]
    pub vocabulary_max_words: usize,
    #[command(flatten)]
    pub espeak: EspeakArg,
    /// espeak-ng processes speech synthesis runs at once, over all requests
    /// (each sentence is one process; default: number of cores).
    #[arg(long, env = "SIS_TTS_MAX_PROCESSES", value_parser = between(1, 1024))]
    pub tts_max_processes: Option<usize>,
    /// Seconds one espeak-ng process may run before it is killed (its
    /// request gets SIS.0401).
    #[arg(long = "tts-timeout-s", env = "SIS_TTS_TIMEOUT_S", default_value = defaults::TTS_TIMEOUT_S,
          value_parser = seconds(0.1, 3600.0), value_name = "SECONDS")]
    pub tts_timeout: Duration,
}

/// The largest `--vocabulary-max-words`: such a vocabulary's body still fits
/// in the gateway's 12 MB.
const MAX_VOCABULARY_WORDS: usize = sis_core::hotwords::MAX_TABLE_WORDS;

/// What one project may keep in vocabularies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VocabularyLimits {
    /// Vocabularies per project.
    pub per_project: usize,
    /// Entries per vocabulary.
    pub words: usize,
}

/// Where the key that signs callbacks comes from.
#[derive(Clone, Debug)]
pub enum CallbackKey {
    /// `--callback-key`.
    Given(Vec<u8>),
    /// Read from this file, created with a random key if missing.
    File(PathBuf),
}

/// Job settings before [`ServeConfig::prepare`] resolves the callback key.
#[derive(Clone, Debug)]
pub struct JobSettings {
    pub workers: usize,
    pub lease_ms: i64,
    pub retention_ms: i64,
    pub spool: PathBuf,
    pub project_max: usize,
    pub callback_concurrency: usize,
    pub callback_key: CallbackKey,
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
    pub jobs: JobSettings,
    /// Object storage for job audio and results (`sis_store::Objects::open`).
    pub objects_url: Option<String>,
    /// Flash recognition's buckets: name, URL.
    pub flash_buckets: Vec<(String, String)>,
    pub flash_timeout: Duration,
    pub fetch: sis_fetch::FetchPolicy,
    pub http: crate::http::Limits,
    /// Real-time sessions' time to finish after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// A listener of its own for /metrics.
    pub metrics_listen: Option<SocketAddr>,
    /// Password checks that may run at once.
    pub password_checks: usize,
    pub short_audio_memory_mb: usize,
    pub vocabularies: VocabularyLimits,
    /// Speech synthesis.
    pub tts: sis_engine::tts::TtsSettings,
}

impl ServeArgs {
    /// The [`ServeConfig`]; reads packs and the master key, writes nothing.
    pub fn validate(&self) -> anyhow::Result<ServeConfig> {
        let listen = self.listen;
        let store = self.store.location()?;
        if self.auth == AuthMode::None && !listen.ip().is_loopback() {
            bail!("--auth none is refused on {listen}: without authentication the server may only listen on a loopback address (use --auth sis)");
        }
        let master_key = match self.auth {
            AuthMode::Sis => Some(self.store.require_master_key()?),
            AuthMode::None => self.store.master_key()?,
        };
        let data_dir = &self.store.data.data_dir;
        let model_dirs = ModelDirs {
            models: self.models.clone(),
            data: self.store.data.clone(),
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
        let workers = self.workers.unwrap_or_else(defaults::workers);
        let engine_workers = self.engine_workers.unwrap_or_else(defaults::engine_workers);
        let job_workers = self
            .job_workers
            .unwrap_or_else(|| defaults::job_workers(workers));
        if !(1..=256).contains(&job_workers) {
            bail!("--job-workers {job_workers}: must be between 1 and 256");
        }
        let job_project_max = self
            .job_project_max
            .unwrap_or_else(|| defaults::job_project_max(job_workers));
        if job_project_max > job_workers {
            bail!("--job-project-max {job_project_max}: must be between 1 and --job-workers ({job_workers})");
        }
        let job_files = match &self.job_files_dir {
            Some(d) => {
                let d = std::path::absolute(d)
                    .with_context(|| format!("--job-files-dir {}", d.display()))?;
                if !d.is_dir() {
                    bail!("--job-files-dir {}: not a directory", d.display());
                }
                Some(d)
            }
            None => None,
        };
        let fetch = sis_fetch::FetchPolicy {
            local_dir: job_files,
            allow: self.fetch_allow.clone(),
            max_bytes: self.fetch_max_mb * 1_000_000,
            total_timeout: self.fetch_timeout,
            min_rate: self.fetch_min_rate_kb * 1000,
            stall_timeout: self.fetch_stall,
            callback_timeout: self.callback_timeout,
            ..Default::default()
        };
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
            auth: self.auth,
            store_url: store.url,
            master_key,
            token_ttl_s: self.token_ttl_s as i64,
            engine: EngineConfig {
                packs,
                workers,
                queue: self.queue,
                max_batch: 8,
                threads_per_decode: self.threads_per_decode,
                probe_exe,
                use_vad: !self.no_vad,
                vad_min_audio_s: self.vad_min_audio_s,
                vad: VadSettings::default(),
                max_streams: self.max_streams,
                stream_workers: workers,
                stream_batching: sis_engine::stream::Batching {
                    max_batch: self.stream_batch,
                    wait: std::time::Duration::from_millis(self.stream_batch_wait_ms),
                },
            },
            engine_workers,
            jobs: JobSettings {
                workers: job_workers,
                lease_ms: self.job_lease_s as i64 * 1000,
                retention_ms: (self.job_retention_h * 3_600_000.0) as i64,
                spool: defaults::spool(data_dir),
                project_max: job_project_max,
                callback_concurrency: self.callback_concurrency,
                callback_key: match &self.callback_key {
                    Some(k) => CallbackKey::Given(k.as_bytes().to_vec()),
                    None => CallbackKey::File(defaults::callback_key_file(data_dir)),
                },
            },
            objects_url: self.objects.clone(),
            flash_buckets: self.flash_buckets.clone(),
            flash_timeout: Duration::from_secs(self.flash_timeout_s as u64),
            fetch,
            http: crate::http::Limits {
                max_connections: self.max_connections,
                header_timeout: self.header_timeout,
                idle_timeout: self.idle_timeout,
                body_stall: self.body_stall,
                body_timeout: self.body_timeout,
            },
            shutdown_grace: self.shutdown_grace,
            metrics_listen: self.metrics_listen,
            password_checks: self
                .password_checks
                .unwrap_or_else(defaults::password_checks),
            short_audio_memory_mb: self.short_audio_memory_mb,
            vocabularies: VocabularyLimits {
                per_project: self.vocabulary_max_tables,
                words: self.vocabulary_max_words,
            },
            tts: sis_engine::tts::TtsSettings {
                espeak: self.espeak.espeak_ng.clone(),
                max_processes: self
                    .tts_max_processes
                    .unwrap_or_else(defaults::tts_max_processes),
                timeout: self.tts_timeout,
            },
        })
    }
}

/// What [`ServeConfig::prepare`] made or found on disk.
pub struct Prepared {
    pub jobs: sis_jobs::JobsConfig,
}

impl ServeConfig {
    /// Creates DATA_DIR and the job spool (0700), tightens the SQLite
    /// store's files, and reads or creates the callback key.
    pub fn prepare(&self) -> anyhow::Result<Prepared> {
        private_dir(&self.data_dir)?;
        let j = &self.jobs;
        private_dir(&j.spool)?;
        make_private(&j.spool, 0o700);
        if let Some(path) = self.store_url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            for suffix in ["", "-wal", "-shm"] {
                make_private(Path::new(&format!("{path}{suffix}")), 0o600);
            }
        }
        let callback_key = match &j.callback_key {
            CallbackKey::Given(k) => k.clone(),
            CallbackKey::File(path) => local_callback_key(path)?,
        };
        Ok(Prepared {
            jobs: sis_jobs::JobsConfig {
                workers: j.workers,
                lease_ms: j.lease_ms,
                retention_ms: j.retention_ms,
                spool: j.spool.clone(),
                callback_key,
                project_max: j.project_max,
                callback_concurrency: j.callback_concurrency,
            },
        })
    }
}

/// Creates a directory (and missing parents) readable by the owner only.
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))
}

/// Takes group and other permissions off a file or directory the server
/// created (an older version made them world-readable).
fn make_private(path: &Path, mode: u32) {
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

/// The callback signing key kept at `path`, created on first use.
fn local_callback_key(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(k) = std::fs::read_to_string(path) {
        let k = k.trim();
        if k.len() >= 16 {
            make_private(path, 0o600);
            return Ok(k.as_bytes().to_vec());
        }
    }
    let key = sis_auth::MasterKey::generate_hex();
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(format!("{key}\n").as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))?;
    make_private(path, 0o600);
    Ok(key.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn testdata_models() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/models")
    }

    fn serve_args(extra: &[&str]) -> Result<ServeArgs, clap::Error> {
        let mut argv = vec!["sisd", "serve"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv)?.command {
            Command::Serve(a) => Ok(*a),
            other => panic!("not serve: {other:?}"),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "sisd-config-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        assert!(!d.exists());
        d
    }

    #[test]
    fn values_are_typed_when_parsed() {
        let models = testdata_models();
        let a = serve_args(&[
            "--listen",
            "127.0.0.1:9000",
            "--auth",
            "none",
            "--header-timeout-s",
            "2.5",
            "--models",
            models.to_str().expect("utf-8 path"),
        ])
        .expect("valid flags");
        assert_eq!(a.listen, "127.0.0.1:9000".parse().expect("an address"));
        assert_eq!(a.auth, AuthMode::None);
        assert_eq!(a.header_timeout, Duration::from_millis(2500));
        for bad in [
            &["--listen", "localhost"][..],
            &["--auth", "basic"],
            &["--header-timeout-s", "0"],
            &["--header-timeout-s", "ten"],
            &["--job-lease-s", "2"],
            &["--max-connections", "15"],
            &["--workers", "0"],
            &["--engine-workers", "65"],
            &["--callback-key", "short"],
            &["--objects", "file://relative"],
            &["--fetch-allow", "10.0.0.1/8"],
            &["--job-retention-h", "0"],
            &["--short-audio-memory-mb", "31"],
            &["--vocabulary-max-tables", "0"],
            &["--vocabulary-max-words", "40001"],
            &["--tts-max-processes", "0"],
            &["--tts-timeout-s", "0"],
        ] {
            assert!(serve_args(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn validation_has_no_side_effects_and_preparation_makes_private_files() {
        use std::os::unix::fs::PermissionsExt;
        let data = temp_dir("prepare");
        let models = testdata_models();
        let a = serve_args(&[
            "--data-dir",
            data.to_str().expect("utf-8 path"),
            "--models",
            models.to_str().expect("utf-8 path"),
            "--no-probe",
        ])
        .expect("valid flags");
        let cfg = a.validate().expect("a valid configuration");
        assert!(!data.exists(), "validate created {}", data.display());
        assert_eq!(cfg.engine.packs.len(), 4); // the committed CTC and transducer packs
        assert!(matches!(cfg.jobs.callback_key, CallbackKey::File(_)));

        let prepared = cfg.prepare().expect("prepared");
        let mode = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("jobs")), 0o700);
        assert_eq!(mode(&data.join("callback.key")), 0o600);
        assert_eq!(prepared.jobs.callback_key.len(), 64);
        // the key is kept: a second start signs with the same one
        let again = cfg.prepare().expect("prepared again");
        assert_eq!(again.jobs.callback_key, prepared.jobs.callback_key);
        let _ = std::fs::remove_dir_all(&data);
    }

    #[test]
    fn cross_checks_and_machine_defaults() {
        let models = testdata_models();
        let m = models.to_str().expect("utf-8 path");
        let off_loopback = serve_args(&["--listen", "0.0.0.0:0", "--models", m])
            .expect("valid flags")
            .validate();
        assert!(off_loopback.is_err_and(|e| e.to_string().contains("loopback")));
        let too_many = serve_args(&[
            "--models",
            m,
            "--no-probe",
            "--job-workers",
            "2",
            "--job-project-max",
            "3",
        ])
        .expect("valid flags")
        .validate();
        assert!(too_many.is_err_and(|e| e.to_string().contains("--job-project-max 3")));
        let cfg = serve_args(&["--models", m, "--no-probe", "--job-workers", "6"])
            .expect("valid flags")
            .validate()
            .expect("valid");
        assert_eq!(cfg.jobs.workers, 6);
        assert_eq!(cfg.jobs.project_max, 3, "half of --job-workers");
        assert_eq!(cfg.engine.workers, defaults::workers());
        assert_eq!(cfg.password_checks, defaults::password_checks());
        assert_eq!(cfg.tts.max_processes, defaults::workers());
        assert_eq!(cfg.tts.espeak, PathBuf::from("espeak-ng"));
        assert_eq!(cfg.tts.timeout, Duration::from_secs(30));
        assert!(cfg.store_url.ends_with("/sisd.db") && cfg.store_url.starts_with("sqlite://"));
    }

    #[test]
    fn serve_and_the_operator_commands_find_the_same_store() {
        let cwd = std::env::current_dir().expect("a working directory");
        let args = |argv: &[&str]| match Cli::try_parse_from(argv).expect("valid").command {
            Command::Projects(ProjectsCommand::List { store }) => store,
            other => panic!("not projects list: {other:?}"),
        };
        let rel = args(&["sisd", "projects", "list", "--data-dir", "some/dir"])
            .location()
            .expect("a location");
        let file = cwd.join("some/dir/sisd.db");
        assert_eq!(rel.url, format!("sqlite://{}", file.display()));
        assert_eq!(rel.sqlite_file.as_deref(), Some(file.as_path()));
        assert!(rel.default);
        // serve resolves it with the same function
        let models = testdata_models();
        let serve = serve_args(&[
            "--data-dir",
            "some/dir",
            "--models",
            models.to_str().expect("utf-8 path"),
            "--no-probe",
        ])
        .expect("valid flags")
        .validate()
        .expect("valid");
        assert_eq!(serve.store_url, rel.url);
        let given = args(&[
            "sisd",
            "projects",
            "list",
            "--store",
            "sqlite://x.db?mode=rwc",
        ])
        .location()
        .expect("a location");
        let real_cwd = std::fs::canonicalize(&cwd).expect("the working directory");
        assert_eq!(
            given.url,
            format!("sqlite://{}?mode=rwc", real_cwd.join("x.db").display())
        );
        assert!(!given.default);
        let pg = args(&[
            "sisd",
            "projects",
            "list",
            "--store",
            "postgres://sis:s3cret@db/sis",
        ])
        .location()
        .expect("a location");
        assert_eq!(pg.sqlite_file, None);
        assert_eq!(pg.shown(), "postgres://sis:***@db/sis");
        assert!(args(&["sisd", "projects", "list", "--store", "sqlite://"])
            .location()
            .is_err());
    }

    #[test]
    fn rust_log_wins_and_sqlx_stays_quiet_unless_named() {
        assert_eq!(log_filter(None, None), "sqlx=warn,info");
        assert_eq!(log_filter(Some("debug"), Some("warn")), "sqlx=warn,debug");
        assert_eq!(log_filter(None, Some("sisd=debug")), "sqlx=warn,sisd=debug");
        assert_eq!(log_filter(Some(" "), Some("warn")), "sqlx=warn,warn");
        assert_eq!(
            log_filter(Some("debug,sqlx=debug"), None),
            "debug,sqlx=debug"
        );
        assert_eq!(
            log_filter(Some("info,sqlx::query=info"), None),
            "info,sqlx::query=info"
        );
        for spec in [log_filter(None, None), log_filter(Some("debug"), None)] {
            assert!(
                tracing_subscriber::EnvFilter::try_new(&spec).is_ok(),
                "{spec}"
            );
        }
    }

    #[test]
    fn job_files_dir_must_be_a_directory() {
        let models = testdata_models();
        let m = models.to_str().expect("utf-8 path");
        let dir = temp_dir("job-files");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let d = dir.to_str().expect("utf-8 path");
        let cfg = serve_args(&["--models", m, "--no-probe", "--job-files-dir", d])
            .expect("valid flags")
            .validate()
            .expect("valid");
        assert_eq!(cfg.fetch.local_dir.as_deref(), Some(dir.as_path()));
        let none = serve_args(&["--models", m, "--no-probe"])
            .expect("valid flags")
            .validate()
            .expect("valid");
        assert_eq!(
            none.fetch.local_dir, None,
            "not set: file: URLs are refused"
        );
        let missing = dir.join("missing");
        let err = serve_args(&[
            "--models",
            m,
            "--no-probe",
            "--job-files-dir",
            missing.to_str().expect("utf-8 path"),
        ])
        .expect("valid flags")
        .validate()
        .expect_err("not a directory");
        assert!(err.to_string().contains("--job-files-dir"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// README.md's table of `sisd serve` flags names every flag, with its
    /// environment variable and default as clap defines them.
    #[test]
    fn readme_table_matches_the_flags() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
                .expect("README.md");
        let rows: Vec<Vec<String>> = readme
            .lines()
            .skip_while(|l| !l.starts_with("| flag | env | default |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                l.trim()
                    .trim_matches('|')
                    .split('|')
                    .map(|c| c.trim().to_string())
                    .collect()
            })
            .collect();
        assert!(rows.len() > 30, "the table was not found");
        let first_code = |cell: &str| cell.split('`').nth(1).unwrap_or("").to_string();
        let cli = Cli::command();
        let serve = cli.find_subcommand("serve").expect("serve");
        let mut flags = vec![];
        for arg in serve.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if long == "help" || long == "version" {
                continue;
            }
            let flag = format!("--{long}");
            let row = rows
                .iter()
                .find(|r| first_code(&r[0]) == flag)
                .unwrap_or_else(|| panic!("{flag} is not in README's table"));
            let env = arg.get_env().map(|e| e.to_string_lossy().to_string());
            assert_eq!(
                env.unwrap_or_default(),
                first_code(&row[1]),
                "{flag}: environment variable"
            );
            let default: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().to_string())
                .collect();
            let readme_default = row[2].replace('`', "");
            match default.as_slice() {
                // a switch (--no-probe): off unless given
                _ if !arg.get_action().takes_values() => {
                    assert_eq!(readme_default, "", "{flag}: a switch has no default")
                }
                [d] => assert_eq!(&readme_default, d, "{flag}: default"),
                _ => assert!(
                    readme_default.parse::<f64>().is_err(),
                    "{flag}: README gives the default {readme_default}, clap none"
                ),
            }
            flags.push(flag);
        }
        for r in &rows {
            assert!(
                flags.contains(&first_code(&r[0])),
                "README lists {}, which `sisd serve` does not have",
                r[0]
            );
        }
    }
}
