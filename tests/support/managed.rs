//! A second throwaway PostgreSQL, configured like a managed server: TCP on 127.0.0.1 (a free
//! port), `ssl=on` with a CA and a server certificate made at test time with the `openssl`
//! command (the server certificate names `localhost` only, so `127.0.0.1` is a wrong host name
//! for verify-full), scram-sha-256 for password roles and certificate authentication for
//! `certuser`. Started once per test process; it dies with the process.
//!
//! Roles: `admin` (password `adm1n 'pw` — a space and a quote, to exercise quoting), a
//! least-privilege admin as a managed server gives it (LOGIN CREATEDB CREATEROLE); `certuser`, who logs in with its
//! client certificate; `weak`, LOGIN only (password `weakpw`), for doctor's privilege report.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tenantctl::cluster::{command_as, initdb, pg_bindir, private_dir, server_account, SUPERUSER};

use super::cluster::spawn_tied;

pub const ADMIN_PASSWORD: &str = "adm1n 'pw";

pub struct Managed {
    pub port: u16,
    /// The unix socket directory, for superuser set-up by the tests (trust, local only).
    pub socket: PathBuf,
    /// The CA that signed the server's and the client's certificates.
    pub ca: PathBuf,
    /// Another CA, which signed nothing the server presents.
    pub wrong_ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Managed {
    /// A superuser connection over the socket, to set up or inspect.
    pub fn superuser(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(
            &format!(
                "host={} port={} user={SUPERUSER} dbname={db}",
                self.socket.display(),
                self.port
            ),
            postgres::NoTls,
        )
        .unwrap()
    }

    /// A key=value connection string (without a password) for `user` to `db` over TCP.
    pub fn kv(&self, host: &str, user: &str, db: &str, extra: &str) -> String {
        format!(
            "host={host} port={} user={user} dbname={db} {extra}",
            self.port
        )
    }
}

static MANAGED: OnceLock<Managed> = OnceLock::new();

pub fn managed() -> &'static Managed {
    MANAGED.get_or_init(start)
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl (install the openssl package)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`name`.crt/.key).
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

/// A certificate for `cn` signed by `ca`, with `san` as subjectAltName when given.
fn make_cert(dir: &Path, ca: &str, name: &str, cn: &str, san: Option<&str>) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(
        &ext,
        match san {
            Some(s) => format!("subjectAltName={s}\n"),
            None => "basicConstraints=CA:FALSE\n".to_owned(),
        },
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn chown(path: &Path, account: Option<(u32, u32)>) {
    if let Some((uid, gid)) = account {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
}

fn start() -> Managed {
    let root = PathBuf::from(format!("/tmp/tenantctl-test-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = root.join("managed");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::set_permissions(&certs, std::fs::Permissions::from_mode(0o755)).unwrap();
    make_ca(&certs, "ca");
    make_ca(&certs, "wrong-ca");
    make_cert(&certs, "ca", "server", "localhost", Some("DNS:localhost"));
    make_cert(&certs, "ca", "client", "certuser", None);
    for f in ["ca.crt", "wrong-ca.crt", "server.crt", "client.crt"] {
        std::fs::set_permissions(certs.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    let bindir = pg_bindir(None).expect("PostgreSQL server binaries (install postgresql-15)");
    let account = server_account().unwrap();
    // The server's key must belong to the server's account, mode 0600.
    chown(&certs.join("server.key"), account);
    std::fs::set_permissions(
        certs.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(
        certs.join("client.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();

    let pgdata = dir.join("pg");
    let socket = dir.join("run");
    initdb(&bindir, &pgdata, account).expect("initdb");
    private_dir(&socket, account).unwrap();
    std::fs::write(
        pgdata.join("pg_hba.conf"),
        "local all all trust\n\
         hostssl all certuser 127.0.0.1/32 cert\n\
         host all all 127.0.0.1/32 scram-sha-256\n",
    )
    .unwrap();
    let port = free_port();
    let mut cmd = command_as(&bindir.join("postgres"), account);
    cmd.arg("-D")
        .arg(&pgdata)
        .arg("-k")
        .arg(&socket)
        .arg("-p")
        .arg(port.to_string())
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "ssl=on"])
        .arg("-c")
        .arg(format!(
            "ssl_cert_file={}",
            certs.join("server.crt").display()
        ))
        .arg("-c")
        .arg(format!(
            "ssl_key_file={}",
            certs.join("server.key").display()
        ))
        .arg("-c")
        .arg(format!("ssl_ca_file={}", certs.join("ca.crt").display()))
        .args([
            "-c",
            "password_encryption=scram-sha-256",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "max_connections=100",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("server.log")).unwrap());
    spawn_tied(cmd);

    let m = Managed {
        port,
        socket,
        ca: certs.join("ca.crt"),
        wrong_ca: certs.join("wrong-ca.crt"),
        client_cert: certs.join("client.crt"),
        client_key: certs.join("client.key"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut c = loop {
        match postgres::Client::connect(
            &format!(
                "host={} port={port} user={SUPERUSER} dbname=postgres",
                m.socket.display()
            ),
            postgres::NoTls,
        ) {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("the managed test server did not start: {e}"),
        }
    };
    c.batch_execute(&format!(
        "CREATE ROLE admin LOGIN CREATEDB CREATEROLE PASSWORD '{}';
         CREATE ROLE certuser LOGIN CREATEDB CREATEROLE;
         CREATE ROLE weak LOGIN PASSWORD 'weakpw';",
        ADMIN_PASSWORD.replace('\'', "''")
    ))
    .unwrap();
    m
}
