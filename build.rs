//! Rebuilds the binary when a migration under `sql/` is added or changed: refinery's
//! `embed_migrations!` reads that directory at compile time, and without this a new migration
//! would silently not ship until some Rust file changed.
//!
//! Also lists the migrations' versions and names (`$OUT_DIR/migrations.rs`), so that a command
//! can tell whether a schema is current without building refinery's runner, which compiles a
//! regular expression to parse the same file names (≈1 ms of every command's start).
//!
//! Also records the git commit the binary is built from (`TENANTCTL_GIT_COMMIT`, shown by
//! `--version`), and reruns when HEAD moves. Outside a git checkout (a source tarball, no git
//! installed) the commit is "unknown": the build never fails for want of it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=sql");
    println!("cargo:rerun-if-changed=build.rs");
    write_migration_lists();

    // Only this crate's own checkout counts: a source tarball unpacked inside some other git
    // repository must not take that repository's commit.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").map(PathBuf::from).ok();
    let own_checkout = match (git(&["rev-parse", "--show-toplevel"]), &manifest_dir) {
        (Some(top), Some(dir)) => same_dir(Path::new(&top), dir),
        _ => false,
    };
    let commit = own_checkout
        .then(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .flatten()
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TENANTCTL_GIT_COMMIT={commit}");

    // HEAD names the branch; the branch's ref (loose, or in packed-refs) names the commit. A
    // worktree's HEAD lives in its own git dir, its refs in the common one.
    if !own_checkout {
        return;
    }
    if let (Some(git_dir), Some(common)) = (
        git(&["rev-parse", "--git-dir"]),
        git(&["rev-parse", "--git-common-dir"]),
    ) {
        let (git_dir, common) = (PathBuf::from(git_dir), PathBuf::from(common));
        rerun_if_exists(&git_dir.join("HEAD"));
        rerun_if_exists(&common.join("packed-refs"));
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
            // A branch only in packed-refs gets a loose file at its next commit: watch the
            // directory it will appear in (a path that does not exist would rerun every build).
            let loose = common.join(head_ref);
            if loose.exists() {
                rerun_if_exists(&loose);
            } else if let Some(dir) = loose.parent() {
                rerun_if_exists(dir);
            }
        }
    }
}

/// `CONTROL` and `TENANT`: `(version, name)` of every `V<version>__<name>.sql` under
/// `sql/control` and `sql/tenant`, by version. A file that does not parse fails the build, as
/// refinery's macro would.
fn write_migration_lists() {
    let mut out = String::new();
    for (konst, dir) in [("CONTROL", "sql/control"), ("TENANT", "sql/tenant")] {
        let mut found: Vec<(i32, String)> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
            .map(|entry| {
                let name = entry.expect("a directory entry").file_name();
                let name = name.to_str().expect("a UTF-8 file name").to_owned();
                let stem = name
                    .strip_prefix('V')
                    .and_then(|s| s.strip_suffix(".sql"))
                    .unwrap_or_else(|| panic!("{dir}/{name}: not V<version>__<name>.sql"));
                let (version, title) = stem
                    .split_once("__")
                    .unwrap_or_else(|| panic!("{dir}/{name}: not V<version>__<name>.sql"));
                let version = version
                    .parse()
                    .unwrap_or_else(|_| panic!("{dir}/{name}: bad version"));
                (version, title.to_owned())
            })
            .collect();
        found.sort();
        out.push_str(&format!(
            "pub const {konst}: &[(i32, &str)] = &{found:?};\n"
        ));
    }
    let path = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("migrations.rs");
    std::fs::write(&path, out).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// The trimmed stdout of a successful git command, else None.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn rerun_if_exists(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
