//! `tenantctl provision <slug> --tier <tier>`.

use anyhow::Result;

use crate::cli::ProvisionArgs;
use crate::config::Settings;
use crate::ops::provision::{self, Args, Request};
use crate::ops::{bulk, Context, ControlPlane};
use crate::output::Output;
use crate::progress::TerminalReporter;

pub async fn run(
    settings: Settings,
    args: &ProvisionArgs,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    if let Some(file) = &args.file {
        // Every row is checked before anything (even the local cluster) is touched.
        let batch = bulk::Batch::read(
            &Context::from(&settings),
            file,
            args.password_file.as_deref(),
            args.concurrency,
            args.region.as_deref(),
        )?;
        let out = out.printer::<bulk::Summary>()?;
        let mut plane = ControlPlane::open(settings, reporter).await?;
        let summary = bulk::provision_all(&mut plane, &batch, reporter).await?;
        crate::output::bulk_failures(&summary);
        out.print(&summary)?;
        return bulk::result(&summary);
    }
    let (Some(slug), Some(tier)) = (&args.slug, &args.tier) else {
        unreachable!("clap requires a slug and --tier without --file");
    };
    // Everything is checked before anything (even the local cluster) is touched.
    let ctx = Context::from(&settings);
    let validate = || {
        Request::validate(
            &ctx,
            &Args {
                slug,
                tier,
                name: args.name.as_deref(),
                owner_email: args.owner_email.as_deref(),
                owner_name: args.owner_name.as_deref(),
                password_file: args.password_file.as_deref(),
                features: &args.features,
                server: args.server.as_deref(),
                region: args.region.as_deref(),
            },
        )
    };
    if args.dry_run {
        let out = out.printer::<provision::Plan>()?;
        let req = validate()?;
        let plane = ControlPlane::open_existing(settings.clone(), reporter).await?;
        let plan = provision::plan(&ctx, plane.as_ref(), &req).await?;
        return out.print(&plan);
    }
    let out = out.printer::<provision::Outcome>()?;
    let req = validate()?;
    let plane = ControlPlane::open(settings, reporter).await?;
    let outcome = provision::provision(&plane, &req, reporter).await?;
    out.print(&outcome)
}
