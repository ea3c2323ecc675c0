//! `sis`: the command-line client of sisd (and Huawei Cloud SIS), with the
//! Huawei SDKs' credential conventions: `HUAWEICLOUD_SDK_AK`,
//! `HUAWEICLOUD_SDK_SK`, `HUAWEICLOUD_SDK_PROJECT_ID`, or a token
//! (`SIS_TOKEN`); the endpoint from `--endpoint` or `SIS_ENDPOINT`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};
use sis_client::{Auth, Client, ClientError};
use sis_protocol::openai::{joined_text, srt, vtt, Segment};

#[derive(Parser)]
#[command(
    name = "sis",
    version,
    about = "Command-line client of the SIS API (sisd)"
)]
struct Cli {
    /// The service: http(s)://HOST[:PORT].
    #[arg(
        long,
        env = "SIS_ENDPOINT",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    endpoint: String,
    /// The project id (as in the Huawei SDKs).
    #[arg(long, env = "HUAWEICLOUD_SDK_PROJECT_ID", global = true)]
    project: Option<String>,
    /// Access key (AK/SK signatures).
    #[arg(
        long,
        env = "HUAWEICLOUD_SDK_AK",
        global = true,
        hide_env_values = true
    )]
    ak: Option<String>,
    /// Secret key.
    #[arg(
        long,
        env = "HUAWEICLOUD_SDK_SK",
        global = true,
        hide_env_values = true
    )]
    sk: Option<String>,
    /// An IAM token instead of AK/SK.
    #[arg(long, env = "SIS_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Digits as numerals (`yes`, SIS's default) or as words (`no`).
    #[arg(long, default_value = "yes", value_parser = ["yes", "no"], global = true)]
    digit_norm: String,
    /// Punctuation in results (`yes` or `no`, SIS's default).
    #[arg(long, default_value = "no", value_parser = ["yes", "no"], global = true)]
    add_punc: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Output {
    Text,
    Json,
    Srt,
    Vtt,
}

/// Which API transcribes a file.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Via {
    /// Short audio up to 60 s, a job beyond.
    Auto,
    ShortAudio,
    /// Upload the file, run a transcription job, wait for its result.
    Job,
    /// A continue-stream session, as fast as the service takes the audio.
    Stream,
}

#[derive(Subcommand)]
enum Cmd {
    /// Transcribe audio files (any format sisd reads): up to 60 s by the
    /// short-audio API; longer ones are uploaded and transcribed by a job
    /// (or streamed through a continue-stream session with --via stream).
    Transcribe {
        files: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Via::Auto)]
        via: Via,
        #[arg(long, default_value = "chinese_16k_general")]
        property: String,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        format: Output,
        /// Write here instead of standard output (one file only).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Real-time recognition of a file (or `-`: 16 kHz 16-bit mono PCM on
    /// standard input) at real speed; interim results rewritten in place.
    Stream {
        file: String,
        #[arg(long, default_value = "chinese_16k_general")]
        property: String,
        #[arg(long, default_value = "continue-stream")]
        mode: String,
    },
    /// Speech synthesis into a file.
    Tts {
        text: String,
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long, default_value = "chinese_xiaoyan_common")]
        voice: String,
        /// wav, mp3 or pcm.
        #[arg(long, default_value = "wav")]
        format: String,
        #[arg(long, default_value_t = 16000)]
        rate: u32,
        /// [-500, 500].
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        speed: i32,
        /// Real-time synthesis (`/rtts`): the audio is written as it
        /// arrives (pcm only, as SIS streams it).
        #[arg(long)]
        realtime: bool,
    },
    /// Hot-word vocabularies.
    #[command(subcommand)]
    Vocab(Vocab),
}

#[derive(Subcommand)]
enum Vocab {
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long, default_value = "chinese_mandarin")]
        language: String,
        words: Vec<String>,
    },
    List,
    Show {
        id: String,
    },
    Update {
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long, default_value = "chinese_mandarin")]
        language: String,
        words: Vec<String>,
    },
    Delete {
        id: String,
    },
}

/// A sentence a person understands, after the code.
fn advice(e: &ClientError, endpoint: &str) -> String {
    match e {
        ClientError::Connect { .. } => format!(
            "Is sisd running at {endpoint}? Set --endpoint or SIS_ENDPOINT to where it listens."
        ),
        ClientError::Audio(_) => {
            "The file could not be read as audio: check that it is a recording (WAV, MP3, M4A, OGG, FLAC, AMR...).".into()
        }
        ClientError::Protocol(_) => {
            "The service answered something this client does not understand.".into()
        }
        ClientError::Api { code, .. } => match code.as_str() {
            "APIG.0301" => "The credentials were not accepted: check HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (or SIS_TOKEN).".into(),
            "APIG.0302" => "These credentials belong to another project: check HUAWEICLOUD_SDK_PROJECT_ID.".into(),
            "APIG.0308" => "Too many requests for your quota right now: wait a moment and retry.".into(),
            "SIS.0312" => "The service is at its capacity: retry in a moment.".into(),
            "APIG.0201" => "The request is too large for the service.".into(),
            "APIG.0101" => "The service has no such API: check the endpoint.".into(),
            c if c.starts_with("SIS.04") => "The audio could not be read: check the file and its format.".into(),
            c if c.starts_with("SIS.02") => "The vocabulary was refused: see the message for which rule.".into(),
            c if c.starts_with("SIS.00") || c.starts_with("SIS.01") => {
                "The request was refused: see the message for which setting.".into()
            }
            _ => "The service refused the request.".into(),
        },
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sis: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let endpoint = cli.endpoint.clone();
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match e.downcast_ref::<ClientError>() {
                Some(c) => eprintln!("sis: {c}\n{}", advice(c, &endpoint)),
                None => eprintln!("sis: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let auth = match (&cli.token, &cli.ak, &cli.sk) {
        (Some(t), _, _) => Auth::Token(t.clone()),
        (None, Some(ak), Some(sk)) => Auth::AkSk {
            ak: ak.clone(),
            sk: sk.clone(),
        },
        (None, Some(_), None) | (None, None, Some(_)) => anyhow::bail!(
            "give both HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (or --ak and --sk), or a token"
        ),
        (None, None, None) => Auth::None,
    };
    let project = cli.project.clone().unwrap_or_else(|| "default".into());
    let options = json!({"digit_norm": cli.digit_norm, "add_punc": cli.add_punc});
    let client = Client::new(&cli.endpoint, &project, auth)?;
    match cli.command {
        Cmd::Transcribe {
            files,
            via,
            property,
            format,
            output,
        } => {
            anyhow::ensure!(!files.is_empty(), "give at least one file");
            anyhow::ensure!(
                output.is_none() || files.len() == 1,
                "--output takes one file at a time"
            );
            for f in &files {
                let text = transcribe(&client, f, via, &property, format, &options).await?;
                match &output {
                    Some(o) => std::fs::write(o, &text)
                        .with_context(|| format!("cannot write {}", o.display()))?,
                    None => {
                        if files.len() > 1 && format == Output::Text {
                            print!("{}: ", f.display());
                        }
                        print!("{text}");
                    }
                }
            }
            Ok(())
        }
        Cmd::Stream {
            file,
            property,
            mode,
        } => stream(&client, &file, &property, &mode, &options).await,
        Cmd::Tts {
            text,
            output,
            voice,
            format,
            rate,
            speed,
            realtime,
        } => {
            let config = json!({"audio_format": format, "sample_rate": rate.to_string(),
                                "property": voice, "speed": speed});
            if realtime {
                return tts_realtime(&client, &text, config, &output).await;
            }
            let audio = client.tts(&text, config).await?;
            std::fs::write(&output, &audio)
                .with_context(|| format!("cannot write {}", output.display()))?;
            eprintln!("wrote {} ({} bytes)", output.display(), audio.len());
            Ok(())
        }
        Cmd::Vocab(v) => {
            let r = match v {
                Vocab::Create {
                    name,
                    description,
                    language,
                    words,
                } => {
                    let body = json!({"name": name, "description": description,
                                      "language": language, "contents": words});
                    client
                        .call("POST", "asr/vocabularies", None, Some(&body))
                        .await?
                }
                Vocab::List => client.call("GET", "asr/vocabularies", None, None).await?,
                Vocab::Show { id } => {
                    client
                        .call("GET", &format!("asr/vocabularies/{id}"), None, None)
                        .await?
                }
                Vocab::Update {
                    id,
                    name,
                    description,
                    language,
                    words,
                } => {
                    let body = json!({"name": name, "description": description,
                                      "language": language, "contents": words});
                    client
                        .call("PUT", &format!("asr/vocabularies/{id}"), None, Some(&body))
                        .await?
                }
                Vocab::Delete { id } => {
                    client
                        .call("DELETE", &format!("asr/vocabularies/{id}"), None, None)
                        .await?
                }
            };
            if !r.is_null() {
                println!("{}", serde_json::to_string_pretty(&r)?);
            }
            Ok(())
        }
    }
}

/// Real-time synthesis into `output`, written piece by piece.
async fn tts_realtime(
    client: &Client,
    text: &str,
    config: Value,
    output: &Path,
) -> anyhow::Result<()> {
    use std::io::Write;
    anyhow::ensure!(
        config["audio_format"] == "pcm",
        "--realtime streams pcm only (give --format pcm)"
    );
    let asked = std::time::Instant::now();
    let mut s = client.rtts(text, config).await?;
    let mut out = std::fs::File::create(output)
        .with_context(|| format!("cannot write {}", output.display()))?;
    let mut bytes = 0usize;
    loop {
        match s.next().await? {
            Some(sis_client::Synthesised::Audio(a)) => {
                if bytes == 0 {
                    eprintln!("first audio after {} ms", asked.elapsed().as_millis());
                }
                out.write_all(&a)
                    .with_context(|| format!("cannot write {}", output.display()))?;
                bytes += a.len();
            }
            Some(sis_client::Synthesised::End) => break,
            None => anyhow::bail!("the session closed before its END"),
        }
    }
    eprintln!("wrote {} ({bytes} bytes)", output.display());
    Ok(())
}

/// Sentences: (start ms, end ms, text, word list).
type Sentence = (u64, u64, String, Vec<Value>);

fn render(format: Output, sentences: &[Sentence], whole: &Value) -> String {
    let segs: Vec<Segment<'_>> = sentences
        .iter()
        .map(|(s, e, t, _)| Segment {
            start_ms: *s,
            end_ms: *e,
            text: t,
            score: None,
            words: Vec::new(),
        })
        .collect();
    match format {
        Output::Text => format!("{}\n", joined_text(&segs)),
        Output::Srt => srt(&segs),
        Output::Vtt => vtt(&segs),
        Output::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(whole).unwrap_or_default()
        ),
    }
}

/// `extra`'s keys added to `base`.
fn with(mut base: Value, extra: &Value) -> Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

async fn transcribe(
    client: &Client,
    path: &Path,
    via: Via,
    property: &str,
    format: Output,
    options: &Value,
) -> anyhow::Result<String> {
    if via == Via::Job {
        return transcribe_by_job(client, path, property, format, options).await;
    }
    let pcm = sis_client::pcm16k(path)?;
    let ms = pcm.len() as u64 / 32;
    if via == Via::Auto && ms > 60_000 {
        return transcribe_by_job(client, path, property, format, options).await;
    }
    if via != Via::Stream {
        let r = client
            .short_audio(
                &pcm,
                "pcm16k16bit",
                property,
                with(json!({"need_word_info": "yes"}), options),
            )
            .await?;
        let text = r["result"]["text"].as_str().unwrap_or_default().to_string();
        let words = r["result"]["word_info"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let sentence = (0, ms, text, words);
        return Ok(render(format, &[sentence], &r));
    }
    let bar = indicatif::ProgressBar::new(ms / 1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} s ({eta} left)")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(path.display().to_string());
    let mut s = client
        .rasr(
            "continue-stream",
            with(
                json!({"audio_format": "pcm16k16bit", "property": property,
                       "interim_results": "no", "need_word_info": "yes"}),
                options,
            ),
        )
        .await?;
    let mut sentences: Vec<Sentence> = Vec::new();
    let collect = |m: Value, sentences: &mut Vec<Sentence>| -> Result<bool, ClientError> {
        match m["resp_type"].as_str() {
            Some("RESULT") => {
                for seg in m["segments"].as_array().into_iter().flatten() {
                    if seg["is_final"].as_bool() == Some(true) {
                        sentences.push(sentence(seg));
                    }
                }
                Ok(false)
            }
            Some("ERROR") | Some("FATAL_ERROR") => Err(sis_client::message_error(&m)),
            Some("END") => Ok(true),
            _ => Ok(false),
        }
    };
    // 1 s per message; the service slows the sending by not reading when
    // its decoders are behind
    for (i, chunk) in pcm.chunks(32_000).enumerate() {
        s.audio(chunk).await?;
        bar.set_position(i as u64 + 1);
        while let Some(m) = s.try_next().await? {
            collect(m, &mut sentences)?;
        }
    }
    s.end().await?;
    loop {
        match s.next().await? {
            Some(m) => {
                if collect(m, &mut sentences)? {
                    break;
                }
            }
            None => anyhow::bail!("the session closed before its END"),
        }
    }
    s.close().await;
    bar.finish_and_clear();
    let whole = json!({"segments": sentences.iter().map(|(s, e, t, w)| json!({
        "start_time": s, "end_time": e, "result": {"text": t, "word_info": w}})).collect::<Vec<_>>()});
    Ok(render(format, &sentences, &whole))
}

/// A segment of a job's document or of a session's result.
fn sentence(seg: &Value) -> Sentence {
    (
        seg["start_time"].as_u64().unwrap_or(0),
        seg["end_time"].as_u64().unwrap_or(0),
        seg["result"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        seg["result"]["word_info"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    )
}

/// The sentences of a job's document.
fn sentences_of(doc: &Value) -> Vec<Sentence> {
    doc["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(sentence)
        .collect()
}

/// Uploads the file as it is (the service decodes it), runs a job on it,
/// shows the upload's and the job's progress, and deletes the upload.
async fn transcribe_by_job(
    client: &Client,
    path: &Path,
    property: &str,
    format: Output,
    options: &Value,
) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bar = indicatif::ProgressBar::new(bytes.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} upload [{bar:30}] {bytes}/{total_bytes} ({eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(path.display().to_string());
    let shown = bar.clone();
    let up = client.upload(bytes, move |n| shown.set_position(n)).await?;
    bar.finish_and_clear();
    let (Some(data_url), Some(upload_id)) = (up["data_url"].as_str(), up["upload_id"].as_str())
    else {
        return Err(ClientError::Protocol(format!("no data_url in {up}")).into());
    };
    let config = with(
        json!({"audio_format": "auto", "property": property, "need_word_info": "yes"}),
        options,
    );
    let done = wait_for_job(client, path, data_url, config).await;
    // the upload is not needed any more, whatever became of the job
    let _ = client
        .call(
            "DELETE",
            &format!("asr/transcriber/uploads/{upload_id}"),
            None,
            None,
        )
        .await;
    let doc = done?;
    Ok(render(format, &sentences_of(&doc), &doc))
}

async fn wait_for_job(
    client: &Client,
    path: &Path,
    data_url: &str,
    config: Value,
) -> anyhow::Result<Value> {
    let id = client.create_job(data_url, config).await?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    loop {
        let doc = client.job(&id).await?;
        match doc["status"].as_str() {
            Some("FINISHED") => {
                bar.finish_and_clear();
                return Ok(doc);
            }
            Some("ERROR") => {
                bar.finish_and_clear();
                return Err(ClientError::Api {
                    status: 200,
                    code: doc["error_code"].as_str().unwrap_or("unknown").to_string(),
                    message: format!(
                        "job {id}: {}",
                        doc["error_msg"].as_str().unwrap_or("failed")
                    ),
                    request_id: None,
                }
                .into());
            }
            s => bar.set_message(format!("{}: job {id} {}", path.display(), s.unwrap_or("?"))),
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

async fn stream(
    client: &Client,
    file: &str,
    property: &str,
    mode: &str,
    options: &Value,
) -> anyhow::Result<()> {
    let pcm = if file == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut b)?;
        b
    } else {
        sis_client::pcm16k(Path::new(file))?
    };
    let tty = std::io::stdout().is_terminal();
    let mut s = client
        .rasr(
            mode,
            with(
                json!({"audio_format": "pcm16k16bit", "property": property, "interim_results": "yes"}),
                options,
            ),
        )
        .await?;
    let mut out = std::io::stdout().lock();
    let show = |m: &Value, out: &mut dyn Write| -> anyhow::Result<bool> {
        match m["resp_type"].as_str() {
            Some("RESULT") => {
                for seg in m["segments"].as_array().into_iter().flatten() {
                    let text = seg["result"]["text"].as_str().unwrap_or_default();
                    let (a, b) = (
                        seg["start_time"].as_u64().unwrap_or(0),
                        seg["end_time"].as_u64().unwrap_or(0),
                    );
                    match (seg["is_final"].as_bool() == Some(true), tty) {
                        (true, true) => writeln!(out, "\r\x1b[2K[{a} - {b} ms] {text}")?,
                        (true, false) => writeln!(out, "final [{a} - {b} ms] {text}")?,
                        (false, true) => write!(out, "\r\x1b[2K… {text}")?,
                        (false, false) => writeln!(out, "interim {text}")?,
                    }
                }
                out.flush()?;
                Ok(false)
            }
            Some("EVENT") => Ok(false),
            Some("ERROR") | Some("FATAL_ERROR") => Err(sis_client::message_error(m).into()),
            Some("END") => Ok(true),
            _ => Ok(false),
        }
    };
    // real speed: 100 ms every 100 ms
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for chunk in pcm.chunks(3200) {
        tick.tick().await;
        s.audio(chunk).await?;
        while let Some(m) = s.try_next().await? {
            show(&m, &mut out)?;
        }
    }
    s.end().await?;
    while let Some(m) = s.next().await? {
        if show(&m, &mut out)? {
            break;
        }
    }
    s.close().await;
    Ok(())
}
