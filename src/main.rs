//! The `medscreen` command: argument parsing and exit codes over the library.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use medscreen::Engine;
use serde::Serialize;

/// Safety screening of patient profiles against declarative rules.
#[derive(Parser)]
#[command(name = "medscreen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Screen NDJSON profiles (one JSON object per line); prints one JSON result per record.
    Screen {
        /// Input file, or `-` for standard input.
        #[arg(default_value = "-")]
        input: PathBuf,
        /// Rule directory with pack.json and vocabulary.json (default: the embedded baclofen pack).
        #[arg(long)]
        rules: Option<PathBuf>,
    },
    /// Check a rule directory and print every load error.
    Check {
        /// The rule directory.
        dir: PathBuf,
    },
}

/// Exit codes: 0 all screened, 1 some records invalid, 2 usage or input error, 3 rule pack failed to load.
fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Screen { input, rules } => {
            let engine = match load(rules.as_deref()) {
                Ok(e) => e,
                Err(code) => return code,
            };
            match screen(&engine, &input) {
                Ok(invalid) => ExitCode::from(u8::from(invalid > 0)),
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {}: {e}", input.display());
                    ExitCode::from(2)
                }
            }
        }
        Command::Check { dir } => match load(Some(&dir)) {
            Ok(engine) => {
                println!(
                    "ok: {} ({} rules)",
                    engine.ruleset().label,
                    engine.rules().len()
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
    }
}

fn load(dir: Option<&std::path::Path>) -> Result<Engine, ExitCode> {
    let loaded = match dir {
        Some(d) => Engine::from_dir(d),
        None => Engine::embedded(),
    };
    loaded.map_err(|errors| {
        eprint!("{errors}");
        ExitCode::from(3)
    })
}

#[derive(Serialize)]
struct Invalid<'a> {
    line: u64,
    id: Option<&'a str>,
    status: &'static str,
    errors: &'a [medscreen::Problem],
}

#[derive(Serialize)]
struct Screened<'a> {
    line: u64,
    #[serde(flatten)]
    screening: &'a medscreen::Screening<'a>,
}

fn screen(engine: &Engine, input: &std::path::Path) -> io::Result<u64> {
    let reader: Box<dyn Read> = if input.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(input)?)
    };
    let mut reader = BufReader::new(reader);
    let stdout = io::stdout().lock();
    let mut out = BufWriter::new(stdout);
    let mut buf = Vec::new();
    let mut line = 0u64;
    let mut invalid = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line += 1;
        let record = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let record = record.strip_suffix(b"\r").unwrap_or(record);
        if record.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match engine.screen_json(record) {
            Ok(s) => serde_json::to_writer(
                &mut out,
                &Screened {
                    line,
                    screening: &s,
                },
            )?,
            Err(r) => {
                invalid += 1;
                let row = Invalid {
                    line,
                    id: r.id.as_deref(),
                    status: "invalid",
                    errors: &r.problems,
                };
                serde_json::to_writer(&mut out, &row)?;
            }
        }
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(invalid)
}
