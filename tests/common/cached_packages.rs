//! Packages of other ecosystems that tests run — a Python virtualenv (the official MCP Python
//! SDK, kubernetes-validate) or npm packages (the official MCP TypeScript SDK) — installed on
//! first use into a cache outside the repository, `$XDG_CACHE_HOME` (else `~/.cache`) under
//! `connectors-gateway/`, and reused by every later run. Pin exact versions: the directory is
//! named after what it holds, so a new pin installs afresh beside the old one.
//!
//! Test processes run in parallel: each installs into a directory of its own and renames it into
//! place when complete, so a reader never sees a half-made install, and a loser of the race
//! throws its copy away. Only std; included with `#[path]` by the tests that need it.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// `$XDG_CACHE_HOME/connectors-gateway` (else `~/.cache/connectors-gateway`).
pub fn cache_root() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache"));
    base.join("connectors-gateway")
}

/// A virtualenv under the cache holding `requirements` (pip specifiers, pinned), created on first
/// use; `ready` is a Python statement that succeeds once they are importable. Answers the
/// virtualenv's directory (its interpreter is `bin/python`).
pub fn python_venv(name: &str, requirements: &[&str], ready: &str) -> PathBuf {
    let dir = cache_root().join(format!("python-{name}"));
    let imports = |venv: &Path| {
        Command::new(venv.join("bin/python"))
            .args(["-c", ready])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    install_once(&dir, imports, |partial| {
        run(Command::new("python3").args(["-m", "venv"]).arg(partial), "python3 -m venv (install python3-venv)")?;
        run(
            Command::new(partial.join("bin/python"))
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
                .args(requirements),
            &format!("pip install {}", requirements.join(" ")),
        )
    })
}

/// The virtualenv holding the kubernetes-validate that `deploy/validate.sh` pins (its
/// `KUBERNETES_VALIDATE_VERSION`), for the script's `CONNECTORS_DEPLOY_VENV`.
pub fn kubernetes_validate_venv() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/validate.sh");
    let script = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let version = script
        .lines()
        .find_map(|line| line.strip_prefix("KUBERNETES_VALIDATE_VERSION="))
        .expect("deploy/validate.sh pins KUBERNETES_VALIDATE_VERSION")
        .trim();
    python_venv(
        &format!("kubernetes-validate-{version}"),
        &[&format!("kubernetes-validate=={version}")],
        "import kubernetes_validate",
    )
}

/// A directory under the cache whose `node_modules` holds `packages` (npm specifiers, pinned),
/// installed on first use; `ready` names a file under `node_modules` that exists once they are.
pub fn npm_packages(name: &str, packages: &[&str], ready: &str) -> PathBuf {
    let dir = cache_root().join(format!("npm-{name}"));
    install_once(
        &dir,
        |dir| dir.join("node_modules").join(ready).exists(),
        |partial| {
            std::fs::write(partial.join("package.json"), "{\"private\": true}\n")
                .map_err(|error| format!("cannot write package.json: {error}"))?;
            run(
                Command::new("npm")
                    .args(["install", "--silent", "--no-audit", "--no-fund", "--no-save"])
                    .args(packages)
                    .current_dir(partial),
                &format!("npm install {} (node and npm must be on PATH)", packages.join(" ")),
            )
        },
    )
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    match command.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("{what} failed: {status}")),
        Err(error) => Err(format!("{what} could not run: {error}")),
    }
}

/// `dir` once `ready` holds for it, installing with `install` into a fresh directory renamed into
/// place when `ready` does not hold yet.
fn install_once(dir: &Path, ready: impl Fn(&Path) -> bool, install: impl Fn(&Path) -> Result<(), String>) -> PathBuf {
    if ready(dir) {
        return dir.to_path_buf();
    }
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let partial = dir.with_extension(format!("partial-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&partial).unwrap_or_else(|e| panic!("cannot create {}: {e}", partial.display()));
    eprintln!("installing into {} (once)", dir.display());
    if let Err(error) = install(&partial).and_then(|()| {
        if ready(&partial) { Ok(()) } else { Err(format!("{} is incomplete after installing", partial.display())) }
    }) {
        let _ = std::fs::remove_dir_all(&partial);
        panic!("a test needs packages that could not be installed: {error}");
    }
    if std::fs::rename(&partial, dir).is_err() {
        // Another process finished first, or a broken earlier install is in the way.
        if ready(dir) {
            let _ = std::fs::remove_dir_all(&partial);
            return dir.to_path_buf();
        }
        let _ = std::fs::remove_dir_all(dir);
        std::fs::rename(&partial, dir)
            .unwrap_or_else(|e| panic!("cannot move the install into {}: {e}", dir.display()));
    }
    assert!(ready(dir), "{} does not work after being moved into place", dir.display());
    dir.to_path_buf()
}
