//! A Python virtualenv for a test's PyPI tools, kept outside the repository under
//! `${XDG_CACHE_HOME:-$HOME/.cache}/connectors-gateway/<name>` and created on first use (the same
//! place deploy/validate.sh keeps its own). Concurrent test processes wait for the one
//! installing. Included with `#[path]` by the tests that need it; only std.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct PythonVenv {
    dir: PathBuf,
}

fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME is set");
    base.join("connectors-gateway")
}

impl PythonVenv {
    /// The venv `name`, with `requirements` (pip specifiers) installed when `probe` (Python
    /// code, e.g. `import schemathesis`) fails in it. Panics with what to install when python3,
    /// venv or pip are missing.
    pub fn ensure(name: &str, requirements: &[&str], probe: &str) -> Self {
        let venv = Self { dir: cache_dir().join(name) };
        if venv.probe(probe) {
            return venv;
        }
        std::fs::create_dir_all(cache_dir()).expect("create the cache directory");
        let lock = cache_dir().join(format!("{name}.installing"));
        let deadline = Instant::now() + Duration::from_secs(600);
        // A directory is created atomically: whoever creates it installs, the others wait.
        while std::fs::create_dir(&lock).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} was held for 10 minutes: remove it if no install runs",
                lock.display()
            );
            std::thread::sleep(Duration::from_millis(500));
            if venv.probe(probe) {
                return venv;
            }
        }
        let installed = venv.install(requirements);
        let _ = std::fs::remove_dir(&lock);
        installed.unwrap_or_else(|problem| panic!("cannot make the virtualenv {}: {problem}", venv.dir.display()));
        assert!(venv.probe(probe), "`{probe}` still fails in {} after installing", venv.dir.display());
        venv
    }

    fn install(&self, requirements: &[&str]) -> Result<(), String> {
        eprintln!("installing {} into {} (once)", requirements.join(" "), self.dir.display());
        let _ = std::fs::remove_dir_all(&self.dir);
        let created = Command::new("python3").args(["-m", "venv"]).arg(&self.dir).status();
        if !created.is_ok_and(|status| status.success()) {
            return Err("`python3 -m venv` failed: install python3 and python3-venv".into());
        }
        let pip = Command::new(self.python())
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(requirements)
            .status();
        if pip.is_ok_and(|status| status.success()) {
            Ok(())
        } else {
            Err(format!("pip cannot install {} (PyPI must be reachable)", requirements.join(" ")))
        }
    }

    fn probe(&self, code: &str) -> bool {
        Command::new(self.python())
            .args(["-c", code])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    pub fn python(&self) -> PathBuf {
        self.dir.join("bin/python")
    }

    /// A program the venv's packages installed, e.g. `schemathesis`.
    pub fn bin(&self, program: &str) -> PathBuf {
        self.dir.join("bin").join(program)
    }
}
