//! `Tiers`: the tier table from `tiers.toml` (limits, prices, isolation), parsed strictly.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Failure;
use crate::excerpt::{excerpt, excerpt_n};
use crate::feature::Feature;
use crate::money::Money;
use crate::resource::Resource;

/// The tier table shipped with tenantctl, used when no other file is configured.
pub const BUILTIN: &str = include_str!("../tiers.toml");

/// How a tier's tenants are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Rows in the shared tenant database, behind forced row-level security.
    Pooled,
    /// A database and a login role of its own.
    Siloed,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Pooled => "pooled",
            Isolation::Siloed => "siloed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pooled" => Some(Isolation::Pooled),
            "siloed" => Some(Isolation::Siloed),
            _ => None,
        }
    }
}

crate::sql_text::text_sql!(Isolation, Isolation::parse);

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The largest quantity tenantctl accepts anywhere: one usage event, a limit (tiers.toml,
/// `quota set`), a `quota check` amount, and a tenant's monthly total of one resource. 10^12
/// keeps every product with a price (at most `MAX_PRICE`) inside a 64-bit count of cents.
pub const MAX_QUANTITY: i64 = 1_000_000_000_000;

/// The largest monthly price in a tier file: 1,000,000.00.
pub const MAX_PRICE: Money = Money::from_micros(1_000_000_000_000);

/// The largest overage price of one unit, 1,000.00: an overage line is then at most
/// 10^12 units x 10^9 micros = 10^17 cents, far inside an i64.
pub const MAX_UNIT_PRICE: Money = Money::from_micros(1_000_000_000);

/// Included quantity per resource. Every resource must be named: a tier that forgets one is
/// an error, not an unlimited resource.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub users: u64,
    pub storage_mb: u64,
    pub sandboxes: u64,
    pub compute_hours: u64,
    pub api_requests: u64,
}

impl Limits {
    /// (resource, limit) in `Resource::ALL` order.
    pub fn iter(&self) -> impl Iterator<Item = (Resource, u64)> + '_ {
        Resource::ALL.iter().map(|r| (*r, self.get(*r)))
    }

    pub fn get(&self, resource: Resource) -> u64 {
        match resource {
            Resource::Users => self.users,
            Resource::StorageMb => self.storage_mb,
            Resource::Sandboxes => self.sandboxes,
            Resource::ComputeHours => self.compute_hours,
            Resource::ApiRequests => self.api_requests,
        }
    }
}

/// Price of one unit past the limit; `None` makes the limit hard.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Overage {
    pub users: Option<Money>,
    pub storage_mb: Option<Money>,
    pub sandboxes: Option<Money>,
    pub compute_hours: Option<Money>,
    pub api_requests: Option<Money>,
}

impl Overage {
    /// The price of one unit of `resource` over its limit; `None`: a hard limit.
    pub fn price(&self, resource: Resource) -> Option<Money> {
        match resource {
            Resource::Users => self.users,
            Resource::StorageMb => self.storage_mb,
            Resource::Sandboxes => self.sandboxes,
            Resource::ComputeHours => self.compute_hours,
            Resource::ApiRequests => self.api_requests,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub isolation: Isolation,
    pub monthly_price: Money,
    pub limits: Limits,
    #[serde(default)]
    pub overage: Overage,
    /// The features the tier includes; absent: none.
    #[serde(default)]
    pub features: TierFeatures,
}

/// A tier's features: valid names (`Feature`), each at most once. Checked while parsing, so an
/// error names the line and the key like every other error of the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TierFeatures(pub Vec<Feature>);

impl TierFeatures {
    /// The names, in the file's order.
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(Feature::as_str).collect()
    }
}

impl<'de> Deserialize<'de> for TierFeatures {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Vec::<Feature>::deserialize(d)?;
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = list.iter().find(|f| !seen.insert(*f)) {
            return Err(serde::de::Error::custom(format!(
                "feature `{dup}` is listed twice"
            )));
        }
        Ok(TierFeatures(list))
    }
}

impl Tier {
    /// (resource, limit, hard) as the quota rows store them: a limit is hard when the tier
    /// has no overage price for it.
    pub fn quota_rows(&self) -> Vec<(Resource, u64, bool)> {
        self.limits
            .iter()
            .map(|(r, l)| (r, l, self.overage.price(r).is_none()))
            .collect()
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tiers {
    pub currency: String,
    pub tiers: BTreeMap<String, Tier>,
    /// What the infrastructure costs (`report margin`); absent: not declared.
    #[serde(default)]
    pub costs: Option<Costs>,
}

/// Infrastructure costs, `[costs]` in tiers.toml, for `report margin`: every key required.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Costs {
    /// A siloed tenant's own database (and role), per month.
    pub silo_per_month: Money,
    /// A pooled tenant's share of the shared database, per month.
    pub pooled_tenant_per_month: Money,
    /// One GB (1024 MB, as `storage_mb` counts MiB) of measured storage for a month.
    pub storage_gb_month: Money,
}

impl Costs {
    /// The fixed monthly cost of one tenant of `isolation`.
    pub fn fixed(&self, isolation: Isolation) -> Money {
        match isolation {
            Isolation::Siloed => self.silo_per_month,
            Isolation::Pooled => self.pooled_tenant_per_month,
        }
    }
}

impl Tiers {
    /// Reads and validates a tier file; every error names the file, the line and the key.
    pub fn load(path: &Path) -> Result<Tiers, Failure> {
        let text = crate::text_file::read(path, "tiers file", crate::text_file::SMALL_TOML)?;
        Tiers::parse(&text, &crate::text_file::shown(path))
    }

    /// The configured tier file, or the built-in table when none is configured.
    pub fn configured(path: Option<&Path>) -> Result<Tiers, Failure> {
        match path {
            Some(path) => Tiers::load(path),
            None => Ok(Tiers::builtin()),
        }
    }

    pub fn builtin() -> Tiers {
        Tiers::parse(BUILTIN, "built-in tiers.toml").expect("the shipped tiers.toml is valid")
    }

    pub fn parse(text: &str, origin: &str) -> Result<Tiers, Failure> {
        let tiers: Tiers = toml::from_str(text).map_err(|e| {
            let (line, key) = match e.span() {
                Some(span) => {
                    let line = text[..span.start].matches('\n').count() + 1;
                    let line_text = text.lines().nth(line - 1).unwrap_or("");
                    let key = line_text
                        .split_once('=')
                        .map(|(k, _)| k.trim().to_owned())
                        .filter(|k| !k.is_empty() && !k.starts_with('['));
                    (format!(", line {line}"), key)
                }
                None => (String::new(), None),
            };
            let key = key
                .map(|k| format!(", key `{}`", excerpt(&k)))
                .unwrap_or_default();
            Failure::BadInput(format!(
                "invalid tiers file {origin}{line}{key}: {}",
                excerpt_n(&e.message().trim().replace('\n', " "), 200)
            ))
        })?;
        let bad = |msg: String| Failure::BadInput(format!("invalid tiers file {origin}: {msg}"));
        if tiers.tiers.is_empty() {
            return Err(bad("it defines no tier; add a [tiers.NAME] table".into()));
        }
        let currency_ok =
            tiers.currency.len() == 3 && tiers.currency.bytes().all(|b| b.is_ascii_uppercase());
        if !currency_ok {
            return Err(bad(format!(
                "key `currency`: `{}` is not an ISO 4217 code such as \"USD\"",
                excerpt(&tiers.currency)
            )));
        }
        tiers.check_ranges(text, origin)?;
        for name in tiers.tiers.keys() {
            let valid = name.len() <= 32
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !valid {
                return Err(bad(format!(
                    "tier name `{}`: use lowercase letters, digits, '-' and '_', starting with a letter, at most 32",
                    excerpt(name)
                )));
            }
        }
        Ok(tiers)
    }

    /// Every limit at most `MAX_QUANTITY`, every monthly price at most `MAX_PRICE`, every
    /// overage price at most `MAX_UNIT_PRICE`: the error names the file, the line and the key,
    /// before anything is created.
    fn check_ranges(&self, text: &str, origin: &str) -> Result<(), Failure> {
        for (name, tier) in &self.tiers {
            // (table, key, within range, allowed, the value as written)
            let mut checks: Vec<(String, &str, bool, String, String)> = Vec::new();
            checks.push((
                format!("[tiers.{name}]"),
                "monthly_price",
                tier.monthly_price <= MAX_PRICE,
                format!("at most {MAX_PRICE}"),
                tier.monthly_price.to_string(),
            ));
            for (r, l) in tier.limits.iter() {
                checks.push((
                    format!("[tiers.{name}.limits]"),
                    r.as_str(),
                    l <= MAX_QUANTITY as u64,
                    format!("at most {MAX_QUANTITY}"),
                    l.to_string(),
                ));
            }
            for r in Resource::ALL {
                if let Some(p) = tier.overage.price(*r) {
                    checks.push((
                        format!("[tiers.{name}.overage]"),
                        r.as_str(),
                        p <= MAX_UNIT_PRICE,
                        format!("at most {MAX_UNIT_PRICE} per unit"),
                        p.to_string(),
                    ));
                }
            }
            out_of_range(checks, text, origin)?;
        }
        if let Some(costs) = &self.costs {
            let checks = [
                ("silo_per_month", costs.silo_per_month),
                ("pooled_tenant_per_month", costs.pooled_tenant_per_month),
                ("storage_gb_month", costs.storage_gb_month),
            ]
            .into_iter()
            .map(|(key, value)| {
                (
                    "[costs]".to_owned(),
                    key,
                    value <= MAX_PRICE,
                    format!("at most {MAX_PRICE}"),
                    value.to_string(),
                )
            })
            .collect();
            out_of_range(checks, text, origin)?;
        }
        Ok(())
    }

    /// The named tier, or a bad-input error listing the tiers there are.
    pub fn get(&self, name: &str) -> Result<&Tier, Failure> {
        self.tiers.get(name).ok_or_else(|| {
            Failure::BadInput(format!(
                "unknown tier `{}`: the tiers are {}",
                excerpt(name),
                self.names().join(", ")
            ))
        })
    }

    pub fn names(&self) -> Vec<&str> {
        self.tiers.keys().map(String::as_str).collect()
    }
}

/// The first of `checks` (table, key, within range, allowed, the value as written) out of range,
/// as an error naming the file, the line and the key.
fn out_of_range(
    checks: Vec<(String, &str, bool, String, String)>,
    text: &str,
    origin: &str,
) -> Result<(), Failure> {
    if let Some((table, key, _, allowed, shown)) = checks.into_iter().find(|c| !c.2) {
        let line = line_of(text, &table, key)
            .map(|l| format!(", line {l}"))
            .unwrap_or_default();
        return Err(Failure::BadInput(format!(
            "invalid tiers file {origin}{line}, key `{key}`: {} is out of range ({allowed})",
            crate::excerpt::excerpt(&shown)
        )));
    }
    Ok(())
}

/// The line (1-based) of `key = ...` inside the table headed `table`, if it is written that way.
fn line_of(text: &str, table: &str, key: &str) -> Option<usize> {
    let mut inside = false;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('[') {
            inside = t.replace(' ', "") == table;
        } else if inside && t.split_once('=').is_some_and(|(k, _)| k.trim() == key) {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_has_the_seed_limits() {
        let t = Tiers::builtin();
        let free = t.get("free").unwrap();
        assert_eq!(free.isolation, Isolation::Pooled);
        assert_eq!(
            free.limits.iter().collect::<Vec<_>>(),
            [
                (Resource::Users, 1),
                (Resource::StorageMb, 100),
                (Resource::Sandboxes, 1),
                (Resource::ComputeHours, 1),
                (Resource::ApiRequests, 1000)
            ]
        );
        assert_eq!(free.overage, Overage::default());
        let premium = t.get("premium").unwrap();
        assert_eq!(premium.isolation, Isolation::Siloed);
        assert_eq!(premium.monthly_price.to_string(), "499.00");
        assert_eq!(premium.limits.api_requests, 10_000);
        let enterprise = t.get("enterprise").unwrap();
        assert_eq!(enterprise.monthly_price.to_string(), "4999.00");
        assert_eq!(enterprise.limits.users, 50);
    }

    fn err(text: &str) -> String {
        Tiers::parse(text, "t.toml").unwrap_err().to_string()
    }

    const BASE: &str = "currency = \"USD\"\n[tiers.free]\nisolation = \"pooled\"\nmonthly_price = \"0\"\n[tiers.free.limits]\nusers = 1\nstorage_mb = 1\nsandboxes = 1\ncompute_hours = 1\napi_requests = 1\n";

    #[test]
    fn base_is_valid() {
        Tiers::parse(BASE, "t.toml").unwrap();
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = err(&BASE.replace("users = 1\n", "users = 1\nseats = 3\n"));
        assert!(e.contains("t.toml, line 7, key `seats`"), "{e}");
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn negative_limit_names_line_and_key() {
        let e = err(&BASE.replace("storage_mb = 1", "storage_mb = -5"));
        assert!(e.contains("line 7, key `storage_mb`"), "{e}");
    }

    #[test]
    fn missing_field_is_named() {
        let e = err(&BASE.replace("api_requests = 1\n", ""));
        assert!(e.contains("missing field `api_requests`"), "{e}");
        let e = err(&BASE.replace("isolation = \"pooled\"\n", ""));
        assert!(e.contains("missing field `isolation`"), "{e}");
    }

    #[test]
    fn float_price_and_bad_isolation_are_refused() {
        let e = err(&BASE.replace("monthly_price = \"0\"", "monthly_price = 4.99"));
        assert!(
            e.contains("key `monthly_price`") && e.contains("float"),
            "{e}"
        );
        let e = err(&BASE.replace("\"pooled\"", "\"shared\""));
        assert!(e.contains("key `isolation`") && e.contains("shared"), "{e}");
    }

    #[test]
    fn limits_and_prices_beyond_the_range_name_line_and_key() {
        let e = err(&BASE.replace("sandboxes = 1", "sandboxes = 18446744073709551615"));
        assert!(e.contains("line 8, key `sandboxes`"), "{e}");
        let e = err(&BASE.replace("sandboxes = 1", "sandboxes = 1000000000001"));
        assert!(
            e.contains("line 8, key `sandboxes`") && e.contains("at most 1000000000000"),
            "{e}"
        );
        Tiers::parse(
            &BASE.replace("sandboxes = 1", "sandboxes = 1000000000000"),
            "t",
        )
        .unwrap();
        let e = err(&BASE.replace("\"0\"", "\"1000000.01\""));
        assert!(e.contains("line 4, key `monthly_price`"), "{e}");
        let e = err(&format!(
            "{BASE}[tiers.free.overage]\nusers = \"1000.000001\"\n"
        ));
        assert!(
            e.contains("line 12, key `users`") && e.contains("1000.00"),
            "{e}"
        );
    }

    #[test]
    fn errors_are_one_line() {
        let e = err(&BASE.replace("users = 1\n", "users = 1\nseats = 3\n"));
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn hard_limits_follow_overage() {
        let t = Tiers::builtin();
        assert_eq!(
            t.get("free").unwrap().overage.price(Resource::ApiRequests),
            None
        );
        assert_eq!(
            t.get("premium")
                .unwrap()
                .overage
                .price(Resource::ApiRequests)
                .unwrap()
                .to_string(),
            "0.001"
        );
        assert_eq!(t.get("premium").unwrap().limits.get(Resource::Users), 5);
    }

    #[test]
    fn features_are_checked_with_line_and_key() {
        let with = |f: &str| {
            BASE.replace(
                "monthly_price = \"0\"\n",
                &format!("monthly_price = \"0\"\nfeatures = {f}\n"),
            )
        };
        let t = Tiers::parse(&with("[\"api-access\", \"sso\"]"), "t.toml").unwrap();
        let names: Vec<&str> = t
            .get("free")
            .unwrap()
            .features
            .0
            .iter()
            .map(|f| f.as_str())
            .collect();
        assert_eq!(names, ["api-access", "sso"]);
        assert!(Tiers::parse(BASE, "t.toml")
            .unwrap()
            .get("free")
            .unwrap()
            .features
            .0
            .is_empty());
        let e = err(&with("[\"Api\"]"));
        assert!(
            e.contains("t.toml, line 5, key `features`") && e.contains("invalid feature `Api`"),
            "{e}"
        );
        let e = err(&with("[\"sso\", \"sso\"]"));
        assert!(
            e.contains("line 5, key `features`") && e.contains("`sso` is listed twice"),
            "{e}"
        );
        let e = err(&with("\"sso\""));
        assert!(e.contains("line 5, key `features`"), "{e}");
        let e = err(&with("[1]"));
        assert!(e.contains("line 5, key `features`"), "{e}");
    }

    #[test]
    fn unknown_tier_lists_the_known_ones() {
        let e = Tiers::builtin().get("gold").unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown tier `gold`: the tiers are enterprise, free, premium"
        );
    }
}
