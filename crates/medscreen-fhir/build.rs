//! Embeds every value set of `rules/valuesets/` (the default FHIR mapping), so that adding a value set
//! is a data change, not a Rust one.

use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let dir = manifest_dir.join("../../rules/valuesets").canonicalize()?;
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut entries = String::new();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or("a value set file name is not UTF-8")?;
        writeln!(
            entries,
            "    ({name:?}, include_str!({:?})),",
            f.display().to_string()
        )?;
    }
    let out = format!(
        "/// The embedded default value sets (`rules/valuesets/*.json`), as `(file name, text)`, in name\n\
         /// order.\n\
         pub const EMBEDDED: &[(&str, &str)] = &[\n{entries}];\n"
    );
    std::fs::write(
        PathBuf::from(std::env::var("OUT_DIR")?).join("valuesets.rs"),
        out,
    )?;
    Ok(())
}
