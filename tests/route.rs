//! `route` and `routes`: where an active tenant's application connects, and the routing table
//! for PgBouncer, checked with a real PgBouncer (Debian's `pgbouncer`) routing by slug to two
//! servers of the fleet.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::TestEnv;

fn pgbouncer_binary() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("pgbouncer");
        if p.is_file() {
            return p;
        }
    }
    let p = PathBuf::from("/usr/sbin/pgbouncer");
    assert!(
        p.is_file(),
        "pgbouncer is not installed (Debian: apt-get install pgbouncer)"
    );
    p
}

/// A PgBouncer on a unix socket in `dir` (port 6432: the socket file's name), as the server's
/// account (PgBouncer refuses to run as root), reading `ini`; killed when dropped.
struct Bouncer {
    child: Child,
    dir: PathBuf,
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bouncer {
    fn start(dir: &Path, ini: &Path) -> Bouncer {
        let account = tenantctl::cluster::server_account().unwrap();
        let mut cmd = tenantctl::cluster::command_as(&pgbouncer_binary(), account);
        cmd.arg(ini).stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd.spawn().expect("starting pgbouncer");
        let b = Bouncer {
            child,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !dir.join(".s.PGSQL.6432").exists() {
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not start: {}",
                b.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        b
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    /// A connection through PgBouncer to database `db` (a slug) as `user`.
    fn connect(&self, user: &str, db: &str) -> Result<postgres::Client, postgres::Error> {
        postgres::Client::connect(
            &format!(
                "host={} port=6432 user={user} dbname={db}",
                self.dir.display()
            ),
            postgres::NoTls,
        )
    }
}

/// The server's system identifier, seen through `client`: which cluster answered.
fn system_id(client: &mut postgres::Client) -> String {
    client
        .query_one(
            "SELECT system_identifier::text FROM pg_control_system()",
            &[],
        )
        .unwrap()
        .get(0)
}

#[test]
fn route_gives_an_active_tenants_connection_without_a_password() {
    let env = TestEnv::new();
    env.add_server("s2", &[]);
    env.run(&[
        "provision",
        "alpha",
        "--tier",
        "premium",
        "--server",
        "s2",
        "-q",
        "--password-file",
        "/dev/null",
    ])
    .expect(0);
    env.provision("tiny", "free");
    let r = env.run(&["route", "alpha", "-o", "json"]).expect(0).json();
    assert_eq!(r["server"], "s2");
    assert_eq!(r["host"], env.extra("s2").socket.display().to_string());
    assert_eq!(r["port"], 5432);
    assert_eq!(r["database"], env.silo("alpha"));
    assert_eq!(r["role"], env.silo("alpha"));
    assert_eq!(r["tenant_id"], serde_json::Value::Null);
    let url = r["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("postgresql://{}@%2F", env.silo("alpha"))),
        "{url}"
    );
    assert!(!url.contains(":@") && !url.contains("password"), "{url}");
    // --url prints it alone, and the tenant's role connects with it (the socket trusts).
    let alone = env.run(&["route", "alpha", "--url"]).expect(0).stdout;
    assert_eq!(alone, format!("{url}\n"));
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let db: String = c
        .query_one("SELECT current_database()", &[])
        .unwrap()
        .get(0);
    assert_eq!(db, env.silo("alpha"));
    // A pooled tenant's route names the shared role and the tenant id to set.
    let p = env.run(&["route", "tiny", "-o", "json"]).expect(0).json();
    assert_eq!(p["server"], "main");
    assert_eq!(p["database"], env.pooled_db());
    assert_eq!(p["role"], env.app_role());
    assert!(p["tenant_id"].is_string());
    let table = env.run(&["route", "tiny"]).expect(0).stdout;
    assert!(table.contains("set_config('app.tenant_id'"), "{table}");
    // Only an active tenant has a route.
    env.run(&["suspend", "alpha", "-q"]).expect(0);
    let run = env.run(&["route", "alpha"]).expect(3);
    assert!(run.stderr.contains("is suspended"), "{}", run.stderr);
}

#[test]
fn pgbouncer_routes_each_slug_to_its_server_and_drops_suspended_tenants() {
    let env = TestEnv::new();
    env.add_server("s2", &[]);
    for (slug, on) in [("alpha", "main"), ("beta-co", "s2"), ("sleepy", "s2")] {
        env.run(&[
            "provision",
            slug,
            "--tier",
            "premium",
            "--server",
            on,
            "-q",
            "--password-file",
            "/dev/null",
        ])
        .expect(0);
    }
    env.provision("tiny", "free");
    env.run(&["suspend", "sleepy", "-q"]).expect(0);

    // The routing table, written where PgBouncer includes it.
    let dir = env.dir.path().join("pgbouncer");
    std::fs::create_dir(&dir).unwrap();
    if let Some((uid, gid)) = tenantctl::cluster::server_account().unwrap() {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let routes = env.dir.path().join("routes.ini");
    env.run(&["routes", "--file", routes.to_str().unwrap()])
        .expect(0);
    let text = std::fs::read_to_string(&routes).unwrap();
    assert!(text.contains("[databases]"), "{text}");
    assert!(text.contains("\nbeta-co = host="), "{text}");
    assert!(!text.contains("sleepy"), "{text}");
    assert_eq!(
        text,
        env.run(&["routes", "--format", "pgbouncer"])
            .expect(0)
            .stdout
    );
    let users = dir.join("users.txt");
    std::fs::write(
        &users,
        [env.silo("alpha"), env.silo("beta-co"), env.app_role()]
            .iter()
            .map(|u| format!("\"{u}\" \"\"\n"))
            .collect::<String>(),
    )
    .unwrap();
    let ini = dir.join("pgbouncer.ini");
    std::fs::write(
        &ini,
        format!(
            "[pgbouncer]\nlisten_addr =\nlisten_port = 6432\nunix_socket_dir = {d}\nauth_type = trust\nauth_file = {u}\npool_mode = session\nlogfile = {d}/pgbouncer.log\n%include {r}\n",
            d = dir.display(),
            u = users.display(),
            r = routes.display()
        ),
    )
    .unwrap();
    let bouncer = Bouncer::start(&dir, &ini);

    // Each slug reaches its own database on its own server, as the tenant's role.
    let main_id = system_id(&mut env.admin("postgres"));
    let s2_id = system_id(&mut env.extra("s2").superuser("postgres"));
    assert_ne!(main_id, s2_id);
    for (slug, id) in [("alpha", &main_id), ("beta-co", &s2_id)] {
        let mut c = bouncer
            .connect(&env.silo(slug), slug)
            .unwrap_or_else(|e| panic!("{slug} through pgbouncer: {e}\n{}", bouncer.log()));
        let (db, user): (String, String) = {
            let row = c
                .query_one("SELECT current_database(), current_user::text", &[])
                .unwrap();
            (row.get(0), row.get(1))
        };
        assert_eq!(db, env.silo(slug));
        assert_eq!(user, env.silo(slug));
        assert_eq!(&system_id(&mut c), id, "{slug}");
    }
    // The pooled tenant reaches the shared database as the application role.
    let mut c = bouncer.connect(&env.app_role(), "tiny").unwrap();
    let db: String = c
        .query_one("SELECT current_database()", &[])
        .unwrap()
        .get(0);
    assert_eq!(db, env.pooled_db());
    // A suspended tenant has no route: PgBouncer does not know the slug.
    assert!(bouncer.connect(&env.silo("sleepy"), "sleepy").is_err());
}

#[test]
fn routes_json_lists_active_tenants_by_slug() {
    let env = TestEnv::new();
    env.provision("acme", "premium");
    env.provision("tiny", "free");
    env.provision("gone", "premium");
    env.run(&["deprovision", "gone", "-q"]).expect(0);
    let v = env.run(&["routes", "-o", "json"]).expect(0).json();
    let slugs: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["acme", "tiny"]);
    assert_eq!(v, env.run(&["routes", "--format", "json"]).expect(0).json());
}
