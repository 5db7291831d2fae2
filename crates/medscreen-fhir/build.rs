//! Embeds the value sets: the shared ones of `rules/valuesets/` and, for each pack `rules/packs.json`
//! lists, its own of `rules/NAME/valuesets/`, so that adding a value set, or a pack's, is a data
//! change, not a Rust one.

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let rules = manifest_dir.join("../../rules").canonicalize()?;
    let shared = entries(&rules.join("valuesets"))?;
    let manifest_path = rules.join("packs.json");
    println!("cargo:rerun-if-changed={}", manifest_path.display());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path)?)
            .map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    let names = manifest
        .get("packs")
        .and_then(|p| p.as_array())
        .ok_or("rules/packs.json: `packs` must be an array of pack folder names")?;
    let mut packs = String::new();
    for name in names {
        // medscreen-core's build script checks the names; a name that could climb out of `rules/`
        // is not read here either.
        let name = name
            .as_str()
            .filter(|n| {
                n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .ok_or_else(|| format!("rules/packs.json: {name} is not a pack folder name"))?;
        let dir = rules.join(name).join("valuesets");
        // A pack without a `valuesets/` folder has no sets of its own; a folder that does not exist
        // must not be watched, or Cargo would rerun this script on every build.
        let own = if dir.is_dir() {
            entries(&dir)?
        } else {
            String::new()
        };
        writeln!(packs, "    ({name:?}, &[\n{own}    ]),")?;
    }
    let out = format!(
        "/// The embedded shared value sets (`rules/valuesets/*.json`), as `(file name, text)`, in name\n\
         /// order.\n\
         pub const EMBEDDED: &[(&str, &str)] = &[\n{shared}];\n\
         /// Each embedded pack's own value sets (`rules/NAME/valuesets/*.json`): `(pack, [(file name,\n\
         /// text)])`, in `rules/packs.json` order, the files in name order.\n\
         pub const EMBEDDED_PACKS: &[(&str, &[(&str, &str)])] = &[\n{packs}];\n"
    );
    std::fs::write(
        PathBuf::from(std::env::var("OUT_DIR")?).join("valuesets.rs"),
        out,
    )?;
    Ok(())
}

/// `(file name, include_str!(path)),` for every `*.json` of `dir`, in name order, each watched.
fn entries(dir: &Path) -> Result<String, Box<dyn Error>> {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = String::new();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or("a value set file name is not UTF-8")?;
        writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            f.display().to_string()
        )?;
    }
    Ok(out)
}
