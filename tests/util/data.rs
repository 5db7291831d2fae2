//! Where the test data is, for every crate's tests (included by path from `crates/*/tests` too).

use std::path::{Path, PathBuf};

/// The workspace root: the nearest ancestor of this crate holding `Cargo.lock`.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|d| d.join("Cargo.lock").is_file())
        .expect("a workspace root above the crate")
        .to_path_buf()
}

/// The real data in `../shared/external` (CI lays `shared/` beside the clone). Missing data fails the
/// test rather than passing it unchecked; `MEDSCREEN_NO_EXTERNAL=1` skips these tests on purpose, and
/// says so.
pub fn external() -> Option<PathBuf> {
    let p = root().join("../shared/external");
    if std::env::var_os("MEDSCREEN_NO_EXTERNAL").is_some() {
        eprintln!(
            "skipped on request (MEDSCREEN_NO_EXTERNAL): {}",
            p.display()
        );
        return None;
    }
    assert!(
        p.is_dir(),
        "{} is missing: the tests on real external data cannot run (set MEDSCREEN_NO_EXTERNAL=1 to skip them knowingly)",
        p.display()
    );
    Some(p)
}
