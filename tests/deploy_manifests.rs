//! The deployment files in `deploy/`: the config file they ship loads with the gateway's own
//! loader; the environment the pods and compose nodes set is what the binary reads and makes a
//! valid cluster node; their stop budget covers the drain that config allows; and
//! `deploy/validate.sh` (kustomize, then kubernetes-validate against the API schemas, offline)
//! passes. Nothing here talks to a Kubernetes API server or to Docker.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use connectors::cli::{Cli, Command as CliCommand};
use connectors::config::{Config, Env};
use serde_json::Value;

#[path = "common/cached_packages.rs"]
mod cached_packages;

const CONFIG: &str = "deploy/kubernetes/base/gateway.yaml";
const STATEFULSET: &str = "deploy/kubernetes/base/gateway-statefulset.yaml";
const COMPOSE: &str = "deploy/compose.yaml";

struct NoEnv;

impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn config() -> Config {
    Config::load(Some(&root().join(CONFIG)), &NoEnv).unwrap_or_else(|e| panic!("{CONFIG}: {e}"))
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn gateway_container(statefulset: &Value) -> &Value {
    let containers = statefulset["spec"]["template"]["spec"]["containers"].as_array().expect("containers");
    containers.iter().find(|c| c["name"] == "gateway").expect("a container named gateway")
}

/// The gateway container's environment: literal values, and `None` for those from a Secret or
/// the downward API.
fn statefulset_env(statefulset: &Value) -> BTreeMap<String, Option<String>> {
    let env = gateway_container(statefulset)["env"].as_array().expect("env");
    env.iter()
        .map(|var| (var["name"].as_str().unwrap().to_string(), var["value"].as_str().map(str::to_string)))
        .collect()
}

/// Each compose gateway node's environment: the shared block under `x-gateway`, then the node's
/// own (compose's `<<` merge, done here since serde_norway keeps `<<` as a key).
fn compose_nodes() -> BTreeMap<String, BTreeMap<String, String>> {
    let compose = yaml(COMPOSE);
    let shared = compose["x-gateway"]["environment"].as_object().expect("x-gateway.environment").clone();
    let services = compose["services"].as_object().expect("services");
    services
        .iter()
        .filter(|(name, _)| name.starts_with("node-"))
        .map(|(name, service)| {
            let own = service["environment"].as_object().expect("environment");
            let env = shared
                .iter()
                .chain(own.iter().filter(|(key, _)| *key != "<<"))
                .map(|(key, value)| (key.clone(), value.as_str().map_or_else(|| value.to_string(), str::to_string)))
                .collect();
            (name.clone(), env)
        })
        .collect()
}

/// Replaces Kubernetes' `$(NAME)` references with `values`.
fn expand(text: &str, values: &[(&str, &str)]) -> String {
    values.iter().fold(text.to_string(), |text, (name, value)| text.replace(&format!("$({name})"), value))
}

/// Replaces compose's `${NAME...}` interpolations with `value`.
fn interpolate(text: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let end = rest[start..].find('}').map(|i| start + i).expect("a closed ${...}");
        out.push_str(&rest[..start]);
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out + rest
}

/// Environment variables the binary reads: the `serve` flags' (from clap) and those read directly
/// in src/main.rs and src/config.rs.
fn variables_the_gateway_reads() -> Vec<String> {
    let cli = Cli::command();
    let serve = cli.find_subcommand("serve").expect("a serve subcommand");
    let mut names: Vec<String> =
        serve.get_arguments().filter_map(|arg| arg.get_env()).map(|env| env.to_string_lossy().into_owned()).collect();
    names.extend(
        [
            "ADMIN_API_KEY",
            "CONNECTORS_MASTER_KEY",
            "CONNECTORS_CLUSTER_COOKIE",
            "CONNECTORS_FAULT_INJECTION",
            "METRICS_TOKEN",
            "RUST_LOG",
            "VAULT_ADDR",
            "VAULT_TOKEN",
            "VAULT_TENANT_PREFIX",
            "MULTI_TENANT_ENABLED",
            "TENANT_ID_HEADER",
            "API_KEY_HEADER",
            "RATE_LIMIT_ENABLED",
            "RATE_LIMIT_STORE",
            "REDIS_TENANT_PREFIX",
            "OAUTH_REFRESH_BEFORE_SECONDS",
        ]
        .map(String::from),
    );
    names
}

/// What a cluster node cannot start without (src/cli.rs, src/main.rs, src/app.rs).
const CLUSTER_NODE_NEEDS: [&str; 5] = [
    "CONNECTORS_NODE_ID",
    "CONNECTORS_CLUSTER_LISTEN",
    "REDIS_URL",
    "CONNECTORS_CLUSTER_COOKIE",
    "CONNECTORS_MASTER_KEY",
];

/// Parses `connectors serve` as the binary would with `env` as its environment (flags given
/// as such, since the test cannot set the process environment safely) and checks cluster mode.
fn serve_with(env: &BTreeMap<String, String>, whose: &str) {
    let flag = |name: &str, variable: &str| env.get(variable).map(|value| format!("--{name}={value}"));
    let args: Vec<String> = ["connectors".to_string(), "serve".to_string()]
        .into_iter()
        .chain(flag("listen", "CONNECTORS_LISTEN"))
        .chain(flag("data-dir", "CONNECTORS_DATA_DIR"))
        .chain(flag("config", "CONNECTORS_CONFIG"))
        .chain(flag("redis-url", "REDIS_URL"))
        .chain(flag("node-id", "CONNECTORS_NODE_ID"))
        .chain(flag("cluster-listen", "CONNECTORS_CLUSTER_LISTEN"))
        .chain(flag("cluster-advertise", "CONNECTORS_CLUSTER_ADVERTISE"))
        .collect();
    let cli = Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{whose}: `{}`: {e}", args.join(" ")));
    let CliCommand::Serve(serve) = cli.command else { unreachable!() };
    let cluster = serve.cluster().unwrap_or_else(|e| panic!("{whose}: not a cluster node: {e}")).expect("cluster mode");
    let told = cluster.advertise.clone().unwrap_or_else(|| cluster.listen.to_string());
    assert!(
        !told.starts_with("127.") && !told.starts_with("localhost:") && !told.starts_with("[::1]"),
        "{whose}: peers are told to dial {told}, which is the node's loopback, not the node"
    );
    assert!(serve.listen.ip().is_unspecified(), "{whose}: HTTP must listen on every interface for probes and Services");
}

#[test]
fn the_shipped_config_file_loads_with_the_gateways_loader() {
    let config = config();
    assert!(config.identity.multi_tenant && config.identity.require_api_key);
    assert!(config.cluster.heartbeat * 4 <= config.cluster.failure_timeout);
}

#[test]
fn every_variable_the_pods_and_nodes_set_is_read_by_the_gateway_and_makes_a_cluster_node() {
    let known = variables_the_gateway_reads();
    let statefulset = yaml(STATEFULSET);
    let env = statefulset_env(&statefulset);
    let referenced = |name: &str| env.values().flatten().any(|value| value.contains(&format!("$({name})")));
    for name in env.keys() {
        assert!(
            known.contains(name) || referenced(name),
            "{STATEFULSET} sets {name}, which the gateway does not read and no other variable uses"
        );
    }
    for name in CLUSTER_NODE_NEEDS {
        assert!(env.contains_key(name), "{STATEFULSET} does not set {name}");
    }
    // The pod as it runs: the downward API's name and IP, the Secret's password.
    let pod = [("POD_NAME", "connectors-gateway-2"), ("POD_NAMESPACE", "connectors"), ("REDIS_PASSWORD", "0123abcd")];
    let expanded: BTreeMap<String, String> =
        env.iter().filter_map(|(name, value)| Some((name.clone(), expand(value.as_deref()?, &pod)))).collect();
    serve_with(&expanded, STATEFULSET);
    assert_eq!(expanded["CONNECTORS_CONFIG"], "/etc/connectors/gateway.yaml");

    let nodes = compose_nodes();
    assert_eq!(nodes.len(), 3, "{COMPOSE}: three gateway nodes");
    for (node, env) in &nodes {
        let whose = format!("{COMPOSE} {node}");
        for name in env.keys() {
            assert!(known.contains(name), "{whose} sets {name}, which the gateway does not read");
        }
        for name in CLUSTER_NODE_NEEDS {
            assert!(env.contains_key(name), "{whose} does not set {name}");
        }
        let interpolated: BTreeMap<String, String> =
            env.iter().map(|(name, value)| (name.clone(), interpolate(value, "0123abcd"))).collect();
        serve_with(&interpolated, &whose);
    }
}

#[test]
fn the_stop_budget_covers_the_drain_the_config_allows() {
    let config = config();
    // What SIGTERM may take (src/main.rs, then Gateway::shutdown in src/app.rs): the drain, the
    // open connections' grace, the OAuth refreshes in flight (one call timeout), and stopping the
    // tenant actors and their supervisor (10 s each at most, fixed in the binary).
    let needed = config.cluster.drain_deadline + config.shutdown_grace + config.call_timeout + Duration::from_secs(20);
    // And a margin for the last flush to Redis and leaving the view.
    let needed = needed + Duration::from_secs(5);

    let statefulset = yaml(STATEFULSET);
    let pod = &statefulset["spec"]["template"]["spec"];
    let grace = pod["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds");
    let pre_stop = gateway_container(&statefulset)["lifecycle"]["preStop"]["sleep"]["seconds"].as_u64().unwrap_or(0);
    assert!(
        Duration::from_secs(grace.saturating_sub(pre_stop)) >= needed,
        "{STATEFULSET}: terminationGracePeriodSeconds {grace} minus the {pre_stop} s preStop hook leaves less than \
         the {} s a drain may take with {CONFIG}",
        needed.as_secs()
    );

    let compose = yaml(COMPOSE);
    let stop = compose["x-gateway"]["stop_grace_period"].as_str().expect("x-gateway.stop_grace_period");
    let seconds: u64 = stop.strip_suffix('s').and_then(|s| s.parse().ok()).expect("stop_grace_period in seconds");
    assert!(
        Duration::from_secs(seconds) >= needed,
        "{COMPOSE}: stop_grace_period {stop} is shorter than the {} s a drain may take",
        needed.as_secs()
    );
}

#[test]
fn deploy_validate_sh_passes() {
    let python = Command::new("python3").arg("--version").output();
    assert!(
        python.is_ok_and(|out| out.status.success()),
        "deploy/validate.sh needs python3 with venv and pip (it installs kubernetes-validate from PyPI on first \
         use): install python3"
    );
    let venv = cached_packages::kubernetes_validate_venv();
    let out = Command::new("bash")
        .arg("deploy/validate.sh")
        .current_dir(root())
        .env("CONNECTORS_DEPLOY_VENV", &venv)
        .output()
        .expect("bash runs deploy/validate.sh");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "deploy/validate.sh failed ({}):\n{text}", out.status);
    println!("{text}");
}
