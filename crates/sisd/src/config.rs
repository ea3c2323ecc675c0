//! Configuration in two phases: clap parses flags and environment into
//! [`ServeArgs`]; [`ServeArgs::validate`] turns them into a [`ServeConfig`]
//! that nothing downstream re-checks.

use std::net::SocketAddr;
use std::path::PathBuf;

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
    Serve(ServeArgs),
    /// Manage model packs.
    #[command(subcommand)]
    Models(ModelsCommand),
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
    #[command(flatten)]
    pub dirs: ModelDirs,
    /// Authentication: `none` (loopback only, for local development).
    #[arg(long, env = "SIS_AUTH", default_value = "none")]
    pub auth: String,
    /// Decode worker threads (default: number of cores).
    #[arg(long, env = "SIS_WORKERS")]
    pub workers: Option<usize>,
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    None,
}

/// Validated server configuration.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub auth: AuthMode,
    pub engine: EngineConfig,
}

impl ServeArgs {
    pub fn validate(&self) -> anyhow::Result<ServeConfig> {
        let listen: SocketAddr = self
            .listen
            .parse()
            .with_context(|| format!("--listen {}: expected IP:PORT", self.listen))?;
        let auth = match self.auth.as_str() {
            "none" => AuthMode::None,
            other => bail!("--auth {other}: only 'none' is available in this version"),
        };
        if auth == AuthMode::None && !listen.ip().is_loopback() {
            bail!("--auth none is refused on {listen}: without authentication the server may only listen on a loopback address");
        }
        std::fs::create_dir_all(&self.dirs.data_dir).with_context(|| {
            format!(
                "cannot create data directory {}",
                self.dirs.data_dir.display()
            )
        })?;
        let mut packs = Vec::new();
        for d in self.dirs.dirs() {
            let found = sis_engine::pack::discover(&d)?;
            if found.is_empty() {
                bail!(
                    "no model packs in {} (install some with `sisd models install`)",
                    d.display()
                );
            }
            packs.extend(found);
        }
        let workers = self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        });
        if workers == 0 || workers > 512 {
            bail!("--workers {workers}: must be between 1 and 512");
        }
        if !(0.0..=3600.0).contains(&self.vad_min_audio_s) {
            bail!("--vad-min-audio-s must be between 0 and 3600");
        }
        if self.queue == 0 {
            bail!("--queue must be at least 1");
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
            data_dir: self.dirs.data_dir.clone(),
            auth,
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
            },
        })
    }
}
