//! One S3-compatible server per test process: `s3s-fs` (the `s3s-fs` crate's server, installed
//! by `.ci/run` with `cargo install s3s-fs --version 0.14.1 --features binary`), on a free
//! local port, storing under a private temp directory, dying with the process. Buckets are
//! directories under `root` and objects files in them, so tests check the real state there.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::TestEnv;

pub const ACCESS_KEY: &str = "tenantctl-test";
pub const SECRET_KEY: &str = "tenantctl-test-secret";

pub struct S3Server {
    pub endpoint: String,
    pub root: PathBuf,
}

static SERVER: OnceLock<S3Server> = OnceLock::new();

/// The binary: `TENANTCTL_TEST_S3S_FS`, else `s3s-fs` in `$CARGO_HOME/bin` or `~/.cargo/bin`,
/// else on the PATH.
fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("TENANTCTL_TEST_S3S_FS") {
        return PathBuf::from(p);
    }
    let homes = [
        std::env::var("CARGO_HOME").ok().map(PathBuf::from),
        std::env::var("HOME")
            .ok()
            .map(|h| PathBuf::from(h).join(".cargo")),
    ];
    for home in homes.into_iter().flatten() {
        let p = home.join("bin/s3s-fs");
        if p.is_file() {
            return p;
        }
    }
    PathBuf::from("s3s-fs")
}

pub fn server() -> &'static S3Server {
    SERVER.get_or_init(|| {
        let root = PathBuf::from(format!("/tmp/tenantctl-s3-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = std::process::Command::new(binary());
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        super::cluster::spawn_tied(cmd);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not start (install it: cargo install s3s-fs --version 0.14.1 --features binary)"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            root,
        }
    })
}

/// A test's view of the server: its own bucket prefix and shared buckets.
pub struct S3Env {
    pub bucket_prefix: String,
    pub shared: String,
}

impl S3Env {
    /// Points `env` at the server (a `tenantctl.toml` in its directory), with names of its own.
    pub fn new(env: &TestEnv) -> S3Env {
        let s3 = server();
        let id = env.prefix.trim_end_matches('_').replace('_', "-");
        let s = S3Env {
            bucket_prefix: format!("{id}-"),
            shared: format!("{id}-pooled"),
        };
        std::fs::write(
            env.dir.path().join("tenantctl.toml"),
            format!(
                "[storage]\nbackend = \"s3\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nbucket_prefix = \"{}\"\nshared_buckets = \"{}\"\n",
                s3.endpoint, s.bucket_prefix, s.shared
            ),
        )
        .unwrap();
        s
    }

    /// The directory of a siloed tenant's bucket on the server.
    pub fn silo_bucket(&self, slug: &str, kind: &str) -> PathBuf {
        server()
            .root
            .join(format!("{}{slug}-{kind}", self.bucket_prefix))
    }

    /// The directory of a pooled tenant's prefix in the shared bucket of `kind`.
    pub fn pooled_prefix(&self, slug: &str, kind: &str) -> PathBuf {
        self.shared_bucket(kind).join(slug)
    }

    pub fn shared_bucket(&self, kind: &str) -> PathBuf {
        server().root.join(format!("{}-{kind}", self.shared))
    }
}

/// Every file under `dir`, relative, sorted.
pub fn files(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let key = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), &key, out);
            } else {
                out.push(key);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out);
    out.sort();
    out
}
