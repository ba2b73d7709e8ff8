//! The local cluster: `local status` and `local stop`. Both find the server from its own
//! `postmaster.pid`, so a server listening where tenantctl does not expect it (one started
//! with an inherited `PGPORT`, say) is still reported and stopped.

use anyhow::Result;

use super::{local_cluster, Context};
use crate::cluster::ClusterStatus;
use crate::db::Server;

/// The cluster's files, and for a running server whether tenantctl can connect to it (and
/// why not).
pub async fn status(ctx: &Context) -> ClusterStatus {
    let cluster = local_cluster(ctx);
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
pub fn stop(ctx: &Context) -> Result<bool> {
    local_cluster(ctx).stop()
}
