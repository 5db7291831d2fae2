//! The `medscreen` command: turns arguments into a checked configuration, calls the library and maps the
//! outcome to an exit code.
//!
//! Exit codes: 0 every record screened; 1 some records invalid (all others screened); 2 usage or input
//! error; 3 the rule pack failed to load; 4 the `--fail-on` threshold was reached. A closed standard
//! output (`| head`) ends the run quietly with 0.

/// `eprintln!` and `eprint!` that never panic. The standard ones panic when standard error is closed
/// (`medscreen rules check DIR 2>&1 | head -1`), ending the run with exit 101 instead of its own code;
/// a message that cannot be written is dropped instead.
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

macro_rules! eprint {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use medscreen::batch::{self, BatchConfig, BatchError, Mode, Sinks};
use medscreen::input::Source;
use medscreen::output::explain::Explained;
use medscreen::output::{self, Detail, Format, OutputOptions};
use medscreen::{Engine, Severity};

const EXIT_INVALID: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_RULES: u8 = 3;
const EXIT_FAIL_ON: u8 = 4;

/// Safety screening of patient profiles against declarative rules.
#[derive(Parser)]
#[command(
    name = "medscreen",
    version,
    about,
    after_help = "Exit codes: 0 all screened, 1 some records invalid, 2 usage or input error, 3 rule pack failed to load, 4 --fail-on reached."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Screen profiles (NDJSON or a JSON array; .gz read transparently): one result per record, in order.
    Screen(ScreenArgs),
    /// Check profiles against the schema only, with the same output conventions.
    Validate(CommonArgs),
    /// Explain one profile: each caution with why it fired, each undecided rule with what is missing.
    Explain {
        /// A file with one profile, or `-` for standard input.
        #[arg(default_value = "-")]
        input: String,
        /// Rule directory (pack.json and vocabulary.json, or vocabulary.json and NAME/pack.json per pack); default: the embedded packs.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// The pack to screen with (default: the one `rules/packs.json` names, baclofen); repeat it to
        /// explain with several packs side by side. The profile may carry the facts of every pack.
        #[arg(long)]
        pack: Vec<String>,
    },
    /// List, show or check rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Print the native profiles (NDJSON) that FHIR input turns into; unmapped patients go to stderr.
    FhirProfile(FhirProfileArgs),
    /// Run the CDS Hooks 2.0 service (order-select, order-sign, medication-prescribe) over HTTP.
    Serve(ServeArgs),
    /// Write one self-contained HTML page of a run from its NDJSON results (aggregates only; small counts hidden).
    Report(ReportArgs),
    /// Write deterministic synthetic profiles as NDJSON.
    Generate {
        /// How many profiles.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Random seed; the same seed gives the same output.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Share of deliberately invalid records, 0 to 1.
        #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
        invalid_rate: f64,
        /// Write to FILE instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Rule directory whose packs' facts are generated too (as `screen --rules`); default: the
        /// embedded packs.
        #[arg(long)]
        rules: Option<PathBuf>,
    },
}

#[derive(Args)]
struct ReportArgs {
    /// NDJSON results of `medscreen screen` (native or FHIR; .gz read transparently), or `-` for
    /// standard input.
    #[arg(required = true)]
    results: Vec<String>,
    /// The run's `--summary` file, for what results do not carry (ruleset, inputs, run time).
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Counts from 1 to N-1 are shown as `<N`, with complementary suppression (1 shows every count).
    #[arg(long, default_value_t = 11, value_parser = clap::value_parser!(u64).range(1..))]
    min_cell: u64,
    /// Write the page to FILE instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Threads that count results (default: the number of CPUs); the page is the same whatever the number.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("auth").required(true).args(["trust", "insecure_no_auth"]))]
struct ServeArgs {
    /// Address to listen on (loopback by default; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// Rule directory (pack.json and vocabulary.json, or vocabulary.json and NAME/pack.json per pack); default: the embedded packs.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Offer only this pack's services (repeatable); default: every pack the rules hold, the
    /// default pack's first.
    #[arg(long, value_name = "NAME")]
    pack: Vec<String>,
    /// Value-set directory for FHIR mapping: its `*.json` files (or, laid out as `rules/`, its
    /// `valuesets/*.json`) and each pack's `NAME/valuesets/*.json`; default: the embedded shared sets
    /// and the pack's.
    #[arg(long)]
    valuesets: Option<PathBuf>,
    /// Trusted EHRs: `{"issuers": {"<iss>": {"keys": [JWK, ...]}}}`; requests need a JWT signed by one.
    #[arg(long, value_name = "FILE")]
    trust: Option<PathBuf>,
    /// Accept requests without a JWT (local development only).
    #[arg(long)]
    insecure_no_auth: bool,
    /// The URL clients call (JWT audience base); default `http://{addr}`.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Append card feedback (JSON lines) to FILE; default: standard output.
    #[arg(long, value_name = "FILE")]
    feedback_log: Option<PathBuf>,
    /// Cautions below this severity get no card (the info card of unchecked facts always shows).
    #[arg(long, value_enum, default_value = "warning")]
    min_card_severity: SeverityArg,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 5 << 20)]
    body_limit: usize,
    /// Longest reading one request body may take, in milliseconds (before a slot is taken).
    #[arg(long, default_value_t = 5_000)]
    body_timeout_ms: u64,
    /// Bytes of request bodies held at once, all requests together; more is answered 503.
    #[arg(long, default_value_t = 96 << 20)]
    body_budget: usize,
    /// Longest a request may take, waiting included, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Longest one fetch from the EHR's FHIR server may take, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    fetch_timeout_ms: u64,
    /// Requests handled at once; others wait for a slot within the timeout.
    #[arg(long, default_value_t = 64)]
    max_concurrent: usize,
    /// An observation value (eGFR, ALT) older than this many days before today is not used, unless
    /// its value set sets its own window.
    #[arg(long, default_value_t = 365)]
    lookback_days: u32,
    /// Log every request (method, path, status, time; never bodies) to standard error.
    #[arg(long)]
    access_log: bool,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// One line per rule: id, severities, title.
    List {
        /// Rule directory; default: the embedded pack.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// The pack to list (default: the default pack).
        #[arg(long)]
        pack: Option<String>,
        /// `text` (default) or `json` (one array, one object per rule).
        #[arg(long, value_enum, default_value = "text")]
        format: RulesFormat,
    },
    /// One rule in full, each tier's condition as an expression.
    Show {
        /// Rule id.
        id: String,
        /// Rule directory; default: the embedded pack.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// The pack the rule is in (default: the default pack).
        #[arg(long)]
        pack: Option<String>,
        /// `text` (default) or `json`.
        #[arg(long, value_enum, default_value = "text")]
        format: RulesFormat,
    },
    /// The packs the engine knows, one name per line, the default (the one that screens) first.
    Packs {
        /// Rule directory; default: the embedded packs.
        #[arg(long)]
        rules: Option<PathBuf>,
    },
    /// Run a pack's test cases (`tests/*.json` beside it) and report failures and tier coverage;
    /// exit 1 if a case fails or coverage is below `--min-coverage`.
    Test {
        /// A pack directory (its `pack.json`, `vocabulary.json` and `tests/`), or a directory of packs
        /// (`vocabulary.json`, `NAME/pack.json`, `NAME/tests/`); default: the embedded packs (the default pack's cases unless `--pack`).
        dir: Option<PathBuf>,
        /// The pack to test (default: the default pack).
        #[arg(long)]
        pack: Option<String>,
        /// Fail when tier coverage (tiers made true and made false by some case) is below PCT percent.
        #[arg(long, value_name = "PCT", default_value_t = 0.0, value_parser = parse_percent)]
        min_coverage: f64,
        /// Also write the results as JUnit XML to FILE.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// Load a rule directory (default: the embedded pack) and print every load error (exit 3 if any).
    Check {
        /// The rule directory; default: the embedded pack.
        dir: Option<PathBuf>,
    },
}

#[derive(Args)]
struct CommonArgs {
    /// Input files, or `-` for standard input (the default). Screened in order as one stream.
    inputs: Vec<String>,
    /// Rule directory (pack.json and vocabulary.json, or vocabulary.json and NAME/pack.json per pack); default: the embedded packs.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// The pack to screen with (default: the one `rules/packs.json` names, baclofen); repeat it to
    /// screen with several packs in one pass (one screening per pack in each result). The profile may
    /// carry the facts of every pack.
    #[arg(long)]
    pack: Vec<String>,
    /// Write results to FILE instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Ndjson)]
    format: FormatArg,
    /// Worker threads (default: the number of CPUs).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// Write invalid-record results to FILE instead of the main output (still counted).
    #[arg(long)]
    errors: Option<PathBuf>,
    /// Also write the summary as JSON to FILE.
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Records longer than this many bytes are reported invalid without being read whole (at most 1 GiB).
    #[arg(long, default_value_t = 1 << 20, value_parser = parse_record_limit)]
    max_record_bytes: usize,
    /// Remember at most this many distinct ids for the duplicate-id check (8 bytes each).
    #[arg(long, default_value_t = 1_000_000)]
    duplicate_check_limit: usize,
    /// Do not print the summary on standard error.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
struct ScreenArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Leave out cautions below this severity (they then do not count towards `status`).
    #[arg(long, value_enum, default_value_t = SeverityArg::Info)]
    min_severity: SeverityArg,
    /// Exit with 4 when any caution reaches this severity.
    #[arg(long, value_enum)]
    fail_on: Option<SeverityArg>,
    /// JSON output: `minimal` writes each caution's rule and severity and the undecided rules' ids
    /// (`undecided`); `compact` adds evidence and each undecided rule's missing facts; `full` adds each
    /// caution's title, message, action and sources.
    #[arg(long, value_enum, default_value_t = DetailArg::Compact)]
    detail: DetailArg,
    /// Input kind: native profiles, or FHIR R4 (Bundle files, NDJSON of Bundles, directories, Bulk exports).
    #[arg(long, value_enum, default_value_t = FromArg::Native)]
    from: FromArg,
    #[command(flatten)]
    fhir: FhirArgs,
    /// Also write the run's population report (one HTML page, as `medscreen report` makes) to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// With `--report`: counts from 1 to N-1 are shown as `<N`, with complementary suppression (1 shows
    /// every count).
    #[arg(long, default_value_t = 11, requires = "report", value_parser = clap::value_parser!(u64).range(1..))]
    min_cell: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FromArg {
    Native,
    Fhir,
}

#[derive(Clone, Copy, ValueEnum)]
enum AbsentArg {
    False,
    Unknown,
}

/// Options of FHIR input (used with `--from fhir` and by `fhir-profile`).
#[derive(Args)]
struct FhirArgs {
    /// FHIR: the evaluation date (YYYY-MM-DD; default: today, UTC).
    #[arg(long, value_parser = parse_date)]
    as_of: Option<medscreen::fhir::date::Date>,
    /// FHIR: an observation value (eGFR, ALT) older than this many days before the evaluation date
    /// is not used, unless its value set sets its own window (default 365).
    #[arg(long)]
    lookback_days: Option<u32>,
    /// FHIR: how a condition absent from the record is read (default `false`; `pregnant`,
    /// `breastfeeding`, `egfr` are never assumed).
    #[arg(long, value_enum)]
    absent: Option<AbsentArg>,
    /// FHIR: value-set directory: its `*.json` files (or, laid out as `rules/`, its
    /// `valuesets/*.json`) and the pack's `NAME/valuesets/*.json`; default: the embedded shared sets
    /// and the pack's.
    #[arg(long)]
    valuesets: Option<PathBuf>,
}

impl FhirArgs {
    /// The first FHIR-only option given, if any.
    fn given(&self) -> Option<&'static str> {
        [
            ("--as-of", self.as_of.is_some()),
            ("--lookback-days", self.lookback_days.is_some()),
            ("--absent", self.absent.is_some()),
            ("--valuesets", self.valuesets.is_some()),
        ]
        .into_iter()
        .find_map(|(flag, given)| given.then_some(flag))
    }
}

#[derive(Args)]
struct FhirProfileArgs {
    /// FHIR inputs: Bundle files, NDJSON of Bundles, directories of Bundles, Bulk export directories.
    #[arg(required = true)]
    inputs: Vec<String>,
    #[command(flatten)]
    fhir: FhirArgs,
    /// Write profiles to FILE instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Worker threads (default: the number of CPUs).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// Do not print the summary on standard error.
    #[arg(long, short)]
    quiet: bool,
}

/// The largest `--max-record-bytes`: one record is held whole, and this bounds it.
const MAX_RECORD_LIMIT: u64 = 1 << 30;

fn parse_record_limit(s: &str) -> Result<usize, String> {
    s.parse::<u64>()
        .ok()
        .filter(|n| (1..=MAX_RECORD_LIMIT).contains(n))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("`{s}` is not a byte count from 1 to {MAX_RECORD_LIMIT} (1 GiB)"))
}

fn parse_date(s: &str) -> Result<medscreen::fhir::date::Date, String> {
    let b = s.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return Err(format!("`{s}` is not a date of the form YYYY-MM-DD"));
    }
    // Well formed but not a day of the calendar (`2025-02-30`, `2025-13-01`): say so.
    medscreen::fhir::date::Date::parse(s).ok_or_else(|| {
        format!("`{s}` is not a day of the calendar (month 1-12, and a day that month has)")
    })
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RulesFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Ndjson,
    Json,
    Csv,
    Table,
}

#[derive(Clone, Copy, ValueEnum)]
enum SeverityArg {
    Info,
    Warning,
    Critical,
}

#[derive(Clone, Copy, ValueEnum)]
enum DetailArg {
    Minimal,
    Compact,
    Full,
}

impl From<SeverityArg> for Severity {
    fn from(s: SeverityArg) -> Severity {
        match s {
            SeverityArg::Info => Severity::Info,
            SeverityArg::Warning => Severity::Warning,
            SeverityArg::Critical => Severity::Critical,
        }
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err("the rate must be between 0 and 1".into())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Screen(args) => {
            let ScreenArgs {
                common,
                min_severity,
                fail_on,
                detail,
                from,
                fhir,
                report,
                min_cell,
            } = args;
            let opts = OutputOptions {
                format: format(common.format),
                detail: match detail {
                    DetailArg::Minimal => Detail::Minimal,
                    DetailArg::Compact => Detail::Compact,
                    DetailArg::Full => Detail::Full,
                },
                min_severity: min_severity.into(),
                show_input: common.inputs.len() > 1,
                several_packs: common.pack.len() > 1,
            };
            let report = report.map(|path| ReportTo { path, min_cell });
            if report.is_some() && opts.detail == Detail::Minimal {
                eprintln!(
                    "error: `--report` counts each undecided rule's missing facts, which `--detail minimal` leaves out\n  help: use `--detail compact` (the default) or `full` with `--report`"
                );
                EXIT_USAGE
            } else if report.is_some() && opts.format != Format::Ndjson {
                // The page is made from the NDJSON results as they are written.
                eprintln!(
                    "error: `--report` goes with the default `--format ndjson`\n  help: write the results with `-o FILE`, then run `medscreen report FILE`"
                );
                EXIT_USAGE
            } else if from == FromArg::Fhir {
                fhir::screen(common, fhir, opts, fail_on.map(Severity::from), report)
            } else if let Some(flag) = fhir.given() {
                // Silently ignoring it would screen with a setting the user believes is in force.
                eprintln!(
                    "error: `{flag}` applies to FHIR input only\n  help: add `--from fhir`, or drop `{flag}` for native profiles"
                );
                EXIT_USAGE
            } else {
                run_batch(
                    common,
                    Mode::Screen,
                    opts,
                    fail_on.map(Severity::from),
                    report,
                )
            }
        }
        Command::FhirProfile(args) => fhir::profile(args),
        Command::Serve(args) => serve(args),
        Command::Validate(common) => {
            let opts = OutputOptions {
                format: format(common.format),
                show_input: common.inputs.len() > 1,
                ..OutputOptions::default()
            };
            run_batch(common, Mode::Validate, opts, None, None)
        }
        Command::Explain { input, rules, pack } => explain(&input, rules.as_deref(), &names(&pack)),
        Command::Rules { command } => rules_command(command),
        Command::Report(args) => report(args),
        Command::Generate {
            count,
            seed,
            invalid_rate,
            output,
            rules,
        } => generate(
            count,
            seed,
            invalid_rate,
            output.as_deref(),
            rules.as_deref(),
        ),
    };
    ExitCode::from(code)
}

/// `--from fhir` and `fhir-profile`: the glue to `medscreen::fhir::run`.
mod fhir {
    use super::*;
    use medscreen::diagnostic::Diagnostic;
    use medscreen::fhir::run::{self, RunConfig};
    use medscreen::fhir::{Absent, BindError, Binding, Options, ValueSets};

    /// The value sets for `pack`: the shared ones and the pack's own, embedded or from `dir`.
    pub(super) fn valuesets(dir: Option<&Path>, pack: &str) -> Result<ValueSets, u8> {
        let loaded = match dir {
            Some(d) => ValueSets::from_dir_for(d, pack),
            None => ValueSets::embedded_for(pack),
        };
        loaded.map_err(|errors| value_set_errors(&errors))
    }

    /// Print every error of value sets that failed to load; the exit code to give.
    fn value_set_errors(errors: &medscreen::LoadErrors) -> u8 {
        let n = errors.errors().len();
        eprintln!(
            "the value sets failed to load ({n} error{}):",
            if n == 1 { "" } else { "s" }
        );
        for e in errors.errors() {
            eprintln!("error: {e}");
        }
        EXIT_RULES
    }

    /// The value sets bound to the engine (the library checks the facts they fill and that their
    /// subject set is the pack's drug), or the exit code after saying why not.
    fn bind(engine: Engine, vs: ValueSets) -> Result<Binding, u8> {
        Binding::new(engine, vs).map_err(|e| bind_failed(&e))
    }

    /// Report why value sets do not fit the engine: another drug's, or no, subject set is a usage error
    /// (exit 2); facts they cannot fill are load errors (exit 3).
    pub(super) fn bind_failed(e: &BindError) -> u8 {
        match e {
            BindError::Drug(d) => {
                let pack = &d.pack;
                let help = match &d.drug {
                    Some(drug) => format!(
                        "give `--valuesets` a directory whose subject set is the `{pack}` drug, or screen with the `{drug}` pack"
                    ),
                    None => format!(
                        "give `--valuesets` a directory with a subject set for `{pack}` (in `{pack}/valuesets/`)"
                    ),
                };
                eprintln!("error: {}\n  help: {help}", d.message());
                EXIT_USAGE
            }
            BindError::Facts(errors) => value_set_errors(errors),
            other => {
                eprintln!("error: {other}");
                EXIT_USAGE
            }
        }
    }

    fn options(a: &FhirArgs) -> Options {
        Options {
            as_of: a.as_of.unwrap_or_else(medscreen::fhir::date::Date::today),
            lookback_days: a.lookback_days.unwrap_or(365),
            absent: match a.absent {
                None | Some(AbsentArg::False) => Absent::False,
                Some(AbsentArg::Unknown) => Absent::Unknown,
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn go(
        (rules, pack): (Option<&Path>, &[&str]),
        fhir: &FhirArgs,
        inputs: &[String],
        mut cfg: RunConfig,
        output: Option<&Path>,
        summary_file: Option<&Path>,
        report: Option<&ReportTo>,
        quiet: bool,
    ) -> Result<u8, u8> {
        if inputs.is_empty() {
            eprintln!("error: FHIR input needs at least one INPUT (a file, a directory or `-`)");
            return Err(EXIT_USAGE);
        }
        let input_paths: Vec<&Path> = inputs.iter().filter(|i| *i != "-").map(Path::new).collect();
        let outputs: Vec<(&str, &Path)> = [
            ("--output", output),
            ("--summary", summary_file),
            ("--report", report.map(|r| r.path.as_path())),
        ]
        .into_iter()
        .filter_map(|(flag, p)| p.map(|p| (flag, p)))
        .collect();
        refuse_overwriting(&input_paths, &outputs)?;
        // With `--report`, every result is also counted as a worker formats it, with its profile.
        let page = report.map(ReportTo::collector);
        cfg.observer = page
            .clone()
            .map(|p| p as std::sync::Arc<dyn medscreen::batch::Observer>);
        // One binding per pack (its engine and its value sets): each pack's subject set finds its own
        // drug's order. The mappers of the packs after the first read every resource alongside it.
        if let Some(twice) = pack
            .iter()
            .enumerate()
            .find_map(|(k, p)| pack.get(..k).is_some_and(|b| b.contains(p)).then_some(p))
        {
            eprintln!("error: pack `{twice}` is asked for twice\n  help: give each `--pack` once");
            return Err(EXIT_RULES);
        }
        let each: Vec<&[&str]> = if pack.is_empty() {
            vec![pack]
        } else {
            pack.chunks(1).collect()
        };
        let mut bindings = Vec::with_capacity(each.len());
        for one in each {
            let engine = load(rules, one)?;
            let vs = valuesets(fhir.valuesets.as_deref(), &engine.ruleset().name)?;
            bindings.push(bind(engine, vs)?);
        }
        let opts = options(fhir);
        let also: Vec<_> = bindings.iter().skip(1).map(|b| b.mapper(opts)).collect();
        let Some(first) = bindings.first() else {
            return Err(EXIT_USAGE);
        };
        let mapper = first.mapper(opts).with_packs(&also);
        let mut file;
        let mut stdout;
        let out: &mut (dyn Write + Send) = match output {
            Some(p) => {
                file = create(p)?;
                &mut file
            }
            None => {
                stdout = BufWriter::with_capacity(1 << 16, io::stdout());
                &mut stdout
            }
        };
        let summary = match run::run(&mapper, inputs, &cfg, out) {
            Ok(s) => s,
            Err(run::RunError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(0),
            Err(e) => {
                eprintln!("error: {e}");
                return Err(EXIT_USAGE);
            }
        };
        if !quiet {
            eprint!("{}", summary.text(cfg.mode));
        }
        if let Some(path) = summary_file {
            write_summary(path, &summary)?;
        }
        if let (Some(r), Some(page)) = (report, page) {
            write_report(&r.path, &page, &summary)?;
        }
        if summary.fail_on_reached {
            return Ok(EXIT_FAIL_ON);
        }
        Ok(if summary.invalid + summary.file_errors > 0 {
            EXIT_INVALID
        } else {
            0
        })
    }

    fn threads(t: Option<u16>) -> usize {
        t.map(usize::from)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
    }

    pub(super) fn screen(
        common: CommonArgs,
        fhir: FhirArgs,
        output: OutputOptions,
        fail_on: Option<Severity>,
        report: Option<ReportTo>,
    ) -> u8 {
        if common.errors.is_some() {
            eprintln!("error: `--errors` is not supported with `--from fhir`");
            return EXIT_USAGE;
        }

        let cfg = RunConfig {
            mode: run::Mode::Screen,
            output: OutputOptions {
                show_input: true,
                ..output
            },
            fail_on,
            threads: threads(common.threads),
            observer: None,
        };
        match go(
            (common.rules.as_deref(), &names(&common.pack)),
            &fhir,
            &common.inputs,
            cfg,
            common.output.as_deref(),
            common.summary.as_deref(),
            report.as_ref(),
            common.quiet,
        ) {
            Ok(c) | Err(c) => c,
        }
    }

    pub(super) fn profile(args: FhirProfileArgs) -> u8 {
        let cfg = RunConfig {
            mode: run::Mode::Profile,
            output: OutputOptions::default(),
            fail_on: None,
            threads: threads(args.threads),
            observer: None,
        };
        match go(
            (None, &[]),
            &args.fhir,
            &args.inputs,
            cfg,
            args.output.as_deref(),
            None,
            None,
            args.quiet,
        ) {
            Ok(c) | Err(c) => c,
        }
    }
}

fn format(f: FormatArg) -> Format {
    match f {
        FormatArg::Ndjson => Format::Ndjson,
        FormatArg::Json => Format::Json,
        FormatArg::Csv => Format::Csv,
        FormatArg::Table => Format::Table,
    }
}

/// The services `serve` offers: one [`Cds`] per pack, each over an engine screening with that pack
/// alone and the pack's value sets; every pack of the rules (the default first) unless `--pack`
/// names some. An unknown pack is a load error, as for `screen --pack`.
fn serve_packs(a: &ServeArgs) -> Result<medscreen::cds_hooks::Catalog, u8> {
    use medscreen::cds_hooks::{Catalog, Cds, CdsOptions};

    let opts = CdsOptions {
        min_card_severity: a.min_card_severity.into(),
        lookback_days: a.lookback_days,
    };
    let rules = a.rules.as_deref();
    let mut engines = Vec::new();
    if a.pack.is_empty() {
        // The default pack's engine also says which packs there are: it is not loaded twice.
        let default = load(rules, &[])?;
        let others: Vec<String> = default
            .packs()
            .skip(1)
            .map(|p| p.name().to_owned())
            .collect();
        engines.push(default);
        for name in &others {
            engines.push(load(rules, &[name.as_str()])?);
        }
    } else {
        let mut seen = std::collections::HashSet::new();
        for name in a.pack.iter().filter(|n| seen.insert(n.as_str())) {
            engines.push(load(rules, &[name.as_str()])?);
        }
    }
    let mut packs = Vec::with_capacity(engines.len());
    for engine in engines {
        let vs = fhir::valuesets(a.valuesets.as_deref(), &engine.ruleset().name)?;
        packs.push(Cds::new(engine, vs, opts).map_err(|e| fhir::bind_failed(&e))?);
    }
    Catalog::new(packs).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_RULES
    })
}

/// `serve`: load everything, bind, and run until Ctrl-C or SIGTERM.
fn serve(a: ServeArgs) -> u8 {
    use medscreen::cds_hooks::auth::Trust;
    use medscreen::cds_hooks::server::{self, Auth, Config};
    use std::time::Duration;

    let catalog = match serve_packs(&a) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let auth = match &a.trust {
        Some(path) => match Trust::from_file(path) {
            Ok(t) => Auth::Trust(t),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        },
        None => Auth::Insecure,
    };
    if let Some(u) = &a.public_url
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        eprintln!("error: `--public-url` must start with http:// or https://");
        return EXIT_USAGE;
    }
    // A panic's message could quote request data: log where it happened, not what it said.
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
        eprintln!("medscreen serve: internal error{at}");
    }));
    let auth_note = match &auth {
        Auth::Trust(t) => format!("JWT from {} trusted issuer(s)", t.issuers()),
        Auth::Insecure => "NO AUTHENTICATION (--insecure-no-auth)".to_owned(),
    };
    let config = |public_url| Config {
        public_url,
        auth,
        feedback_log: a.feedback_log.clone(),
        body_limit: a.body_limit,
        body_timeout: Duration::from_millis(a.body_timeout_ms),
        body_budget: a.body_budget,
        request_timeout: Duration::from_millis(a.timeout_ms),
        fetch_timeout: Duration::from_millis(a.fetch_timeout_ms),
        max_concurrent: a.max_concurrent,
        access_log: a.access_log,
    };
    let on_listen = |bound, public_url: &str, app: &server::App| {
        let packs: Vec<&str> = app
            .catalog()
            .packs()
            .iter()
            .map(|c| c.engine().ruleset().name.as_str())
            .collect();
        eprintln!(
            "medscreen serve: listening on http://{bound} as {public_url}/cds-services ({} services of {}; {auth_note})",
            app.catalog().services().count(),
            packs.join(", ")
        );
    };
    match server::run(a.addr, a.public_url.clone(), catalog, config, on_listen) {
        Ok(()) => {
            eprintln!("medscreen serve: stopped");
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}

/// The engine of `--rules DIR` (or the embedded packs), screening with the `--pack NAME`s (or the
/// default).
/// The `--pack` values as the engine takes them.
fn names(packs: &[String]) -> Vec<&str> {
    packs.iter().map(String::as_str).collect()
}

fn load(dir: Option<&Path>, packs: &[&str]) -> Result<Engine, u8> {
    let loaded = match dir {
        Some(d) => Engine::from_dir_packs(d, packs),
        None => Engine::embedded_packs(packs),
    };
    loaded.map_err(|errors| {
        eprint!("{errors}");
        EXIT_RULES
    })
}

/// Refuse, before anything is opened for writing, an output that is one of the inputs or another
/// output: creating it would truncate the input before it is read (the run would then report "0
/// records" and exit 0). Files are compared by identity (device and inode), so another path or a link
/// to the same file is caught; an output that does not exist yet cannot be an input.
fn refuse_overwriting(inputs: &[&Path], outputs: &[(&str, &Path)]) -> Result<(), u8> {
    let identity = |p: &Path| std::fs::metadata(p).ok().map(|m| file_identity(&m));
    let mut seen: Vec<(&str, &Path, (u64, u64))> = Vec::new();
    for &(flag, out) in outputs {
        let Some(id) = identity(out) else { continue };
        if let Some(input) = inputs.iter().find(|i| identity(i) == Some(id)) {
            eprintln!(
                "error: `{flag}` `{}` is the input `{}`: writing it would destroy the input before it is read\n  help: write the results to another file",
                out.display(),
                input.display()
            );
            return Err(EXIT_USAGE);
        }
        if let Some((other, _, _)) = seen.iter().find(|(_, _, o)| *o == id) {
            eprintln!(
                "error: `{flag}` `{}` is the same file as `{other}`\n  help: give each output its own file",
                out.display()
            );
            return Err(EXIT_USAGE);
        }
        seen.push((flag, out, id));
    }
    Ok(())
}

#[cfg(unix)]
fn file_identity(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
fn file_identity(m: &std::fs::Metadata) -> (u64, u64) {
    // Without inode numbers, size and modification time stand in; paths are canonicalised first.
    let t = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    (m.len(), t)
}

fn create(path: &Path) -> Result<BufWriter<File>, u8> {
    File::create(path)
        .map(|f| BufWriter::with_capacity(1 << 16, f))
        .map_err(|e| {
            eprintln!("error: cannot create `{}`: {e}", path.display());
            EXIT_USAGE
        })
}

/// `screen --report`: where the page goes and its small-cell threshold.
struct ReportTo {
    path: PathBuf,
    min_cell: u64,
}

impl ReportTo {
    /// The collector the run's workers feed.
    fn collector(&self) -> std::sync::Arc<medscreen_report::Collector> {
        std::sync::Arc::new(medscreen_report::Collector::new(
            medscreen_report::ReportOptions {
                min_cell: self.min_cell,
                ..medscreen_report::ReportOptions::default()
            },
        ))
    }
}

fn run_batch(
    args: CommonArgs,
    mode: Mode,
    output: OutputOptions,
    fail_on: Option<Severity>,
    report: Option<ReportTo>,
) -> u8 {
    match try_run_batch(args, mode, output, fail_on, report) {
        Ok(code) | Err(code) => code,
    }
}

fn try_run_batch(
    args: CommonArgs,
    mode: Mode,
    output: OutputOptions,
    fail_on: Option<Severity>,
    report: Option<ReportTo>,
) -> Result<u8, u8> {
    let engine = load(args.rules.as_deref(), &names(&args.pack))?;
    let sources: Vec<Source> = if args.inputs.is_empty() {
        vec![Source::Stdin]
    } else {
        args.inputs.iter().map(|s| Source::parse(s)).collect()
    };
    // Refuse before writing anything if an input cannot be opened.
    for s in &sources {
        if let Source::File(p) = s
            && let Err(e) = File::open(p).and_then(|f| f.metadata()).and_then(|m| {
                if m.is_dir() {
                    Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "is a directory",
                    ))
                } else {
                    Ok(())
                }
            })
        {
            eprintln!("error: cannot read `{}`: {e}", p.display());
            return Err(EXIT_USAGE);
        }
    }
    let input_paths: Vec<&Path> = sources
        .iter()
        .filter_map(|s| match s {
            Source::File(p) => Some(p.as_path()),
            Source::Stdin => None,
        })
        .collect();
    let outputs: Vec<(&str, &Path)> = [
        ("--output", args.output.as_deref()),
        ("--errors", args.errors.as_deref()),
        ("--summary", args.summary.as_deref()),
        ("--report", report.as_ref().map(|r| r.path.as_path())),
    ]
    .into_iter()
    .filter_map(|(flag, p)| p.map(|p| (flag, p)))
    .collect();
    refuse_overwriting(&input_paths, &outputs)?;
    let threads = args
        .threads
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let page = report.as_ref().map(ReportTo::collector);
    let cfg = BatchConfig {
        threads,
        max_record_bytes: args.max_record_bytes,
        mode,
        output,
        fail_on,
        progress: !args.quiet,
        duplicate_check_limit: args.duplicate_check_limit,
        // With `--report`, every result is also counted as it is written, with its profile's age and sex.
        observer: page
            .clone()
            .map(|p| p as std::sync::Arc<dyn batch::Observer>),
    };
    let mut main_file;
    let mut stdout_buffered;
    let main: &mut (dyn Write + Send) = match &args.output {
        Some(p) => {
            main_file = create(p)?;
            &mut main_file
        }
        None => {
            stdout_buffered = BufWriter::with_capacity(1 << 16, io::stdout());
            &mut stdout_buffered
        }
    };
    let mut errors_file = match &args.errors {
        Some(p) => Some(create(p)?),
        None => None,
    };
    let sinks = Sinks {
        main,
        errors: errors_file.as_mut().map(|f| f as &mut (dyn Write + Send)),
    };
    let (summary, error) = batch::run(&engine, &sources, &cfg, sinks);
    if let Some(BatchError::Output(e)) = &error
        && e.kind() == io::ErrorKind::BrokenPipe
    {
        return Ok(0);
    }
    if !args.quiet {
        eprint!("{}", output::summary::batch_text(&summary, mode));
    }
    if let Some(path) = &args.summary {
        write_summary(path, &summary)?;
    }
    if let (Some(r), Some(page)) = (&report, page) {
        write_report(&r.path, &page, &summary)?;
    }
    if let Some(e) = error {
        eprintln!("error: {e}");
        return Err(EXIT_USAGE);
    }
    if summary.fail_on_reached {
        return Ok(EXIT_FAIL_ON);
    }
    Ok(if summary.invalid > 0 { EXIT_INVALID } else { 0 })
}

fn read_input(input: &str) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    Source::parse(input).open()?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn explain(input: &str, rules: Option<&Path>, pack: &[&str]) -> u8 {
    let engine = match load(rules, pack) {
        Ok(e) => e,
        Err(code) => return code,
    };
    let bytes = match read_input(input) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read `{input}`: {e}");
            return EXIT_USAGE;
        }
    };
    match output::explain::explain(&engine, &bytes) {
        Explained::Screened(text) => {
            print_or_quiet(&text);
            0
        }
        Explained::Invalid(text) => {
            print_or_quiet(&text);
            EXIT_INVALID
        }
        Explained::SeveralRecords {
            count,
            second: (line, index),
        } => {
            let at = index.map_or(format!("line {line}"), |i| {
                format!("line {line}, element {i}")
            });
            eprintln!(
                "error: `explain` takes one profile, and `{input}` holds {count} records (the second at {at})\n  help: use `medscreen screen` for several, or `medscreen screen --format table` to read them"
            );
            EXIT_USAGE
        }
    }
}

fn print_or_quiet(text: &str) {
    let mut out = io::stdout().lock();
    // A closed pipe is not an error worth reporting.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn parse_percent(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err("a percentage from 0 to 100".to_owned()),
    }
}

/// `medscreen rules test`: the pack's cases, their failures and the tier coverage.
fn rules_test(
    dir: Option<&Path>,
    pack: Option<&str>,
    min_coverage: f64,
    junit: Option<&Path>,
) -> Result<u8, u8> {
    use medscreen::pack_tests::{self, Suite};
    let load_failed = |e: medscreen::LoadErrors| {
        eprint!("{e}");
        EXIT_RULES
    };
    let (engine, suites) = match dir {
        Some(dir) => {
            let engine = load(Some(dir), pack.as_slice())?;
            // A pack directory keeps its cases in `tests/`; a directory of packs, in `NAME/tests/`.
            let tests = if dir.join(medscreen::engine::PACK_FILE).is_file() {
                dir.join("tests")
            } else {
                dir.join(&engine.ruleset().name).join("tests")
            };
            let mut files: Vec<PathBuf> = std::fs::read_dir(&tests)
                .map_err(|e| {
                    eprintln!("error: cannot read `{}`: {e}", tests.display());
                    EXIT_USAGE
                })?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            let mut suites = Vec::new();
            for f in &files {
                let text = std::fs::read_to_string(f).map_err(|e| {
                    eprintln!("error: cannot read `{}`: {e}", f.display());
                    EXIT_USAGE
                })?;
                suites.push(Suite::parse(&f.display().to_string(), &text).map_err(load_failed)?);
            }
            (engine, suites)
        }
        None => {
            let name = pack.unwrap_or(medscreen::engine::EMBEDDED_DEFAULT);
            let files: Vec<_> = pack_tests::EMBEDDED
                .iter()
                .filter(|(p, _, _)| *p == name)
                .collect();
            if files.is_empty() {
                let names = pack_tests::EMBEDDED.iter().map(|(p, _, _)| *p);
                let help = medscreen::suggest::did_you_mean(name, names)
                    .map(|s| format!("\n  help: did you mean `{s}`?"))
                    .unwrap_or_default();
                eprintln!("error: no embedded pack `{name}`{help}");
                return Err(EXIT_USAGE);
            }
            let mut suites = Vec::new();
            for (_, file, text) in files {
                suites.push(Suite::parse(file, text).map_err(load_failed)?);
            }
            (load(None, &[name])?, suites)
        }
    };
    if suites.iter().all(|s| s.cases.is_empty()) {
        // A pack with no case passes nothing: say so rather than report success.
        eprintln!(
            "error: no test case found\n  help: put table-driven cases in the pack's `tests/*.json`"
        );
        return Err(EXIT_USAGE);
    }
    let run = pack_tests::run(&engine, &suites);
    print_or_quiet(&run.text());
    if let Some(path) = junit {
        let mut file = create(path)?;
        file.write_all(run.junit().as_bytes())
            .and_then(|()| file.flush())
            .map_err(|e| {
                eprintln!("error: cannot write `{}`: {e}", path.display());
                EXIT_USAGE
            })?;
    }
    let coverage = run.coverage_percent();
    if coverage < min_coverage {
        eprintln!("error: tier coverage {coverage:.1}% is below --min-coverage {min_coverage}%");
    }
    Ok(if run.failed() > 0 || coverage < min_coverage {
        EXIT_INVALID
    } else {
        0
    })
}

fn rules_command(command: RulesCommand) -> u8 {
    match command {
        RulesCommand::Test {
            dir,
            pack,
            min_coverage,
            junit,
        } => match rules_test(
            dir.as_deref(),
            pack.as_deref(),
            min_coverage,
            junit.as_deref(),
        ) {
            Ok(code) | Err(code) => code,
        },
        RulesCommand::Packs { rules } => match load(rules.as_deref(), &[]) {
            Ok(engine) => {
                let names: Vec<&str> = engine.packs().map(|p| p.name()).collect();
                print_or_quiet(&(names.join("\n") + "\n"));
                0
            }
            Err(code) => code,
        },
        RulesCommand::Check { dir } => match load(dir.as_deref(), &[]) {
            Ok(engine) => {
                let mut text = format!(
                    "ok: {} ({} rules, {} ingredients)\n",
                    engine.ruleset().label,
                    engine.rules().len(),
                    engine.vocabulary().len()
                );
                // The other packs loaded and were checked too: say so, so none goes unnoticed.
                for p in engine.packs().skip(1).map(|p| p.program()) {
                    text.push_str(&format!(
                        "ok: {}@{} ({} rules)\n",
                        p.name,
                        p.version,
                        p.rules.len()
                    ));
                }
                print_or_quiet(&text);
                0
            }
            Err(code) => code,
        },
        RulesCommand::List {
            rules,
            pack,
            format,
        } => match load(rules.as_deref(), pack.as_deref().as_slice()) {
            Ok(engine) => {
                print_or_quiet(&match format {
                    RulesFormat::Json => output::rules::list_json(&engine),
                    RulesFormat::Text => output::rules::list_text(&engine),
                });
                0
            }
            Err(code) => code,
        },
        RulesCommand::Show {
            id,
            rules,
            pack,
            format,
        } => match load(rules.as_deref(), pack.as_deref().as_slice()) {
            Ok(engine) => {
                let Some(r) = engine
                    .rules()
                    .iter()
                    .find(|r| r.id.eq_ignore_ascii_case(&id))
                else {
                    let ids = engine.rules().iter().map(|r| r.id.as_str());
                    let help = medscreen::suggest::did_you_mean(&id, ids)
                        .map(|s| format!("\n  help: did you mean `{s}`?"))
                        .unwrap_or_default();
                    eprintln!("error: no rule `{id}`{help}");
                    return EXIT_USAGE;
                };
                print_or_quiet(&match format {
                    RulesFormat::Json => output::rules::show_json(&engine, r),
                    RulesFormat::Text => output::rules::show_text(&engine, r),
                });
                0
            }
            Err(code) => code,
        },
    }
}

fn generate(
    count: u64,
    seed: u64,
    invalid_rate: f64,
    output: Option<&Path>,
    rules: Option<&Path>,
) -> u8 {
    let engine = match load(rules, &[]) {
        Ok(e) => e,
        Err(code) => return code,
    };
    let facts = engine.facts();
    let result = match output {
        Some(p) => match create(p) {
            Ok(mut f) => {
                medscreen::generate::write_profiles(&mut f, facts, count, seed, invalid_rate)
                    .and_then(|()| f.flush())
            }
            Err(code) => return code,
        },
        None => {
            let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
            medscreen::generate::write_profiles(&mut out, facts, count, seed, invalid_rate)
                .and_then(|()| out.flush())
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("error: cannot write: {e}");
            EXIT_USAGE
        }
    }
}

/// Write a run's summary as pretty JSON to `path` (`--summary FILE`).
fn write_summary<T: serde::Serialize>(path: &Path, summary: &T) -> Result<(), u8> {
    let written = File::create(path).and_then(|mut f| {
        serde_json::to_writer_pretty(&mut f, summary)?;
        f.write_all(b"\n")
    });
    written.map_err(|e| {
        eprintln!(
            "error: cannot write the summary to `{}`: {e}",
            path.display()
        );
        EXIT_USAGE
    })
}

/// `medscreen report`: the HTML page of a run from its results.
fn report(args: ReportArgs) -> u8 {
    match try_report(args) {
        Ok(()) => 0,
        Err(code) => code,
    }
}

fn try_report(args: ReportArgs) -> Result<(), u8> {
    use medscreen::input::Source;
    use medscreen_report::{Report, ReportOptions};
    let fail = |e: String| {
        eprintln!("error: {e}");
        EXIT_USAGE
    };
    // The page is written last, but creating it must not truncate a file still to be read.
    let inputs: Vec<PathBuf> = args
        .results
        .iter()
        .filter_map(|name| match Source::parse(name) {
            Source::File(p) => Some(p),
            Source::Stdin => None,
        })
        .chain(args.summary.clone())
        .collect();
    if let Some(out) = &args.output {
        let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
        refuse_overwriting(&inputs, &[("--output", out)])?;
    }
    let mut report = Report::new(ReportOptions {
        min_cell: args.min_cell,
        threads: args.threads.map_or(0, usize::from),
        ..ReportOptions::default()
    });
    for name in &args.results {
        let source = Source::parse(name);
        let reader = source
            .open()
            .map_err(|e| fail(format!("cannot read `{name}`: {e}")))?;
        report
            .add_results(reader, &source.name())
            .map_err(|e| fail(e.to_string()))?;
    }
    if let Some(path) = &args.summary {
        let bytes = std::fs::read(path)
            .map_err(|e| fail(format!("cannot read `{}`: {e}", path.display())))?;
        report
            .add_summary(&bytes)
            .map_err(|e| fail(e.to_string()))?;
    }
    let written = match &args.output {
        Some(path) => report.write_html(create(path)?),
        None => report.write_html(io::stdout().lock()),
    };
    written.map_err(|e| fail(format!("cannot write the report: {e}")))
}

/// Writes the page of `screen --report`, with the run's summary.
fn write_report(
    path: &Path,
    page: &medscreen_report::Collector,
    summary: &impl serde::Serialize,
) -> Result<(), u8> {
    let refused = |e: String| {
        eprintln!("error: the report was not written: {e}");
        EXIT_USAGE
    };
    let report = serde_json::to_vec(summary)
        .map_err(|e| e.to_string())
        .and_then(|json| page.finish(&json).map_err(|e| e.to_string()))
        .map_err(refused)?;
    let file = create(path)?;
    report.write_html(file).map_err(|e| refused(e.to_string()))
}
