# Sourced by benches/cds_*.sh from the repository root: builds the release binary (`$bin`, under
# CARGO_TARGET_DIR when set), makes a scratch folder (`$work`), and on any exit stops the server whose
# pid is in `$server_pid` and removes the folder.
target_dir=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin medscreen
bin=$target_dir/release/medscreen

work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2> /dev/null || true
        wait "$server_pid" 2> /dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
