//! Rebuilds the binary when a migration under `sql/` is added or changed: refinery's
//! `embed_migrations!` reads that directory at compile time, and without this a new migration
//! would silently not ship until some Rust file changed.

fn main() {
    println!("cargo:rerun-if-changed=sql");
    println!("cargo:rerun-if-changed=build.rs");
}
