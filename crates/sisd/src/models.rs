//! `sisd models list|verify|install|catalog|probe`: the operator's side of
//! model packs (the pack format and the installer are `sis_engine::pack` and
//! `sis_engine::install`; the download is `download.rs`).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use sis_engine::install::{self, Catalog, CatalogEntry, Overrides};
use sis_engine::pack;

use crate::config::{self, CatalogSource, InstallArgs, ModelsCommand};
use crate::download::{self, Download};

pub fn run(cmd: ModelsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelsCommand::List(args) => {
            let mut summaries = Vec::new();
            for d in args.dirs.dirs() {
                for p in pack::discover(&d)? {
                    let pk = pack::Pack::open(&p)?;
                    let m = &pk.manifest;
                    summaries.push(sis_engine::PackSummary::of(m));
                    let served: Vec<String> = if m.speakers.is_empty() {
                        m.properties.clone()
                    } else {
                        m.speakers
                            .iter()
                            .map(|(v, sid)| format!("{v}=speaker {sid}"))
                            .collect()
                    };
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        m.name,
                        m.kind.as_str(),
                        m.model_type,
                        if served.is_empty() {
                            "-".to_string()
                        } else {
                            served.join(",")
                        },
                        p.display(),
                        if m.test_only {
                            "TEST PACK (synthetic test speech only)"
                        } else {
                            "-"
                        }
                    );
                }
            }
            list_voices(&args.espeak.espeak_ng, &summaries);
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
        ModelsCommand::Install(args) => install(args),
        ModelsCommand::Catalog(source) => {
            let catalog = load_catalog(&source)?;
            for e in &catalog.entries {
                println!(
                    "{}\t{}\t{}\t{:.1} MB\tsha256 {}\t{}\t{}\tlicence: {}\t{}",
                    e.name,
                    e.kind.as_str(),
                    e.model_type,
                    e.bytes as f64 / 1e6,
                    e.sha256,
                    if e.default { "default" } else { "-" },
                    e.url_under(source.base_url.as_deref())
                        .unwrap_or_else(|m| m),
                    e.license,
                    e.description
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

/// Speech synthesis after the packs: one line on espeak-ng, then one per
/// voice (`sis_engine::tts::voices`, the one table of them): the SIS
/// `property`, its gender, what reads it (the TTS pack and speaker when an
/// installed pack lists the voice, `sis_engine::choose_voices`; else the
/// espeak-ng voice and base pitch), its rates.
fn list_voices(espeak: &Path, packs: &[sis_engine::PackSummary]) {
    let by_pack = sis_engine::choose_voices(packs);
    use std::io::Write;
    let status = match sis_engine::tts::probe(espeak, Duration::from_secs(10)) {
        Ok(version) => format!("available\t{version}"),
        Err(reason) => format!("UNAVAILABLE\t{reason}"),
    };
    // a reader that stops early (`| head`) ends the listing, not the process
    let mut out = std::io::stdout().lock();
    if writeln!(out, "tts\tespeak-ng\t{status}\t{}", espeak.display()).is_err() {
        return;
    }
    for v in sis_engine::tts::VOICES {
        let rates = if v.only_16k { "16000" } else { "8000,16000" };
        let reader = match by_pack.get(v.name) {
            Some((i, sid)) => format!("pack {} speaker {sid}", packs[*i].name),
            None => format!("{} -p {}", v.espeak, v.espeak_pitch),
        };
        let line = format!(
            "tts-voice\t{}\t{}\t{reader}\t{rates}",
            v.name,
            v.gender.as_str(),
        );
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
}

fn load_catalog(source: &CatalogSource) -> anyhow::Result<Catalog> {
    match &source.catalog {
        Some(f) => Catalog::with_file(f).map_err(|m| anyhow::anyhow!(m)),
        None => Ok(Catalog::builtin()),
    }
}

/// Said after every install: the server reads its packs at start only.
fn restart_notice() {
    println!("a running sisd loads packs only at start: restart it to serve what was installed");
}

fn install(args: InstallArgs) -> anyhow::Result<ExitCode> {
    let dest = args
        .models_dir
        .clone()
        .unwrap_or_else(|| config::defaults::models(&args.data.data_dir));
    let catalog = load_catalog(&args.source)?;
    if let Some(path) = &args.from {
        let overrides = Overrides {
            name: args.name.clone(),
            properties: (!args.properties.is_empty()).then(|| args.properties.clone()),
        };
        let got = install::install_from(path, &dest, &catalog, &overrides)?;
        match &got.catalog {
            Some(entry) => println!(
                "installed {} (catalog pack {entry}, sha256 matched)",
                got.dir.display()
            ),
            None => println!("installed {}", got.dir.display()),
        }
        restart_notice();
        return Ok(ExitCode::SUCCESS);
    }
    let mut names: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    let defaults = catalog.defaults().map(|e| e.name.clone());
    let wanted: Vec<String> = if args.defaults {
        args.names.iter().cloned().chain(defaults).collect()
    } else {
        args.names.clone()
    };
    for n in wanted {
        if seen.insert(n.clone()) {
            names.push(n);
        }
    }
    if names.is_empty() {
        bail!("give catalog NAMEs, --defaults, or --from PATH (`sisd models catalog` lists the names)");
    }
    if args.url.is_some() && names.len() != 1 {
        bail!("--url downloads one pack: give exactly one NAME");
    }
    // every name is resolved before anything is downloaded
    let mut entries: Vec<&CatalogEntry> = Vec::new();
    for n in &names {
        let e = catalog.find(n).with_context(|| {
            format!(
                "{n} is not in the catalog; known: {}",
                catalog.names().join(", ")
            )
        })?;
        entries.push(e);
    }
    let connect_timeout = Duration::from_secs(args.connect_timeout_s);
    let mut installed = 0;
    for e in entries {
        let at = dest.join(&e.name);
        if at.exists() {
            if args.defaults {
                println!("{} is already installed in {}", e.name, at.display());
                continue;
            }
            bail!(
                "{} is already installed in {}; remove it first to reinstall",
                e.name,
                at.display()
            );
        }
        let url = match &args.url {
            Some(u) => u.clone(),
            None => e
                .url_under(args.source.base_url.as_deref())
                .map_err(|m| anyhow::anyhow!(m))?,
        };
        install_one(e, &url, &dest, connect_timeout)?;
        installed += 1;
    }
    if installed > 0 {
        restart_notice();
    }
    Ok(ExitCode::SUCCESS)
}

/// Downloads (resuming any partial file), checks the sha256, installs.
fn install_one(
    e: &CatalogEntry,
    url: &str,
    dest: &Path,
    connect_timeout: Duration,
) -> anyhow::Result<()> {
    let staging = install::staging_dir(dest);
    std::fs::create_dir_all(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let part = staging.join(format!("{}.part", e.name));
    let downloaded = download::download(&Download {
        url,
        part: &part,
        bytes: e.bytes,
        label: &e.name,
        connect_timeout,
    });
    if let Err(err) = downloaded {
        // an empty staging area is not left behind (a partial file is: the
        // next run resumes it)
        install::tidy(dest);
        return Err(err);
    }
    eprintln!("{}: checking sha256", e.name);
    let sha = match install::verify(e, &part) {
        Ok(sha) => sha,
        Err(err) => {
            // a download that is not the pinned file cannot be resumed into it
            let _ = std::fs::remove_file(&part);
            install::tidy(dest);
            bail!(
                "{err} (downloaded from {url}); the partial file {} was deleted",
                part.display()
            );
        }
    };
    let result = install::install_entry(e, &part, dest, url, Some(&sha));
    // the file was the pinned one: nothing to resume whatever happened next
    let _ = std::fs::remove_file(&part);
    install::tidy(dest);
    let got = result?;
    println!("installed {} in {}", e.name, got.dir.display());
    Ok(())
}
