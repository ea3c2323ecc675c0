//! The configuration file of `sisd serve` (TOML, `--config FILE` or
//! `SIS_CONFIG`). Its keys are `serve`'s long flags without the dashes in
//! front (`listen`, `max-streams`, `fetch-allow`, ...); a value is what the
//! flag takes: a string, a number, a boolean for a switch (`no-vad = true`),
//! an array for a flag that takes several (`models`, `flash-bucket`).
//!
//! The file does not add a parser: its values become the defaults of
//! `serve`'s clap definition ([`with_file`]), so the flag's own parser checks
//! them and clap's order gives the precedence: a flag, else its environment
//! variable, else the file, else the built-in default. [`check`] reads every
//! key of a file and reports every mistake at once, each with its key;
//! `sisd config check` and `sisd config example` are built on it.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches, Parser};

use crate::config::Cli;

/// The environment variable naming the file.
pub const ENV: &str = "SIS_CONFIG";

/// A file's values by argument id, as the strings the flag would be given.
#[derive(Debug, Default, Clone)]
pub struct FileValues {
    values: BTreeMap<String, Vec<String>>,
}

impl FileValues {
    /// The file gives a value for the argument `id`.
    pub fn has(&self, id: &str) -> bool {
        self.values.contains_key(id)
    }
}

/// `serve`'s clap definition.
pub fn serve_command() -> Command {
    Cli::command()
        .find_subcommand("serve")
        .cloned()
        .unwrap_or_else(|| Command::new("serve"))
}

/// The arguments a file may set: every one of `serve`'s long flags but
/// `--config` itself (and help).
fn settable(cmd: &Command) -> impl Iterator<Item = &Arg> {
    cmd.get_arguments().filter(|a| {
        a.get_long().is_some()
            && a.get_id() != "config"
            && !matches!(a.get_action(), ArgAction::Help | ArgAction::Version)
    })
}

/// Whether `arg` takes more than one value (repeatable, or a delimiter).
fn takes_many(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append) || arg.get_value_delimiter().is_some()
}

/// One value of the file as the flag's text, or why it cannot be one.
fn scalar(v: &toml::Value) -> Result<String, String> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Datetime(_) => Err("a date is not a value of any setting".into()),
        toml::Value::Array(_) => Err("expected one value, not an array".into()),
        toml::Value::Table(_) => Err("expected a value, not a table".into()),
    }
}

/// Reads `path` and checks every key against `cmd`: the values it gives,
/// and every mistake found (unknown keys, values of the wrong kind, values
/// the flag's parser refuses), each as "KEY: why"; an error if the file
/// cannot be read or is not TOML.
pub fn check(cmd: &Command, path: &Path) -> Result<(FileValues, Vec<String>), String> {
    let mut out = FileValues::default();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("{} is not TOML: {}", path.display(), e.message()))?;
    let mut errors = Vec::new();
    for (key, value) in &table {
        if value.is_table() {
            errors.push(format!(
                "{key}: a table; the file has no sections (`sisd config example`)"
            ));
            continue;
        }
        let Some(arg) = settable(cmd).find(|a| a.get_long() == Some(key.as_str())) else {
            errors.push(match key.as_str() {
                "config" => "config: a configuration file cannot name another".to_string(),
                _ if settable(cmd).any(|a| a.get_long() == Some(&key.replace('_', "-"))) => {
                    format!(
                        "{key}: unknown key (did you mean {}?)",
                        key.replace('_', "-")
                    )
                }
                _ => format!("{key}: unknown key (`sisd config example` lists every key)"),
            });
            continue;
        };
        let items: Result<Vec<String>, String> = match value {
            toml::Value::Array(a) if takes_many(arg) => a.iter().map(scalar).collect(),
            v => scalar(v).map(|s| vec![s]),
        };
        let items = match items {
            Ok(i) => i,
            Err(e) => {
                errors.push(format!("{key}: {e}"));
                continue;
            }
        };
        let mut ok = true;
        for item in &items {
            if let Err(e) = parse_one(arg, OsStr::new(item)) {
                errors.push(format!("{key}: {e}"));
                ok = false;
            }
        }
        if ok {
            out.values.insert(arg.get_id().to_string(), items);
        }
    }
    Ok((out, errors))
}

/// A clap error's sentence, without its usage lines and help hint.
pub fn clap_reason(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let line = text.lines().next().unwrap_or_default();
    line.trim_start_matches("error: ").to_string()
}

/// Runs `arg`'s own parser on one value, alone (clap keeps its value
/// parsers' entry point to itself: a command of this one argument, with no
/// environment variable, is given `--FLAG=VALUE`).
fn parse_one(arg: &Arg, value: &OsStr) -> Result<(), String> {
    let Some(long) = arg.get_long() else {
        return Ok(());
    };
    if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
        return match value.to_str() {
            Some("true" | "false") => Ok(()),
            _ => Err(format!("expected true or false, not {value:?}")),
        };
    }
    let mut flag = std::ffi::OsString::from(format!("--{long}="));
    flag.push(value);
    Command::new("sisd")
        .no_binary_name(true)
        .disable_help_flag(true)
        .arg(arg.clone().env(None::<&str>).required(false))
        .try_get_matches_from([flag])
        .map(drop)
        .map_err(|e| clap_reason(&e))
}

/// `cmd` with the file's values as its defaults.
pub fn with_file(cmd: Command, file: &FileValues) -> Command {
    let mut cmd = cmd;
    for (id, values) in &file.values {
        // clap keeps defaults as 'static strings; a file is read once
        let values: Vec<&'static str> = values
            .iter()
            .map(|v| &*Box::leak(v.clone().into_boxed_str()))
            .collect();
        cmd = cmd.mut_arg(id.as_str(), |a| a.default_values(values));
    }
    cmd
}

/// The whole command line with `serve`'s defaults taken from `file`.
pub fn cli_with_file(file: &FileValues) -> Command {
    Cli::command().mut_subcommand("serve", |c| with_file(c, file))
}

/// The values of the environment variables of `cmd`'s arguments that their
/// parsers refuse, each as "VAR: why" (clap itself stops at the first).
pub fn check_env(cmd: &Command) -> Vec<String> {
    let mut errors = Vec::new();
    for arg in settable(cmd) {
        let Some(var) = arg.get_env() else { continue };
        let Some(value) = std::env::var_os(var) else {
            continue;
        };
        let items: Vec<std::ffi::OsString> = match (arg.get_value_delimiter(), value.to_str()) {
            (Some(d), Some(s)) => s.split(d).map(Into::into).collect(),
            _ => vec![value.clone()],
        };
        for item in items {
            if let Err(e) = parse_one(arg, &item) {
                errors.push(format!("{}: {e}", var.to_string_lossy()));
            }
        }
    }
    errors
}

/// Settings whose values are never printed.
fn secret(arg: &Arg) -> bool {
    arg.is_hide_env_values_set()
}

/// A value as TOML: numbers and booleans bare, everything else a string.
fn toml_value(text: &str) -> toml::Value {
    if let Ok(i) = text.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(f) = text.parse::<f64>() {
        if f.is_finite() && text.contains('.') {
            return toml::Value::Float(f);
        }
    }
    match text {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(text.to_string()),
    }
}

/// The effective configuration of `serve` in `m` (parsed from
/// [`cli_with_file`]) as a TOML file that gives the same configuration,
/// each key with where its value came from; secrets redacted.
pub fn effective(cmd: &Command, m: &ArgMatches, file: &FileValues) -> String {
    let mut out = String::new();
    for arg in settable(cmd) {
        let id = arg.get_id().as_str();
        let Some(key) = arg.get_long() else { continue };
        let raw: Vec<String> = m
            .get_raw(id)
            .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let source = match m.value_source(id) {
            Some(ValueSource::CommandLine) => format!("--{key}"),
            Some(ValueSource::EnvVariable) => arg
                .get_env()
                .map(|v| v.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Some(ValueSource::DefaultValue) if file.has(id) => "file".into(),
            Some(ValueSource::DefaultValue) => "default".into(),
            _ => "unset".into(),
        };
        if raw.is_empty() {
            out.push_str(&format!("# {key} = (unset: {})\n", first_line(arg)));
            continue;
        }
        let shown: Vec<String> = raw
            .iter()
            .map(|v| match () {
                _ if secret(arg) => "<redacted>".to_string(),
                _ if key == "store" || key == "objects" => sis_store::redact_url(v),
                _ => v.clone(),
            })
            .collect();
        let value = if takes_many(arg) {
            toml::Value::Array(shown.iter().map(|v| toml_value(v)).collect())
        } else {
            toml_value(&shown[0])
        };
        out.push_str(&format!("{key} = {value}  # {source}\n"));
    }
    out
}

fn first_line(arg: &Arg) -> String {
    arg.get_help()
        .map(|h| h.to_string())
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A commented file with every key and its default: what
/// `sisd config example` prints.
pub fn example(cmd: &Command) -> String {
    let mut out = String::from(
        "# sisd serve --config FILE (or SIS_CONFIG=FILE).\n\
         # Every key is one of `sisd serve`'s flags; a flag given on the command\n\
         # line wins over its environment variable, which wins over this file,\n\
         # which wins over the built-in default. Uncomment a line to change it.\n",
    );
    for arg in settable(cmd) {
        let Some(key) = arg.get_long() else { continue };
        out.push('\n');
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        for line in help.lines() {
            wrap_comment(&mut out, line);
        }
        if let Some(env) = arg.get_env() {
            out.push_str(&format!("# env: {}\n", env.to_string_lossy()));
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let line = match (defaults.as_slice(), arg.get_action()) {
            (_, ArgAction::SetTrue) => format!("{key} = false"),
            ([], _) => format!("{key} = ...  (no default: unset)"),
            (d, _) if takes_many(arg) => format!(
                "{key} = {}",
                toml::Value::Array(d.iter().map(|v| toml_value(v)).collect())
            ),
            ([d, ..], _) => format!("{key} = {}", toml_value(d)),
        };
        out.push_str(&format!("# {line}\n"));
    }
    out
}

/// `text` as comment lines of at most 78 characters.
fn wrap_comment(out: &mut String, text: &str) {
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() > 1 && line.chars().count() + 1 + word.chars().count() > 78 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

/// The command line, with `serve`'s `--config` file (or SIS_CONFIG's) read:
/// its values stand in for the built-in defaults, under flags and
/// environment variables (`config_file`). A file with mistakes ends the
/// process with every one of them.
pub fn parse_cli() -> Cli {
    let cli = Cli::parse();
    let crate::config::Command::Serve(args) = &cli.command else {
        return cli;
    };
    let Some(path) = &args.config else {
        return cli;
    };
    let (file, errors) =
        check(&serve_command(), path).unwrap_or_else(|e| (Default::default(), vec![e]));
    if !errors.is_empty() {
        eprintln!("sisd: {} is not a valid configuration:", path.display());
        for e in errors {
            eprintln!("  {e}");
        }
        std::process::exit(2);
    }
    let m = cli_with_file(&file).get_matches();
    Cli::from_arg_matches(&m).unwrap_or_else(|e| e.exit())
}
