//! The command line, as clap derive types. Nothing here does work or reads the environment.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the operation failed (server unreachable, a step failed: re-run to resume); `doctor`:
     something needs attention
  2  bad input or usage (invalid slug, unknown tier, invalid tiers.toml or flags, no control
     database on a server: run `tenantctl init`); nothing changed
  3  refused by state (not found, invalid transition, another tier, in progress, over a hard
     limit, tenant not active, `bill` busy, a database or role tenantctl did not create;
     `quota check`/`features check`: no; `usage import`: some rows refused, the rest applied)";

/// The version and the commit it was built from (`git rev-parse`, by build.rs; "unknown" when
/// built outside a git checkout).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TENANTCTL_GIT_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "tenantctl",
    version = VERSION,
    about = "Control plane for the tenants of a multi-tenant SaaS on PostgreSQL",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Connection string of the control database, URL or key=value [env:
    /// TENANTCTL_DATABASE_URL, then the PG* variables]. Without one, tenantctl runs its own
    /// local cluster under the data directory.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Configuration file [env: TENANTCTL_CONFIG] [default: ./tenantctl.toml if present]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Where the local cluster and default buckets live [env: TENANTCTL_DATA_DIR] [default:
    /// /var/lib/tenantctl as root, else $XDG_DATA_HOME/tenantctl or ~/.local/share/tenantctl]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Tier table [env: TENANTCTL_TIERS] [default: the built-in tiers.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub tiers: Option<PathBuf>,
    /// Root directory of the tenants' buckets [env: TENANTCTL_STORAGE_ROOT]
    /// [default: DATA_DIR/buckets]
    #[arg(long, global = true, value_name = "DIR")]
    pub storage_root: Option<PathBuf>,
    /// Prefix of every database and role tenantctl creates [env: TENANTCTL_NAME_PREFIX]
    /// [default: tenant_]
    #[arg(long, global = true, value_name = "PREFIX")]
    pub name_prefix: Option<String>,
    /// Who is acting, for the audit log, up to 100 printable characters [env: TENANTCTL_ACTOR]
    /// [default: $USER, then $LOGNAME, then the account name of the effective uid, then uid:<euid>]
    #[arg(long, global = true, value_name = "NAME")]
    pub actor: Option<String>,
    /// Result format on stdout (csv: `bill` and `invoices`, one row per invoice line; `report`)
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// No progress or status lines on stderr (errors, warnings that may cost data or money,
    /// and a shown password still appear)
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    /// One row per invoice line (`bill`, `invoices`), per tier or tenant (`report`)
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a tenant: record, database, schema, owner, quotas, buckets, activate.
    /// Safe to re-run: it resumes where an interrupted run stopped.
    Provision(ProvisionArgs),
    /// List tenants
    List,
    /// Show one tenant: its database, role, buckets, quotas and features
    Show(ShowArgs),
    /// Move a tenant to another tier (tier-seeded limits follow, overrides stay); across
    /// isolation models its data moves too, into a new silo or into the pooled database
    SetTier(SetTierArgs),
    /// Move a siloed tenant's database to another server of the fleet (pg_dump | pg_restore,
    /// writes blocked meanwhile, verified before the switch). While it is moving: the same
    /// --to finishes the move, --to its old server (before the switch) cancels it
    Move(MoveArgs),
    /// Cut a tenant off in the data plane (siloed: no login, no connections, sessions ended;
    /// pooled: its rows hidden by the row-level policies)
    Suspend(SuspendArgs),
    /// Give a suspended tenant back exactly what it had
    Resume(SlugArg),
    /// Soft-delete a tenant (cut off, data kept for the retention period, slug reserved);
    /// with --purge, remove everything for good
    Deprovision(DeprovisionArgs),
    /// Bring back a deprovisioned tenant within its retention period
    Restore(SlugArg),
    /// Remove for good every deprovisioned tenant past its retention period (for cron)
    Purge(PurgeArgs),
    /// Mark the unmarked database and role of a tenant provisioned by a tenantctl without
    /// ownership marks as this control plane's. Run it only after checking they are the
    /// tenant's: tenantctl changes and drops only what carries its mark
    Adopt(SlugArg),
    /// The audit log: lifecycle, tier, quota and feature changes, oldest first
    Audit(AuditArgs),
    /// Apply pending tenant-schema migrations to every tenant database
    Migrate(MigrateArgs),
    /// Bill a period: one invoice per tenant billable in it, exactly once (safe to re-run, and
    /// to run twice at once)
    Bill(BillArgs),
    /// Invoices written by `bill`
    #[command(subcommand)]
    Invoices(InvoicesCommand),
    /// Revenue (MRR, ARR, ARPA and their movement) and gross margin, from the invoices `bill`
    /// wrote
    #[command(subcommand)]
    Report(ReportCommand),
    /// Quotas: limits against usage, overrides, and the check scripts branch on
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// Feature entitlements: the tier's features, per-tenant grants and revokes, and the check
    /// scripts and gateways branch on
    #[command(subcommand)]
    Features(FeaturesCommand),
    /// Metered events (one, or a CSV file) and measured levels (users, storage_mb)
    #[command(subcommand)]
    Usage(UsageCommand),
    /// Manage the local PostgreSQL cluster used when no database URL is configured
    #[command(subcommand)]
    Local(LocalCommand),
    /// Give a siloed tenant's login role a password (stored as a SCRAM verifier) and show a
    /// ready connection URL once; for a pooled tenant, say how its application connects
    Credentials(CredentialsArgs),
    /// Object storage: the access policy that confines an application to a tenant's buckets
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Back up a tenant's data into its `-backups` bucket (siloed: pg_dump of its database;
    /// pooled: its rows from one snapshot); --all for every active or suspended tenant
    Backup(BackupArgs),
    /// A tenant's backups: list them, prune old ones
    #[command(subcommand)]
    Backups(BackupsCommand),
    /// Replace a tenant's data with one of its backups (siloed: a fresh database swapped in
    /// after it verified; pooled: its rows replaced in one transaction). Journaled: a re-run
    /// after a crash finishes or undoes it
    RestoreBackup(RestoreBackupArgs),
    /// The fleet's PostgreSQL servers: add one, list them with their load, drain, undrain,
    /// set a capacity, remove an empty one
    #[command(subcommand)]
    Server(ServerCommand),
    /// Where an active tenant's application connects: server, host, port, database, role,
    /// sslmode and a URL (no password)
    Route(RouteArgs),
    /// The routing table of every active tenant: a PgBouncer `[databases]` section mapping each
    /// slug to its server and database, or JSON for a gateway
    Routes(RoutesArgs),
    /// Create the control database if it is missing and apply its migrations (needed once on
    /// an operator's server; idempotent)
    Init,
    /// Check the server: version, TLS, the admin role's privileges, the control schema, the
    /// tenants' databases (exit 1 when something needs attention)
    Doctor,
    /// The fleet as Prometheus text (OpenMetrics): tenants, quota use, the last billing run,
    /// databases behind on migrations, stuck or failed provisioning. For node_exporter's
    /// textfile collector, with --textfile
    Metrics(MetricsArgs),
    /// Print a shell completion script (needs no database)
    Completions(CompletionsArgs),
    /// Print the manual page, or write one page per subcommand to a directory (needs no
    /// database)
    Man(ManArgs),
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Register a PostgreSQL server in the fleet, after checking that tenantctl can reach it
    /// and that its role has LOGIN CREATEDB CREATEROLE. The URL is stored without a password:
    /// give none (it comes from ~/.pgpass, PGPASSFILE, or [servers.NAME] in tenantctl.toml)
    Add {
        /// The server's name: 2 to 40 of a-z, 0-9 and '-', starting with a letter
        name: String,
        /// Its connection string, URL or key=value, without a password; its database is the one
        /// tenantctl's admin connections use there [default database: postgres]
        url: String,
        /// How many siloed tenants it may hold, 0 to 1000000
        #[arg(
            long,
            value_name = "N",
            allow_negative_numbers = true,
            default_value_t = crate::ops::servers::DEFAULT_CAPACITY
        )]
        capacity: i64,
        /// A tier it takes (repeatable, or comma-separated: --tier premium,enterprise); only
        /// those then [default: every tier]. (`--tiers` is the tier table's path, for every
        /// command.)
        #[arg(long, value_name = "TIER", value_delimiter = ',')]
        tier: Vec<String>,
        /// It takes pooled tenants too (they get a pooled database there)
        #[arg(long)]
        pooled: bool,
        /// The region it is in, for `provision --region`: 2 to 32 of a-z, 0-9 and '-',
        /// starting with a letter, ending with a letter or digit (us-east-1) [default: none]
        #[arg(long, value_name = "REGION")]
        region: Option<String>,
    },
    /// Every server: tenants, databases, bytes, capacity left, and whether it is reachable
    /// (exit 1 if one is not)
    List,
    /// Place no new tenants on a server (its tenants stay where they are)
    Drain(ServerArg),
    /// Let a drained server take new tenants again
    Undrain(ServerArg),
    /// Change a server's capacity (how many siloed tenants it may hold) or region
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true).args(["capacity", "region"])))]
    Set {
        /// The server's name
        name: String,
        /// The new capacity, 0 to 1000000
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        capacity: Option<i64>,
        /// The region it is in (us-east-1); refused for a server in another region that holds
        /// tenants
        #[arg(long, value_name = "REGION")]
        region: Option<String>,
    },
    /// Remove a server that holds no tenant (deleted tenants count until purged); never the
    /// control database's own server
    Remove(ServerArg),
}

#[derive(Debug, Args)]
pub struct ServerArg {
    /// The server's name, as `server list` shows it
    pub name: String,
}

#[derive(Debug, Args)]
pub struct RouteArgs {
    /// The tenant's slug
    pub slug: String,
    /// Print only the connection URL (no password), for `$(tenantctl route SLUG --url)`
    #[arg(long)]
    pub url: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoutesFormat {
    /// A `[databases]` section for PgBouncer's ini file (or a file it `%include`s)
    Pgbouncer,
    /// One object per active tenant, for a gateway
    Json,
}

#[derive(Debug, Args)]
pub struct RoutesArgs {
    /// What to write [default: pgbouncer; json with --output json]
    #[arg(long, value_enum)]
    pub format: Option<RoutesFormat>,
    /// Write to this file atomically (a temporary file in the same directory, then a rename)
    /// instead of stdout
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Write the metrics to this file atomically (a temporary file in the same directory,
    /// then a rename) instead of stdout
    #[arg(long, value_name = "PATH")]
    pub textfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write tenantctl.1 and one tenantctl-SUBCOMMAND.1 page per subcommand here (created if
    /// missing) [default: print tenantctl.1 to stdout]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CredentialsArgs {
    /// The tenant's slug
    pub slug: String,
    /// Replace credentials given before
    #[arg(long)]
    pub rotate: bool,
    /// Write the connection URL to this file (mode 0600) instead of showing it
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    /// The password expires then (RFC 3339 or a date) [default: never]
    #[arg(long, value_name = "TIME")]
    pub valid_until: Option<String>,
}

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// The tenant's slug: a DNS label that becomes its subdomain
    #[arg(required_unless_present = "file")]
    pub slug: Option<String>,
    /// Tier from the tier table (built in: free, premium, enterprise)
    #[arg(long, value_name = "TIER", required_unless_present = "file")]
    pub tier: Option<String>,
    /// Provision every tenant of a CSV file (header `slug,tier,name,owner_email`), all rows
    /// checked before anything is created; passwords go to --password-file
    /// [default: FILE.passwords], one `slug,password` line per tenant
    #[arg(long, value_name = "CSV", conflicts_with_all = ["slug", "tier", "name", "owner_email", "owner_name", "features", "dry_run", "server"])]
    pub file: Option<PathBuf>,
    /// With --file: how many tenants are provisioned at once (at most 20) [default: 2 × CPU cores, at most 16]
    #[arg(long, value_name = "N", requires = "file")]
    pub concurrency: Option<usize>,
    /// Display name, up to 200 printable characters [default: the slug]
    #[arg(long, value_name = "TEXT")]
    pub name: Option<String>,
    /// Email of the tenant's first user, up to 254 characters [default: owner@SLUG.localhost]
    #[arg(long, value_name = "EMAIL")]
    pub owner_email: Option<String>,
    /// Full name of the tenant's first user, up to 200 printable characters [default: Owner]
    #[arg(long, value_name = "TEXT")]
    pub owner_name: Option<String>,
    /// Write the owner's temporary password to this file (mode 0600) instead of stderr
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    /// Grant a feature on top of the tier's (repeatable): 1 to 40 of a-z, 0-9, '-', '_',
    /// starting with a letter, ending with a letter or digit, no two separators in a row
    #[arg(long = "feature", value_name = "NAME")]
    pub features: Vec<String>,
    /// Print the steps that would run, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Place a new tenant on this server of the fleet instead of where the placement rule
    /// puts it (still refused if the server is draining, full or does not take the tier)
    #[arg(long, value_name = "NAME")]
    pub server: Option<String>,
    /// Place the new tenant only on a server of this region (us-east-1); refused (exit 3) when
    /// none of them can take it, or when --server names a server of another region. With
    /// --file: every row
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

#[derive(Debug, Args)]
pub struct SlugArg {
    /// The tenant's slug
    pub slug: String,
}

#[derive(Debug, Args)]
pub struct SuspendArgs {
    /// The tenant's slug
    pub slug: String,
    /// Why, for the audit log: up to 500 printable characters [default: none]
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeprovisionArgs {
    /// The tenant's slug
    pub slug: String,
    /// Remove the database, role, rows, usage, quotas and buckets for good
    #[arg(long)]
    pub purge: bool,
    /// Confirm --purge without a prompt (required when not on a terminal)
    #[arg(long)]
    pub yes: bool,
    /// Why, for the audit log: up to 500 printable characters [default: none]
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Purge the tenants whose retention period has ended (and finish interrupted purges)
    #[arg(long, required = true)]
    pub expired: bool,
    /// Confirm without a prompt (required when not on a terminal)
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this tenant's entries (purged tenants' too) [default: every tenant]
    pub slug: Option<String>,
    /// Only entries at or after this time: RFC 3339 or YYYY-MM-DD (UTC) [default: all]
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(subcommand)]
    pub command: Option<MigrateCommand>,
    /// How many databases to migrate at once, 1 to 64
    #[arg(
        long,
        value_name = "N",
        default_value_t = 4,
        allow_negative_numbers = true
    )]
    pub concurrency: i64,
    /// List what is pending per database, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Each tenant database's schema version, and which are behind
    Status,
}

#[derive(Debug, Args)]
pub struct BillArgs {
    /// The month to bill, YYYY-MM [default: the previous calendar month, UTC]
    #[arg(long, value_name = "YYYY-MM")]
    pub period: Option<String>,
    /// Print exactly what a run would write, write nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Per tier and in total: MRR, ARR, tenants paying, ARPA, the movement against the previous
    /// month (new, expansion, contraction, churned MRR) and overage as a share of revenue
    Revenue {
        /// The (last) month, YYYY-MM [default: the last billed month]
        #[arg(long, value_name = "YYYY-MM")]
        period: Option<String>,
        /// How many months, ending with the period (1 to 120)
        #[arg(
            long,
            value_name = "N",
            default_value_t = 1,
            allow_negative_numbers = true
        )]
        months: i64,
    },
    /// Gross margin per tenant, per tier and in total: the month's invoiced revenue against the
    /// infrastructure costs declared in the tiers file's [costs] (fixed per silo or pooled
    /// tenant, storage per GB-month of the latest measurement), prorated by billed days
    Margin {
        /// The month, YYYY-MM [default: the last billed month]
        #[arg(long, value_name = "YYYY-MM")]
        period: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum InvoicesCommand {
    /// Invoices, newest period first
    List {
        /// Only this month, YYYY-MM [default: every month]
        #[arg(long, value_name = "YYYY-MM")]
        period: Option<String>,
        /// Only this tenant's invoices [default: every tenant's]
        #[arg(long, value_name = "SLUG")]
        slug: Option<String>,
    },
    /// One invoice with its lines
    Show {
        /// The invoice's id (1 or more), as `invoices list` and `bill` print it
        #[arg(allow_negative_numbers = true)]
        id: i64,
    },
}

#[derive(Debug, Args)]
pub struct SetTierArgs {
    /// The tenant's slug
    pub slug: String,
    /// The new tier from the tier table (built in: free, premium, enterprise). While the
    /// tenant is moving: its new tier finishes the move, its old tier (before the switch)
    /// cancels it
    pub tier: String,
}

#[derive(Debug, Args)]
pub struct MoveArgs {
    /// The tenant's slug
    pub slug: String,
    /// The server to move it to, as `server list` shows it
    #[arg(long, value_name = "SERVER")]
    pub to: String,
    /// Confirms a move across regions: the target server's region
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The tenant's slug
    pub slug: String,
}

// Numbers (`quota set` LIMIT, `--amount`, `usage record` QUANTITY, `invoices show` ID,
// `--concurrency`) take `allow_negative_numbers` and no clap range: `-5` reaches tenantctl's own
// range check (`crate::number`) instead of being taken for a flag.
#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Each resource's limit, usage (measured now for users and storage_mb), what is left,
    /// and whether the limit is hard
    Show {
        /// The tenant's slug
        slug: String,
    },
    /// Override one limit for this tenant (audited)
    Set {
        /// The tenant's slug
        slug: String,
        /// The resource: one of users, storage_mb, sandboxes, compute_hours, api_requests
        resource: String,
        /// The new limit, in the resource's unit: 0 to 1000000000000
        #[arg(allow_negative_numbers = true)]
        limit: i64,
    },
    /// Return one limit (or all) to the tier's value (audited)
    Reset {
        /// The tenant's slug
        slug: String,
        /// The resource: one of users, storage_mb, sandboxes, compute_hours, api_requests [default: all five]
        resource: Option<String>,
    },
    /// Exit 0 if AMOUNT more fits, 3 if a hard limit (or the tenant's status) refuses it;
    /// past a soft limit it reports the overage and exits 0
    Check {
        /// The tenant's slug
        slug: String,
        /// The resource: one of users, storage_mb, sandboxes, compute_hours, api_requests
        resource: String,
        /// How many more units the caller wants to use, 1 to 1000000000000
        #[arg(
            long,
            value_name = "AMOUNT",
            default_value_t = 1,
            allow_negative_numbers = true
        )]
        amount: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum FeaturesCommand {
    /// The features a tenant has now, and per feature: from its tier, its override, entitled
    Show {
        /// The tenant's slug
        slug: String,
    },
    /// Grant a feature to one tenant, whatever its tier (audited; kept across tier changes)
    Grant {
        /// The tenant's slug
        slug: String,
        /// The feature's name, such as api-access or sso (any valid name, in a tier or not)
        feature: String,
    },
    /// Revoke a feature from one tenant, its tier's too (audited; kept across tier changes)
    Revoke {
        /// The tenant's slug
        slug: String,
        /// The feature's name, such as api-access or sso (any valid name, in a tier or not)
        feature: String,
    },
    /// Remove a grant or revoke: the tier decides again (audited)
    Reset {
        /// The tenant's slug
        slug: String,
        /// The feature's name, such as api-access or sso (any valid name, in a tier or not)
        feature: String,
    },
    /// Exit 0 if the tenant has the feature now, 3 if not (or it is not active)
    Check {
        /// The tenant's slug
        slug: String,
        /// The feature's name, such as api-access or sso (any valid name, in a tier or not)
        feature: String,
    },
    /// Make the tier's part of every tenant's features (or one's) follow the tier file as it is
    /// now, data plane included (audited when it changes); overrides stay
    Refresh {
        /// Only this tenant [default: every tenant]
        slug: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Record one metered event; the same --key counts once, forever. Past a hard limit it is
    /// refused (exit 3) and recorded nowhere
    Record {
        /// The tenant's slug
        slug: String,
        /// The metered resource: one of sandboxes, compute_hours, api_requests
        resource: String,
        /// How many units were used: 1 to 1000000000000
        #[arg(allow_negative_numbers = true)]
        quantity: i64,
        /// When it happened: RFC 3339 or YYYY-MM-DD (UTC) [default: now]
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Idempotency key, 1 to 200 characters [default: a new one, so the event always counts]
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
    },
    /// Import events from a CSV file (slug,resource,quantity,time,key) in one transaction;
    /// exit 3 if any row was refused (the others are applied)
    Import {
        /// A regular file (not `-`): UTF-8, a header row of those five names is optional; every
        /// column is required (time: RFC 3339 or YYYY-MM-DD; key: 1 to 200 characters)
        file: PathBuf,
    },
    /// Measure users and storage_mb for every active or suspended tenant (or one)
    Refresh {
        /// Only this tenant [default: every active or suspended tenant]
        slug: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Where the local cluster lives and whether it runs
    Status,
    /// Stop the local cluster (it starts again on the next command that needs it)
    Stop,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Every argument and option of every subcommand says what it is (`--help` shows no bare
    /// `<SLUG>`), and every subcommand says what it does.
    #[test]
    fn every_argument_has_a_help_line() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if cmd.get_about().is_none() && path != "tenantctl" {
                missing.push(path.to_owned());
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "tenantctl", &mut missing);
        assert!(missing.is_empty(), "no help line: {missing:?}");
    }
}

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Print the IAM-style policy (JSON) that confines an application to the tenant's
    /// `-uploads` and `-assets` buckets (siloed) or prefixes (pooled); s3 backend only
    Policy(SlugArg),
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The tenant's slug
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub slug: Option<String>,
    /// Every active or suspended tenant; one failure does not stop the others (exit 1 naming
    /// them)
    #[arg(long)]
    pub all: bool,
    /// Tenants backed up at once with --all (1 to 16)
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16), requires = "all")]
    pub concurrency: u16,
}

#[derive(Debug, Subcommand)]
pub enum BackupsCommand {
    /// A tenant's backups, oldest first
    List(SlugArg),
    /// Delete all but the newest N backups of a tenant
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The tenant's slug
    pub slug: String,
    /// How many of the newest backups to keep (at least 1)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,
}

#[derive(Debug, Args)]
pub struct RestoreBackupArgs {
    /// The tenant's slug
    pub slug: String,
    /// The backup's id, as `backups list` shows it
    pub backup_id: String,
    /// Confirm overwriting an active tenant's data (required for an active tenant)
    #[arg(long)]
    pub yes: bool,
}
