# Starts a throwaway RustyVault (a server speaking Vault's HTTP API) on 127.0.0.1 for the live tests
# of the Vault secret store, and exports CONNECTORS_TEST_VAULT_ADDR and CONNECTORS_TEST_VAULT_TOKEN.
# Source it (`source .ci/rustyvault.sh`): the variables must reach the test command. The server and
# its data are removed when the sourcing shell exits.
#
# RustyVault mounts a KV version 1 engine at `secret/`, which is what the live tests use; it has no
# KV version 2 and no Transit, which the tests cover against a fake instead.

rustyvault_start() {
  local rvault
  rvault="$(command -v rvault || true)"
  if [[ -z "$rvault" ]]; then
    # About 4 minutes, once per machine: the binary stays in ~/.cargo/bin. A target dir of its own
    # keeps this build out of the project's build cache and its lock. Needs OpenSSL headers.
    if ! pkg-config --exists openssl 2>/dev/null; then
      echo "rustyvault.sh: installing OpenSSL headers for the build (apt-get)" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libssl-dev pkg-config >/dev/null
    fi
    echo "rustyvault.sh: installing RustyVault (cargo install --locked rusty_vault)" >&2
    CARGO_TARGET_DIR="$HOME/.cache/connectors-gateway/rustyvault-target" cargo install --locked rusty_vault
    rvault="$HOME/.cargo/bin/rvault"
  fi
  if ! command -v curl >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
  fi

  RUSTYVAULT_DIR="$(mktemp -d)"
  mkdir "$RUSTYVAULT_DIR/data"
  # A free port: one nothing answers on. Another process could take it before the server binds;
  # the readiness check below then fails loudly rather than testing the wrong server.
  local port
  for _ in $(seq 50); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  done
  cat >"$RUSTYVAULT_DIR/config.hcl" <<EOF
storage "file" {
  path = "$RUSTYVAULT_DIR/data"
}
listener "tcp" {
  address     = "127.0.0.1:$port"
  tls_disable = true
}
api_addr  = "http://127.0.0.1:$port"
log_level = "warn"
EOF
  "$rvault" server --config "$RUSTYVAULT_DIR/config.hcl" >"$RUSTYVAULT_DIR/server.log" 2>&1 &
  RUSTYVAULT_PID=$!
  trap rustyvault_stop EXIT

  local addr="http://127.0.0.1:$port" ready=""
  for _ in $(seq 100); do
    if curl -sf "$addr/v1/sys/init" 2>/dev/null | grep -q '"initialized":false'; then ready=1; break; fi
    kill -0 "$RUSTYVAULT_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z "$ready" ]]; then
    echo "rustyvault.sh: RustyVault did not come up on $addr; its log:" >&2
    cat "$RUSTYVAULT_DIR/server.log" >&2
    return 1
  fi

  local init key token
  init="$(curl -sf -X PUT "$addr/v1/sys/init" -d '{"secret_shares": 1, "secret_threshold": 1}')"
  [[ "$init" =~ \"keys\":\[\"([0-9a-f]+)\" ]] && key="${BASH_REMATCH[1]}"
  [[ "$init" =~ \"root_token\":\"([^\"]+)\" ]] && token="${BASH_REMATCH[1]}"
  if [[ -z "${key:-}" || -z "${token:-}" ]]; then
    echo "rustyvault.sh: unexpected answer to sys/init" >&2
    return 1
  fi
  curl -sf -X PUT "$addr/v1/sys/unseal" -d "{\"key\": \"$key\"}" | grep -q '"sealed":false' || {
    echo "rustyvault.sh: RustyVault stayed sealed" >&2
    return 1
  }
  if ! curl -sf -H "X-Vault-Token: $token" "$addr/v1/sys/mounts" | grep -q '"secret/":{[^}]*"type":"kv"'; then
    curl -sf -H "X-Vault-Token: $token" -X POST "$addr/v1/sys/mounts/secret" -d '{"type": "kv"}' >/dev/null
  fi

  export CONNECTORS_TEST_VAULT_ADDR="$addr"
  export CONNECTORS_TEST_VAULT_TOKEN="$token"
  echo "rustyvault.sh: RustyVault ready on $addr" >&2
}

rustyvault_stop() {
  if [[ -n "${RUSTYVAULT_PID:-}" ]]; then
    kill "$RUSTYVAULT_PID" 2>/dev/null || true
    wait "$RUSTYVAULT_PID" 2>/dev/null || true
  fi
  if [[ -n "${RUSTYVAULT_DIR:-}" ]]; then rm -rf "$RUSTYVAULT_DIR"; fi
}

rustyvault_start
