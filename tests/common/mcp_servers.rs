//! MCP servers in real processes for the tests: the project's example server (built once per test
//! process) and the server written with the official Python SDK. Included with `#[path]` by the
//! tests that need it; only std.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// The example server's binary, built once per test process so it is never stale.
pub fn example_server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // This test runs from `<target>/<profile>/deps/`; the example server lands in `<target>/<profile>/`.
        let exe = std::env::current_exe().expect("the test executable's path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("a target/<profile>/deps layout");
        let target_dir = profile_dir.parent().expect("a target directory");
        let profile = profile_dir.file_name().and_then(|name| name.to_str()).expect("a profile name");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "mcp-example-server", "--bin", "mcp-example-server", "--profile"])
            .arg(if profile == "debug" { "dev" } else { profile })
            .arg("--manifest-path")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", target_dir)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building mcp-example-server failed");
        profile_dir.join("mcp-example-server")
    })
}

/// The example server copied where any user may run it (the test binaries live under a home
/// directory that only its owner can enter): a gateway run as root starts tenants' servers as
/// another user. Copied once per build of the server; concurrent test processes race benignly.
pub fn example_server_for_anyone() -> &'static Path {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    static COPY: OnceLock<PathBuf> = OnceLock::new();
    COPY.get_or_init(|| {
        let original = example_server_binary();
        let metadata = std::fs::metadata(original).expect("the example server exists");
        let dir = std::env::temp_dir().join("connectors-test-example-server").join(format!(
            "{}-{}",
            metadata.mtime_nsec() ^ metadata.mtime(),
            metadata.size()
        ));
        let copy = dir.join("mcp-example-server");
        if !copy.exists() {
            std::fs::create_dir_all(&dir).expect("a directory for the copy");
            for open in [dir.as_path(), dir.parent().unwrap()] {
                std::fs::set_permissions(open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            }
            let partial = dir.join(format!("partial-{}", std::process::id()));
            std::fs::copy(original, &partial).expect("copy the example server");
            std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            std::fs::rename(&partial, &copy).expect("move the copy into place");
        }
        copy
    })
}

/// A server process that prints `listening on URL` first; killed when dropped.
pub struct HttpServerProcess {
    child: Child,
    pub url: String,
}

impl HttpServerProcess {
    /// The server written with the official Python SDK (installed first when missing).
    pub fn python() -> Self {
        ensure_python_mcp_sdk();
        Self::start(Command::new("python3").arg(python_server_script()))
    }

    pub fn start(command: &mut Command) -> Self {
        let mut child = command.stdout(Stdio::piped()).spawn().expect("the server process starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("the server reports its address");
        let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Self { url: url.to_owned(), child }
    }

    /// The example server over streamable HTTP on a free port.
    pub fn example(extra_args: &[&str]) -> Self {
        Self::start(Command::new(example_server_binary()).args(["--http", "127.0.0.1:0"]).args(extra_args))
    }
}

impl HttpServerProcess {
    /// Kills the server (a crash, as far as its clients can tell).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HttpServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python_imports_mcp() -> bool {
    Command::new("python3")
        .args(["-c", "import mcp.server.fastmcp, uvicorn"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Installs the official MCP Python SDK (1.x) for this user when it is missing.
pub fn ensure_python_mcp_sdk() {
    if python_imports_mcp() {
        return;
    }
    // `--user` first; a virtualenv refuses it, and a distribution's Python may want the last form.
    let attempts: [&[&str]; 3] = [&["--user"], &[], &["--user", "--break-system-packages"]];
    for extra in attempts {
        let installed = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(extra)
            .arg("mcp<2")
            .status()
            .is_ok_and(|status| status.success());
        if installed && python_imports_mcp() {
            return;
        }
    }
    panic!(
        "the official MCP Python SDK is required by this test and could not be installed: \
         run `python3 -m pip install --user \"mcp<2\"` (python3 and pip must be on PATH)"
    );
}

pub fn python_server_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python_mcp_server.py")
}
