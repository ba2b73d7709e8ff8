//! `tenantctl provision <slug> --tier <tier>`.

use anyhow::Result;

use crate::cli::ProvisionArgs;
use crate::config::Settings;
use crate::ops::provision::{self, Args, Request};
use crate::ops::ControlPlane;
use crate::output::Output;
use crate::progress::TerminalReporter;

pub async fn run(
    settings: Settings,
    args: &ProvisionArgs,
    out: &Output,
    reporter: &TerminalReporter,
) -> Result<()> {
    // Everything is checked before anything (even the local cluster) is touched.
    let validate = |settings: &Settings| {
        Request::validate(
            settings,
            &Args {
                slug: &args.slug,
                tier: &args.tier,
                name: args.name.as_deref(),
                owner_email: args.owner_email.as_deref(),
                owner_name: args.owner_name.as_deref(),
                password_file: args.password_file.as_deref(),
                features: &args.features,
            },
        )
    };
    if args.dry_run {
        let out = out.printer::<provision::Plan>()?;
        let req = validate(&settings)?;
        let plane = ControlPlane::open_existing(settings.clone(), reporter).await?;
        let plan = provision::plan(&settings, plane.as_ref(), &req).await?;
        return out.print(&plan);
    }
    let out = out.printer::<provision::Outcome>()?;
    let req = validate(&settings)?;
    let plane = ControlPlane::open(settings, reporter).await?;
    let outcome = provision::provision(&plane, &req, reporter).await?;
    out.print(&outcome)
}
