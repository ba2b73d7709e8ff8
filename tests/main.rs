//! Black-box tests of the `tenantctl` binary against a real PostgreSQL server (one test
//! binary; one module per subcommand or concern).

mod support;

mod actor;
mod backup;
mod bill;
mod bill_model;
mod bulk;
mod cli;
mod completions;
mod connection;
mod contract;
mod corpus;
mod faults;
mod features;
mod fleet;
mod hooks;
mod input;
mod isolation;
mod lifecycle;
mod local;
mod metrics;
mod migrate;
mod moves;
mod ownership;
mod privileges;
mod provision;
mod quota;
mod regions;
mod relocate;
mod report;
mod route;
mod show;
mod storage_s3;
mod template;
mod usage;
