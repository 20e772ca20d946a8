# Sourced by .ci/run: builds the gateway of the baseline revision (the last version that landed,
# the one a rolling upgrade starts from) once per revision into the build cache, and exports
# CONNECTORS_BASELINE_BIN for the mixed-version rolling-upgrade test
# (tests/cluster_handoff.rs). It needs that revision in the clone's history; a shallow clone
# without it skips the test with a warning.

BASELINE_REV="$(cat .ci/baseline-rev)"
baseline_cache="$(dirname "$CARGO_TARGET_DIR")/baseline"
baseline_bin="$baseline_cache/connectors-$BASELINE_REV"

if [[ ! -x "$baseline_bin" ]]; then
  if git cat-file -e "$BASELINE_REV^{commit}" 2>/dev/null; then
    echo "ci: building the baseline gateway $BASELINE_REV (once; its own target dir)" >&2
    baseline_src="$(mktemp -d)"
    git archive "$BASELINE_REV" | tar -x -C "$baseline_src"
    # A target dir of its own: the shared one's target/debug/connectors must stay this build's.
    CARGO_TARGET_DIR="$baseline_cache/target" \
      cargo build --locked --quiet --manifest-path "$baseline_src/Cargo.toml" -p connectors --bin connectors
    mkdir -p "$baseline_cache"
    cp "$baseline_cache/target/debug/connectors" "$baseline_bin"
    rm -rf "$baseline_src"
  else
    echo "ci: warning: baseline $BASELINE_REV is not in this clone's history; the mixed-version test is skipped" >&2
  fi
fi
if [[ -x "$baseline_bin" ]]; then
  export CONNECTORS_BASELINE_BIN="$baseline_bin"
fi
