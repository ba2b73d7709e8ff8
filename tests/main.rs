//! Black-box tests of the `tenantctl` binary against a real PostgreSQL server (one test
//! binary; one module per subcommand or concern).

mod support;

mod bill;
mod cli;
mod faults;
mod features;
mod isolation;
mod lifecycle;
mod local;
mod migrate;
mod provision;
mod quota;
mod show;
mod usage;
