//! Writes a rule directory holding the synthetic interaction pack of issue 14 beside the embedded
//! packs, for `medscreen screen --rules DIR --pack synthetic-interactions` (see
//! `benches/throughput.sh`):
//!
//!     cargo run --release --example interaction_pack -- DIR [RULES] [SEED]
//!
//! `RULES` rules (default 3000) drawn from `SEED` (default 1) by
//! `medscreen::generate::interaction_pack`: synthetic, for benchmarks, not clinical content. The
//! directory gets `vocabulary.json`, the embedded packs' folders (pack and value sets, copied from
//! `rules/`), the new `synthetic-interactions/pack.json` and a `packs.json` that lists it after them
//! and keeps the embedded default: the synthetic pack screens only when asked for by name.

use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        eprintln!("usage: interaction_pack DIR [RULES] [SEED]");
        std::process::exit(2);
    };
    let rules = args
        .get(2)
        .map_or(3000, |n| n.parse().expect("RULES is a count"));
    let seed = args
        .get(3)
        .map_or(1, |n| n.parse().expect("SEED is a number"));
    let dir = Path::new(dir);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    copy_dir(&source, dir).expect("copy rules/");
    let pack =
        medscreen::generate::interaction_pack(medscreen::engine::EMBEDDED_VOCABULARY, rules, seed)
            .expect("the vocabulary is JSON");
    let folder = dir.join("synthetic-interactions");
    std::fs::create_dir_all(&folder).expect("create the pack folder");
    std::fs::write(folder.join("pack.json"), pack).expect("write the pack");
    let mut names = medscreen::engine::embedded_pack_names();
    let default = names.first().cloned().expect("an embedded pack");
    names.push("synthetic-interactions".to_owned());
    let manifest = serde_json::json!({"packs": names, "default": default});
    std::fs::write(dir.join("packs.json"), manifest.to_string()).expect("write packs.json");
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
