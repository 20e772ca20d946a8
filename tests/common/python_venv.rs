//! Python virtualenvs for tests that run Python tools: created on first use under the user's
//! cache directory (`${XDG_CACHE_HOME:-$HOME/.cache}/connectors-gateway/`, never in the
//! repository), one per name and set of pinned requirements, and reused after. Included with
//! `#[path]` by the tests that need it; only std.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The virtualenv `<name>-<hash of requirements>` holding `requirements` (pip specifiers, pinned),
/// created and installed when missing. Panics with what to install when python3 cannot do it.
///
/// A venv is built in a directory of its own and renamed into place when complete, so a test
/// process never sees half a venv and two processes creating it at once both end with one.
pub fn python_venv(name: &str, requirements: &[&str]) -> PathBuf {
    let venv = cache_dir().join(format!("{name}-{:016x}", fnv1a(&requirements.join("\n"))));
    if venv_python(&venv).exists() {
        return venv;
    }
    let partial = venv.with_extension(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(partial.parent().expect("a cache directory")).expect("create the cache directory");
    let created = Command::new("python3").args(["-m", "venv"]).arg(&partial).status();
    assert!(
        created.is_ok_and(|status| status.success()),
        "python3 cannot create a virtualenv at {}: install python3 with venv and pip (Debian: python3-venv)",
        partial.display()
    );
    eprintln!("installing {requirements:?} into {} (once)", venv.display());
    let installed = Command::new(venv_python(&partial))
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .args(requirements)
        .status();
    if !installed.is_ok_and(|status| status.success()) {
        let _ = std::fs::remove_dir_all(&partial);
        panic!("pip cannot install {requirements:?} into a virtualenv (is the package index reachable?)");
    }
    // Another process may have finished first: then its venv stays and this one goes.
    if std::fs::rename(&partial, &venv).is_err() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    assert!(venv_python(&venv).exists(), "no python in {}", venv.display());
    venv
}

/// The interpreter of a virtualenv (run tools as `python -m <tool>`: console scripts keep the
/// path the venv was built at).
pub fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME is set");
    base.join("connectors-gateway")
}

/// FNV-1a: a hash that is the same in every build, so a venv's name is too.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}
