//! The report from the command line until `medscreen report` is wired in:
//! `cargo run --release -p medscreen-report --example report -- RESULTS... [--summary FILE]
//! [--min-cell N] [-o report.html]`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};

use medscreen_report::{Report, ReportOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut opts = ReportOptions::default();
    let (mut inputs, mut summary, mut output) = (Vec::new(), None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--summary" => summary = Some(args.next().ok_or("--summary needs a file")?),
            "--min-cell" => {
                opts.min_cell = args.next().ok_or("--min-cell needs a number")?.parse()?
            }
            "-o" | "--output" => output = Some(args.next().ok_or("-o needs a file")?),
            _ => inputs.push(a),
        }
    }
    let mut report = Report::new(opts);
    for name in &inputs {
        report.add_results(BufReader::with_capacity(1 << 20, File::open(name)?), name)?;
    }
    if let Some(s) = summary {
        report.add_summary(&std::fs::read(s)?)?;
    }
    match output {
        Some(o) => report.write_html(BufWriter::new(File::create(o)?))?,
        None => report.write_html(std::io::stdout().lock())?,
    }
    std::io::stdout().flush()?;
    Ok(())
}
