//! The local cluster: `local status` and `local stop`. Both find the server from its own
//! `postmaster.pid`, so a server listening where tenantctl does not expect it (one started
//! with an inherited `PGPORT`, say) is still reported and stopped.

use anyhow::Result;

use crate::cluster::{ClusterStatus, LocalCluster};
use crate::config::Settings;
use crate::db::Server;

fn cluster(settings: &Settings) -> LocalCluster {
    LocalCluster::new(&settings.data_dir, settings.pg_bindir.as_deref())
}

/// The cluster's files, and for a running server whether tenantctl can connect to it (and
/// why not).
pub async fn status(settings: &Settings) -> ClusterStatus {
    let cluster = cluster(settings);
    let mut status = cluster.status();
    if status.running && status.problem.is_none() {
        let shown = format!("the local cluster in {}", cluster.data_dir().display());
        let server = Server::local(cluster.connect_config("postgres"), shown);
        match server.connect("postgres").await {
            Ok(_) => status.reachable = true,
            Err(e) => status.problem = Some(format!("{e:#}")),
        }
    }
    status
}

/// Stops the local cluster; false if it was not running.
pub fn stop(settings: &Settings) -> Result<bool> {
    cluster(settings).stop()
}
