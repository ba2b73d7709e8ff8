//! Placement: which server a new tenant goes to. Pure: the caller reads the servers and their
//! load (`db::servers`, under the placement lock) and records the choice.
//!
//! - **Siloed**: among the servers that take the tier and are not draining, the one with the
//!   most capacity left (capacity counts siloed tenants); ties go to the first name in
//!   alphabetical order, so the choice is the same on every run.
//! - **Pooled**: among the pooled servers that take the tier and are not draining, the one whose
//!   pooled database holds the fewest tenants; ties by name too.
//! - **`--server NAME`** overrides the choice, and is refused like any candidate would be
//!   (draining, not taking the tier, full).
//! - **A region** (`provision --region`, and `set-tier`'s move keeping the tenant's region)
//!   narrows the candidates to that region's servers before either rule; a `--server` of
//!   another region (or of none) is refused (exit 3), and so is a region no server can take
//!   the tenant in: the tenant never lands outside the region asked for.

use crate::error::Failure;
use crate::region::Region;
use crate::server_name::ServerName;
use crate::tier::Isolation;

/// One server as placement sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub name: ServerName,
    /// How many siloed tenants it may hold.
    pub capacity: i64,
    /// The siloed tenants it holds (any status: a deleted silo's database is still there).
    pub silos: i64,
    /// The tenants in its pooled database.
    pub pooled_tenants: i64,
    /// `None`: every tier.
    pub tiers: Option<Vec<String>>,
    /// It has a pooled database for pooled tenants.
    pub pooled: bool,
    pub draining: bool,
    /// `None`: the server has no region (it is in no region a placement asks for).
    pub region: Option<Region>,
}

impl Candidate {
    pub fn capacity_left(&self) -> i64 {
        (self.capacity - self.silos).max(0)
    }

    pub fn takes_tier(&self, tier: &str) -> bool {
        self.tiers
            .as_ref()
            .is_none_or(|ts| ts.iter().any(|t| t == tier))
    }

    /// Why this server cannot take a new tenant of `tier`, if it cannot.
    pub fn refusal(&self, tier: &str, isolation: Isolation) -> Option<String> {
        let name = &self.name;
        if self.draining {
            return Some(format!("{name} is draining"));
        }
        if !self.takes_tier(tier) {
            return Some(format!("{name} does not take tier `{tier}`"));
        }
        match isolation {
            Isolation::Pooled if !self.pooled => Some(format!(
                "{name} takes no pooled tenants (not added with --pooled)"
            )),
            Isolation::Siloed if self.capacity_left() == 0 => Some(format!(
                "{name} is full ({} of {} siloed tenants)",
                self.silos, self.capacity
            )),
            _ => None,
        }
    }
}

/// The server a new tenant of `tier` (of `isolation`) goes to: `requested` if given and it can
/// take the tenant, else the rule of the module outline. Refused (exit 3) when no server can,
/// naming why each one cannot.
/// `region`: only a server of that region may take it.
pub fn choose<'a>(
    candidates: &'a [Candidate],
    tier: &str,
    isolation: Isolation,
    requested: Option<&ServerName>,
    region: Option<&Region>,
) -> Result<&'a Candidate, Failure> {
    let in_region = |c: &Candidate| region.is_none_or(|r| c.region.as_ref() == Some(r));
    if let Some(name) = requested {
        let c = candidates.iter().find(|c| &c.name == name).ok_or_else(|| {
            Failure::Refused(format!(
                "no server `{name}`; `tenantctl server list` shows the servers"
            ))
        })?;
        if let Some(r) = region.filter(|_| !in_region(c)) {
            return Err(Failure::Refused(format!(
                "server `{name}` is {}, not in region `{r}`: --server and --region disagree; nothing was created",
                match &c.region {
                    Some(other) => format!("in region `{other}`"),
                    None => "in no region".to_owned(),
                }
            )));
        }
        return match c.refusal(tier, isolation) {
            None => Ok(c),
            Some(why) => Err(Failure::Refused(format!(
                "cannot place a {isolation} tenant of tier `{tier}` on server {why}; nothing was created"
            ))),
        };
    }
    let candidates: Vec<&Candidate> = candidates.iter().filter(|c| in_region(c)).collect();
    if let (Some(r), true) = (region, candidates.is_empty()) {
        return Err(Failure::Refused(format!(
            "no server is in region `{r}`; give a server its region (`tenantctl server set NAME --region {r}`) or add one (`tenantctl server add NAME URL --region {r}`); nothing was created"
        )));
    }
    let open = candidates
        .iter()
        .copied()
        .filter(|c| c.refusal(tier, isolation).is_none());
    let best = match isolation {
        // Most capacity left first, then the name: `min_by` keeps the first of equals.
        Isolation::Siloed => open.min_by(|a, b| {
            b.capacity_left()
                .cmp(&a.capacity_left())
                .then_with(|| a.name.cmp(&b.name))
        }),
        Isolation::Pooled => open.min_by(|a, b| {
            a.pooled_tenants
                .cmp(&b.pooled_tenants)
                .then_with(|| a.name.cmp(&b.name))
        }),
    };
    best.ok_or_else(|| {
        let mut why: Vec<String> = candidates
            .iter()
            .filter_map(|c| c.refusal(tier, isolation))
            .collect();
        why.sort();
        Failure::Refused(format!(
            "no server{} can take a new {isolation} tenant of tier `{tier}`: {}; add a server \
             (`tenantctl server add`), undrain one or raise a capacity (`tenantctl server set \
             NAME --capacity N`); nothing was created",
            region
                .map(|r| format!(" in region `{r}`"))
                .unwrap_or_default(),
            if why.is_empty() {
                "no server is registered".to_owned()
            } else {
                why.join(", ")
            }
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, capacity: i64, silos: i64, pooled_tenants: i64) -> Candidate {
        Candidate {
            name: name.parse().unwrap(),
            capacity,
            silos,
            pooled_tenants,
            tiers: None,
            pooled: true,
            draining: false,
            region: None,
        }
    }

    fn pick(cs: &[Candidate], isolation: Isolation) -> String {
        choose(cs, "premium", isolation, None, None)
            .unwrap()
            .name
            .to_string()
    }

    #[test]
    fn siloed_goes_where_most_capacity_is_left_ties_by_name() {
        let cs = [c("main", 10, 5, 0), c("s2", 10, 2, 0), c("s3", 8, 0, 0)];
        assert_eq!(pick(&cs, Isolation::Siloed), "s2"); // 8 left ties with s3: s2 first
        let cs = [c("zeta", 10, 0, 0), c("alpha", 10, 0, 0)];
        assert_eq!(pick(&cs, Isolation::Siloed), "alpha");
    }

    #[test]
    fn pooled_goes_to_the_least_loaded_pooled_server() {
        let mut cs = [c("main", 1, 1, 7), c("s2", 10, 0, 3), c("s3", 10, 0, 3)];
        assert_eq!(pick(&cs, Isolation::Pooled), "s2"); // a full silo capacity does not matter
        cs[1].pooled = false;
        assert_eq!(pick(&cs, Isolation::Pooled), "s3");
    }

    #[test]
    fn draining_tiers_and_full_servers_are_passed_over() {
        let mut cs = [c("a1", 10, 0, 0), c("b1", 10, 9, 0), c("c1", 10, 10, 0)];
        cs[0].draining = true;
        assert_eq!(pick(&cs, Isolation::Siloed), "b1");
        cs[1].tiers = Some(vec!["free".into()]);
        let err = choose(&cs, "premium", Isolation::Siloed, None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a1 is draining"), "{err}");
        assert!(err.contains("b1 does not take tier `premium`"), "{err}");
        assert!(
            err.contains("c1 is full (10 of 10 siloed tenants)"),
            "{err}"
        );
        assert!(matches!(
            choose(&cs, "premium", Isolation::Siloed, None, None),
            Err(Failure::Refused(_))
        ));
        assert_eq!(
            choose(&cs, "free", Isolation::Siloed, None, None)
                .unwrap()
                .name
                .as_str(),
            "b1"
        );
    }

    #[test]
    fn a_requested_server_is_taken_or_refused_with_its_reason() {
        let mut cs = [c("main", 10, 0, 0), c("s2", 10, 9, 0)];
        let s2: ServerName = "s2".parse().unwrap();
        assert_eq!(
            choose(&cs, "premium", Isolation::Siloed, Some(&s2), None)
                .unwrap()
                .name,
            s2
        );
        cs[1].draining = true;
        let err = choose(&cs, "premium", Isolation::Siloed, Some(&s2), None).unwrap_err();
        assert!(err.to_string().contains("s2 is draining"), "{err}");
        let nope: ServerName = "nope".parse().unwrap();
        let err = choose(&cs, "premium", Isolation::Siloed, Some(&nope), None).unwrap_err();
        assert!(err.to_string().contains("no server `nope`"), "{err}");
    }

    #[test]
    fn a_region_narrows_the_candidates_and_a_server_elsewhere_is_refused() {
        let us: Region = "us-east-1".parse().unwrap();
        let eu: Region = "eu-west-2".parse().unwrap();
        let mut cs = [c("main", 10, 0, 0), c("s2", 10, 5, 9), c("s3", 10, 8, 1)];
        cs[1].region = Some(us.clone());
        cs[2].region = Some(us.clone());
        // main has the most capacity left and the fewest pooled tenants, but no region.
        let siloed = choose(&cs, "premium", Isolation::Siloed, None, Some(&us)).unwrap();
        assert_eq!(siloed.name.as_str(), "s2");
        let pooled = choose(&cs, "premium", Isolation::Pooled, None, Some(&us)).unwrap();
        assert_eq!(pooled.name.as_str(), "s3");
        assert_eq!(pick(&cs, Isolation::Siloed), "main");
        let err = choose(&cs, "premium", Isolation::Siloed, None, Some(&eu)).unwrap_err();
        assert!(matches!(err, Failure::Refused(_)));
        assert!(
            err.to_string()
                .contains("no server is in region `eu-west-2`"),
            "{err}"
        );
        let main: ServerName = "main".parse().unwrap();
        let err = choose(&cs, "premium", Isolation::Siloed, Some(&main), Some(&us)).unwrap_err();
        assert!(
            err.to_string()
                .contains("in no region, not in region `us-east-1`"),
            "{err}"
        );
        cs[1].draining = true;
        cs[2].capacity = 8;
        let err = choose(&cs, "premium", Isolation::Siloed, None, Some(&us)).unwrap_err();
        let err = err.to_string();
        assert!(
            err.contains("no server in region `us-east-1` can take"),
            "{err}"
        );
        assert!(
            err.contains("s2 is draining") && err.contains("s3 is full"),
            "{err}"
        );
        assert!(!err.contains("main"), "{err}");
    }
}
