//! The local cluster: `local status` and `local stop`.

use anyhow::Result;

use crate::cluster::{ClusterStatus, LocalCluster};
use crate::config::Settings;

fn cluster(settings: &Settings) -> LocalCluster {
    LocalCluster::new(&settings.data_dir, settings.pg_bindir.as_deref())
}

pub fn status(settings: &Settings) -> ClusterStatus {
    cluster(settings).status()
}

/// Stops the local cluster; false if it was not running.
pub fn stop(settings: &Settings) -> Result<bool> {
    cluster(settings).stop()
}
