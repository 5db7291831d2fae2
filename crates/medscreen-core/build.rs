//! Embeds the packs `rules/packs.json` lists (each `rules/NAME/pack.json` and its `tests/*.json`), so
//! that which drugs the binary knows, and which one it screens by default, is data, not Rust.

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let rules = manifest_dir.join("../../rules");
    let rules = rules
        .canonicalize()
        .map_err(|e| format!("{}: {e}", rules.display()))?;
    let manifest_path = rules.join("packs.json");
    println!("cargo:rerun-if-changed={}", manifest_path.display());
    let text = std::fs::read_to_string(&manifest_path)
        .map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    let manifest: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    let listed = manifest
        .get("packs")
        .and_then(|p| p.as_array())
        .ok_or("rules/packs.json: `packs` must be an array of pack folder names")?;
    let mut names: Vec<&str> = Vec::new();
    for n in listed {
        // A folder of rules/, by a name that cannot climb out of it.
        let name = n.as_str().filter(|n| is_pack_name(n)).ok_or_else(|| {
            format!("rules/packs.json: {n} is not a pack folder name ([a-z][a-z0-9_-]*)")
        })?;
        if names.contains(&name) {
            return Err(format!("rules/packs.json lists `{name}` twice").into());
        }
        names.push(name);
    }
    let default = manifest
        .get("default")
        .and_then(|d| d.as_str())
        .ok_or("rules/packs.json: `default` must name a pack")?;
    if !names.contains(&default) {
        return Err(format!("rules/packs.json: the default `{default}` is not in `packs`").into());
    }
    // The default pack first: an engine screens with the first pack it is given.
    let mut ordered = vec![default];
    ordered.extend(names.iter().filter(|n| **n != default));
    let mut packs = String::new();
    let mut tests = String::new();
    for name in &ordered {
        let dir = rules.join(name);
        let pack = dir.join("pack.json");
        if !pack.is_file() {
            return Err(format!(
                "rules/packs.json lists `{name}`, but {} is missing",
                pack.display()
            )
            .into());
        }
        println!("cargo:rerun-if-changed={}", dir.display());
        // The folder is the pack's name: `--pack`, the tests and the default all go by it.
        let declared: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&pack)?)
            .map_err(|e| format!("{}: {e}", pack.display()))?;
        if declared.get("name").and_then(|n| n.as_str()) != Some(*name) {
            return Err(format!(
                "{}: its `name` must be its folder's, `{name}`",
                pack.display()
            )
            .into());
        }
        writeln!(
            packs,
            "    ({:?}, include_str!({:?})),",
            format!("rules/{name}/pack.json"),
            path(&pack)
        )?;
        // (The pack folder is watched above; a `tests/` that does not exist must not be watched, or
        // Cargo would rerun this script on every build.)
        let tests_dir = dir.join("tests");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&tests_dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        for f in files {
            println!("cargo:rerun-if-changed={}", f.display());
            let file_name = f
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or("a test file name is not UTF-8")?;
            writeln!(
                tests,
                "    ({name:?}, {:?}, include_str!({:?})),",
                format!("rules/{name}/tests/{file_name}"),
                path(&f)
            )?;
        }
    }
    let out = format!(
        "/// The packs compiled in (`rules/packs.json`): (file name, text), the default first.\n\
         pub const EMBEDDED_PACKS: &[(&str, &str)] = &[\n{packs}];\n\
         /// The pack screened with when none is chosen (`default` in `rules/packs.json`).\n\
         pub const EMBEDDED_DEFAULT: &str = {default:?};\n\
         /// The test files of the embedded packs: (pack name, file name, text).\n\
         pub const EMBEDDED_TESTS: &[(&str, &str, &str)] = &[\n{tests}];\n"
    );
    let out_path = PathBuf::from(std::env::var("OUT_DIR")?).join("embedded.rs");
    std::fs::write(out_path, out)?;
    Ok(())
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// A pack folder name: `[a-z][a-z0-9_-]*`.
fn is_pack_name(n: &str) -> bool {
    n.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
