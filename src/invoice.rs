//! Invoice arithmetic, pure and unit-tested: which days of a period a tenant is billed for and
//! on which tier, the base and overage lines, rounding, and the upgrade hint.
//!
//! Policy (docs/decisions.md says why):
//! - A day (UTC) is billed when the tenant was billable at any moment of it: every status but
//!   provisioning, deleting, deleted and purged is billable (active, suspended, and statuses
//!   this file does not know, such as an intermediate `resuming`). The day's tier is the last
//!   one it had that day while billable.
//! - The base line of a tier is its monthly price × billed days on it / days in the period.
//! - Overage: metered usage of the period past the *tier's* included limit (of the period's last
//!   tier), at that tier's unit price; resources without a price (hard limits) are never billed.
//! - Measured resources: `users` at the peak of the period's billed days, `storage_mb` in
//!   MB-months (the time-weighted level over the billed days / the days of the month), past the
//!   same tier's limit at its price; the level of a day without a measurement is the last one
//!   measured before it.
//! - Adjustment: late usage of an already billed month, priced at the tier that month was
//!   billed under: the overage of the new total minus the overage already billed, each rounded.
//! - Each line is rounded once, half up, to cents; the total is the sum of the lines.
//! - Every line carries what checks it: `quantity` is the billed units (days for a base line),
//!   and overage and adjustment lines carry the `included` limit, the month's usage and (for
//!   adjustments) the late units.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::period::Period;
use crate::resource::Resource;
use crate::tier::{Tier, Tiers};

/// Micros per cent.
const MICROS_PER_CENT: i128 = 10_000;

/// Whether a tenant's days are billed while it is in a status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Billable,
    NotBillable,
}

impl Standing {
    /// The standing of a status as the audit log spells it. Only the statuses in which a
    /// tenant is not yet or no longer usable are unbilled; any other, including one added
    /// after this was written (an intermediate `resuming` or `restoring`), bills like active,
    /// so a new status can never make days disappear from invoices.
    pub fn of_status(status: &str) -> Standing {
        match status {
            "provisioning" | "deleting" | "deleted" => Standing::NotBillable,
            _ => Standing::Billable,
        }
    }
}

/// One change in a tenant's history, from its audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub at: DateTime<Utc>,
    /// The new standing, if the change moved the tenant to a status (or purged it: not
    /// billable).
    pub status: Option<Standing>,
    /// The new tier.
    pub tier: Option<String>,
}

/// `a / b` rounded half up, for `a, b ≥ 0`.
fn div_half_up(a: i128, b: i128) -> i128 {
    (2 * a + b) / (2 * b)
}

/// Micros (possibly fractional, as `num / den`) to cents, half up.
pub fn cents(num_micros: i128, den: i128) -> i64 {
    div_half_up(num_micros, den * MICROS_PER_CENT) as i64
}

/// "257.55" from 25755 cents.
pub fn format_cents(c: i64) -> String {
    let sign = if c < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:02}",
        c.unsigned_abs() / 100,
        c.unsigned_abs() % 100
    )
}

/// The billed days of `period` and the tier of each, in order.
pub fn billed_days(history: &[Change], period: Period) -> Vec<(NaiveDate, String)> {
    // Billable segments [from, to) with their tier.
    let mut segments: Vec<(DateTime<Utc>, DateTime<Utc>, String)> = Vec::new();
    let (mut status, mut tier): (Option<Standing>, Option<String>) = (None, None);
    let mut since: Option<DateTime<Utc>> = None;
    let end_of_time = period.next_first_day().and_time(NaiveTime::MIN).and_utc();
    let billable = |s: Option<Standing>| s == Some(Standing::Billable);
    for c in history {
        if let (Some(from), true, Some(t)) = (since, billable(status), tier.as_ref()) {
            if c.at > from {
                segments.push((from, c.at, t.clone()));
            }
        }
        if let Some(s) = c.status {
            status = Some(s);
        }
        if let Some(t) = &c.tier {
            tier = Some(t.clone());
        }
        since = Some(c.at);
    }
    if let (Some(from), true, Some(t)) = (since, billable(status), tier) {
        if end_of_time > from {
            segments.push((from, end_of_time, t));
        }
    }
    let mut days = Vec::new();
    let mut day = period.first_day();
    while day < period.next_first_day() {
        let (d0, d1) = (
            day.and_time(NaiveTime::MIN).and_utc(),
            (day + chrono::Days::new(1))
                .and_time(NaiveTime::MIN)
                .and_utc(),
        );
        if let Some(seg) = segments.iter().rev().find(|(a, b, _)| *a < d1 && *b > d0) {
            days.push((day, seg.2.clone()));
        }
        day = day + chrono::Days::new(1);
    }
    days
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LineKind {
    Base,
    Overage,
    Adjustment,
}

impl LineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::Base => "base",
            LineKind::Overage => "overage",
            LineKind::Adjustment => "adjustment",
        }
    }
}

/// One invoice line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub kind: LineKind,
    pub description: String,
    /// `None` for a base line.
    pub resource: Option<Resource>,
    pub tier: String,
    /// The billed units: days (base), units over the limit (overage), units newly over the
    /// limit (adjustment).
    pub quantity: i64,
    /// The monthly price (base) or the price of one unit.
    pub unit_price: Money,
    pub amount_cents: i64,
    /// The month whose usage an overage or adjustment line bills.
    pub usage_period: Option<Period>,
    /// The tier's included limit (overage and adjustment lines).
    pub included: Option<i64>,
    /// The month's usage the line accounts for: all of it (overage), its total now, late
    /// units included (adjustment).
    pub month_usage: Option<i64>,
    /// Units recorded after the month's invoice (adjustment lines).
    pub late_units: Option<i64>,
}

/// Base lines, one per tier the tenant had in the period, in order of first use.
pub fn base_lines(days: &[(NaiveDate, String)], tiers: &Tiers, period: Period) -> Vec<Line> {
    let mut per_tier: Vec<(String, i64)> = Vec::new();
    for (_, t) in days {
        match per_tier.iter_mut().find(|(name, _)| name == t) {
            Some((_, n)) => *n += 1,
            None => per_tier.push((t.clone(), 1)),
        }
    }
    per_tier
        .into_iter()
        .filter_map(|(name, n)| {
            let tier = tiers.tiers.get(&name)?;
            let price = tier.monthly_price;
            Some(Line {
                kind: LineKind::Base,
                description: format!("{name} base price, {n}/{} days of {period}", period.days()),
                resource: None,
                tier: name,
                quantity: n,
                unit_price: price,
                amount_cents: cents(
                    i128::from(price.micros()) * i128::from(n),
                    i128::from(period.days()),
                ),
                usage_period: None,
                included: None,
                month_usage: None,
                late_units: None,
            })
        })
        .collect()
}

/// The overage of `used` units against `tier`'s included limit, in cents; `None` for a hard
/// limit (never billed).
pub fn overage_cents(tier: &Tier, resource: Resource, used: i64) -> Option<(i64, i64)> {
    let price = tier.overage.price(resource)?;
    let included = i64::try_from(tier.limits.get(resource)).unwrap_or(i64::MAX);
    let over = (used - included).max(0);
    Some((
        over,
        cents(i128::from(price.micros()) * i128::from(over), 1),
    ))
}

/// The overage line of one resource for the billed period, if any units are over.
pub fn overage_line(
    tier_name: &str,
    tier: &Tier,
    resource: Resource,
    used: i64,
    period: Period,
) -> Option<Line> {
    let (over, amount) = overage_cents(tier, resource, used)?;
    if over == 0 {
        return None;
    }
    let included = included_of(tier, resource);
    Some(Line {
        kind: LineKind::Overage,
        description: format!(
            "{resource} over the {tier_name} limit of {included} in {period}: {used} used, {over} over × {}",
            tier.overage.price(resource)?
        ),
        resource: Some(resource),
        tier: tier_name.to_owned(),
        quantity: over,
        unit_price: tier.overage.price(resource)?,
        amount_cents: amount,
        usage_period: Some(period),
        included: Some(included),
        month_usage: Some(used),
        late_units: None,
    })
}

fn included_of(tier: &Tier, resource: Resource) -> i64 {
    i64::try_from(tier.limits.get(resource)).unwrap_or(i64::MAX)
}

/// An adjustment for usage of an earlier, already billed period that arrived after its
/// invoice: the overage of the new total minus the overage of what was billed, each rounded
/// once. `quantity` is the units newly over the limit; no line when that costs nothing
/// (late units that still fit under the limit).
pub fn adjustment_line(
    tier_name: &str,
    tier: &Tier,
    resource: Resource,
    billed: i64,
    now: i64,
    usage_period: Period,
) -> Option<Line> {
    let late = now - billed;
    if late <= 0 {
        return None;
    }
    let (over_before, before) = overage_cents(tier, resource, billed)?;
    let (over_after, after) = overage_cents(tier, resource, now)?;
    if after == before {
        return None;
    }
    let price = tier.overage.price(resource)?;
    let included = included_of(tier, resource);
    Some(Line {
        kind: LineKind::Adjustment,
        description: format!(
            "{resource} of {usage_period}: {late} units recorded after its invoice; {now} used \
             against the {tier_name} limit of {included}: {over_after} over × {price} = {} \
             minus {} billed for {over_before} over",
            format_cents(after),
            format_cents(before)
        ),
        resource: Some(resource),
        tier: tier_name.to_owned(),
        quantity: over_after - over_before,
        unit_price: price,
        amount_cents: after - before,
        usage_period: Some(usage_period),
        included: Some(included),
        month_usage: Some(now),
        late_units: Some(late),
    })
}

/// One day's row of a measured resource's history (control `measurements`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeasuredDay {
    pub day: NaiveDate,
    /// The highest level measured that day.
    pub peak: i64,
    pub first_at: DateTime<Utc>,
    pub last_value: i64,
    pub last_at: DateTime<Utc>,
    /// The integral of the level from the first to the last measurement of the day, in
    /// unit-seconds.
    pub area: i64,
}

/// Walks the period's days with the level carried forward: for each billed day (in `billed`),
/// its peak and its integral in unit-seconds. A day without a measurement has the last level
/// measured before it all day; before a tenant's first measurement nothing is known, and
/// nothing is counted (a guess is never billed).
fn measured_days(
    billed: &[NaiveDate],
    carried_in: Option<i64>,
    rows: &[MeasuredDay],
    period: Period,
) -> Vec<(i64, i128)> {
    let mut out = Vec::new();
    let mut carry = carried_in;
    let mut day = period.first_day();
    while day < period.next_first_day() {
        let d0 = day.and_time(NaiveTime::MIN).and_utc();
        let d1 = (day + chrono::Days::new(1))
            .and_time(NaiveTime::MIN)
            .and_utc();
        let secs = |a: DateTime<Utc>, b: DateTime<Utc>| i128::from((b - a).num_seconds().max(0));
        let (peak, area) = match rows.iter().find(|r| r.day == day) {
            Some(r) => {
                let before = carry.map_or(0, |c| i128::from(c) * secs(d0, r.first_at));
                let after = i128::from(r.last_value) * secs(r.last_at, d1);
                (
                    r.peak.max(carry.unwrap_or(0)),
                    before + i128::from(r.area) + after,
                )
            }
            None => (
                carry.unwrap_or(0),
                carry.map_or(0, |c| i128::from(c) * secs(d0, d1)),
            ),
        };
        if billed.contains(&day) {
            out.push((peak, area));
        }
        if let Some(r) = rows.iter().find(|r| r.day == day) {
            carry = Some(r.last_value);
        }
        day = day + chrono::Days::new(1);
    }
    out
}

/// The highest level of the period's billed days (`users`: billed at the month's peak).
pub fn measured_peak(
    billed: &[NaiveDate],
    carried_in: Option<i64>,
    rows: &[MeasuredDay],
    period: Period,
) -> i64 {
    measured_days(billed, carried_in, rows, period)
        .iter()
        .map(|d| d.0)
        .max()
        .unwrap_or(0)
}

/// Unit-months over the period's billed days (`storage_mb`: MB-months): the time-weighted
/// level summed over the billed days, divided by the whole month, rounded half up to a whole
/// unit. A tenant billed all month at a constant 1,500 MB has 1,500 MB-months; one billed for
/// 10 of 30 days at that level has 500, as its base price is 10/30 of the month's.
pub fn measured_unit_months(
    billed: &[NaiveDate],
    carried_in: Option<i64>,
    rows: &[MeasuredDay],
    period: Period,
) -> i64 {
    let total: i128 = measured_days(billed, carried_in, rows, period)
        .iter()
        .map(|d| d.1)
        .sum();
    let month_secs = i128::from(period.days()) * 86_400;
    i64::try_from(div_half_up(total, month_secs)).unwrap_or(i64::MAX)
}

/// The overage line of a measured resource: `quantity` (the peak for `users`, MB-months for
/// `storage_mb`) past the tier's included limit, like a metered overage line, with a
/// description that says which quantity was billed.
pub fn measured_overage_line(
    tier_name: &str,
    tier: &Tier,
    resource: Resource,
    quantity: i64,
    period: Period,
) -> Option<Line> {
    let mut line = overage_line(tier_name, tier, resource, quantity, period)?;
    let price = tier.overage.price(resource)?;
    let included = included_of(tier, resource);
    let what = match resource {
        Resource::Users => format!("peak of {quantity} users"),
        _ => format!("{quantity} {resource}-months (the month's average)"),
    };
    line.description = format!(
        "{resource} over the {tier_name} limit of {included} in {period}: {what}, {} over × {price}",
        line.quantity
    );
    Some(line)
}

/// A cheaper tier for the same days and usage, if there is one. Stored as JSON with the
/// invoice, and read back as this type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeHint {
    pub tier: String,
    /// What the same days and usage would have cost on it.
    pub would_cost: String,
    pub saving: String,
}

/// The next tier up in price from `current`: would it have cost less than `period_cents`, what
/// the period's own days and usage cost (base and overage lines: adjustments for earlier months
/// are not part of the comparison)? A tier whose hard limit the usage passes is no candidate.
pub fn upgrade_hint(
    tiers: &Tiers,
    current: &str,
    days: i64,
    period: Period,
    usage: &BTreeMap<Resource, i64>,
    period_cents: i64,
) -> Option<UpgradeHint> {
    let current_price = tiers.tiers.get(current)?.monthly_price;
    let (name, next) = tiers
        .tiers
        .iter()
        .filter(|(_, t)| t.monthly_price > current_price)
        .min_by_key(|(_, t)| t.monthly_price)?;
    let mut cost = cents(
        i128::from(next.monthly_price.micros()) * i128::from(days),
        i128::from(period.days()),
    );
    for (resource, used) in usage {
        match overage_cents(next, *resource, *used) {
            Some((_, c)) => cost += c,
            None if *used > i64::try_from(next.limits.get(*resource)).unwrap_or(i64::MAX) => {
                return None
            }
            None => {}
        }
    }
    (cost < period_cents).then(|| UpgradeHint {
        tier: name.clone(),
        would_cost: format_cents(cost),
        saving: format_cents(period_cents - cost),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        crate::period::parse_time(s).unwrap()
    }

    fn change(s: &str, status: Option<&str>, tier: Option<&str>) -> Change {
        Change {
            at: at(s),
            status: status.map(Standing::of_status),
            tier: tier.map(str::to_owned),
        }
    }

    #[test]
    fn rounding_is_half_up_once() {
        assert_eq!(cents(4_999_000_000 * 17, 30), 283_277); // 2832.7666.. -> 2832.77
        assert_eq!(cents(5_000, 1), 1); // 0.005 -> 0.01
        assert_eq!(cents(4_999, 1), 0);
        assert_eq!(format_cents(25755), "257.55");
        assert_eq!(format_cents(5), "0.05");
    }

    #[test]
    fn created_mid_month_and_deprovisioned_mid_month() {
        let nov: Period = "2026-11".parse().unwrap();
        let created = [
            change(
                "2026-11-16T09:00:00Z",
                Some("provisioning"),
                Some("premium"),
            ),
            change("2026-11-16T09:00:01Z", Some("active"), Some("premium")),
        ];
        let days = billed_days(&created, nov);
        assert_eq!(days.len(), 15);
        assert_eq!(days[0].0.to_string(), "2026-11-16");
        let deleted = [
            change("2026-10-01T00:00:00Z", Some("active"), Some("premium")),
            change("2026-11-10T12:00:00Z", Some("deleted"), None),
        ];
        let days = billed_days(&deleted, nov);
        assert_eq!(days.len(), 10, "1st to 10th, the day of deletion included");
        // Suspended days count; a restore counts again from its day.
        let restored = [
            change("2026-10-01T00:00:00Z", Some("active"), Some("free")),
            change("2026-11-05T00:00:00Z", Some("suspended"), None),
            change("2026-11-10T00:00:00Z", Some("deleted"), None),
            change("2026-11-20T08:00:00Z", Some("active"), None),
        ];
        assert_eq!(billed_days(&restored, nov).len(), 9 + 11);
    }

    #[test]
    fn unknown_statuses_bill_like_active_and_only_closed_ones_do_not() {
        let nov: Period = "2026-11".parse().unwrap();
        // A later intermediate status (`resuming`, `restoring`, ...) must not drop days.
        let history = [
            change("2026-10-01T00:00:00Z", Some("active"), Some("premium")),
            change("2026-11-05T00:00:00Z", Some("suspending"), None),
            change("2026-11-05T00:00:01Z", Some("suspended"), None),
            change("2026-11-10T00:00:00Z", Some("deprovisioning"), None),
            change("2026-11-10T00:00:01Z", Some("deleted"), None),
            change("2026-11-20T08:00:00Z", Some("restoring"), None),
            change("2026-11-20T08:00:01Z", Some("active"), None),
        ];
        assert_eq!(billed_days(&history, nov).len(), 10 + 11);
        for s in ["provisioning", "deleting", "deleted"] {
            assert_eq!(Standing::of_status(s), Standing::NotBillable, "{s}");
        }
    }

    #[test]
    fn a_tier_change_bills_each_tier_for_its_days() {
        let nov: Period = "2026-11".parse().unwrap();
        let history = [
            change("2026-10-01T00:00:00Z", Some("active"), Some("premium")),
            change("2026-11-11T15:00:00Z", None, Some("enterprise")),
        ];
        let days = billed_days(&history, nov);
        let lines = base_lines(&days, &Tiers::builtin(), nov);
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].tier.as_str(), lines[0].quantity), ("premium", 10));
        assert_eq!(
            (lines[1].tier.as_str(), lines[1].quantity),
            ("enterprise", 20)
        );
        assert_eq!(lines[0].amount_cents, 16_633); // 499 * 10/30 = 166.333.. -> 166.33
        assert_eq!(lines[1].amount_cents, 333_267); // 4999 * 20/30 = 3332.666.. -> 3332.67
    }

    #[test]
    fn overage_only_past_the_limit_and_never_on_hard_limits() {
        let t = Tiers::builtin();
        let nov: Period = "2026-11".parse().unwrap();
        let premium = t.get("premium").unwrap();
        let line = overage_line("premium", premium, Resource::ApiRequests, 12_345, nov).unwrap();
        assert_eq!((line.quantity, line.amount_cents), (2_345, 235)); // 2345 * 0.001 = 2.345 -> 2.35
        assert!(overage_line("premium", premium, Resource::ApiRequests, 10_000, nov).is_none());
        assert!(overage_line(
            "free",
            t.get("free").unwrap(),
            Resource::ApiRequests,
            5_000,
            nov
        )
        .is_none());
        let adj = adjustment_line(
            "premium",
            premium,
            Resource::ApiRequests,
            12_345,
            13_345,
            nov,
        )
        .unwrap();
        assert_eq!((adj.quantity, adj.amount_cents), (1_000, 100)); // 3.345 -> 3.35 minus 2.35
        assert_eq!(
            (adj.included, adj.month_usage, adj.late_units),
            (Some(10_000), Some(13_345), Some(1_000))
        );
        // Late units partly under the limit: quantity is the units billed, not the late units.
        let adj = adjustment_line("premium", premium, Resource::ComputeHours, 0, 30, nov).unwrap();
        assert_eq!((adj.quantity, adj.amount_cents), (20, 4_000)); // (30 - 10) * 2.00
        assert_eq!(adj.late_units, Some(30));
        // Two separately rounded amounts: 2,346 over is 2.346 -> 2.35, as 2,345 was.
        assert!(
            adjustment_line(
                "premium",
                premium,
                Resource::ApiRequests,
                12_345,
                12_346,
                nov
            )
            .is_none(),
            "no line when the rounded amounts are equal"
        );
        assert!(
            adjustment_line("premium", premium, Resource::ApiRequests, 100, 200, nov).is_none(),
            "still within the limit"
        );
    }

    #[test]
    fn upgrade_hint_when_the_next_tier_is_cheaper() {
        let t = Tiers::builtin();
        let nov: Period = "2026-11".parse().unwrap();
        let usage: BTreeMap<Resource, i64> = [(Resource::ComputeHours, 2_000)].into();
        // premium: 499 + (2000-10)*2.00 = 4479.00; enterprise: 4999 + (2000-100)*1.50 = 7849
        assert!(upgrade_hint(&t, "premium", 30, nov, &usage, 447_900).is_none());
        let usage: BTreeMap<Resource, i64> = [(Resource::Sandboxes, 300)].into();
        // premium: 499 + 295*25 = 7874; enterprise: 4999 + 280*20 = 10599: no
        assert!(upgrade_hint(&t, "premium", 30, nov, &usage, 787_400).is_none());
        let usage: BTreeMap<Resource, i64> = [(Resource::ApiRequests, 6_000_000)].into();
        // premium: 499 + 5,990,000*0.001 = 6489; enterprise: 4999 + 5,900,000*0.0005 = 7949: no
        assert!(upgrade_hint(&t, "premium", 30, nov, &usage, 648_900).is_none());
        let usage: BTreeMap<Resource, i64> = [(Resource::StorageMb, 200_000)].into();
        // premium: 499 + 199000*0.05 = 10449; enterprise: 4999 + 190000*0.03 = 10699: no
        assert!(upgrade_hint(&t, "premium", 30, nov, &usage, 1_044_900).is_none());
        // The free tier's next is premium; a free total can never pass it (no overage), but a
        // made-up total can.
        let hint = upgrade_hint(&t, "free", 30, nov, &BTreeMap::new(), 60_000).unwrap();
        assert_eq!(
            (
                hint.tier.as_str(),
                hint.would_cost.as_str(),
                hint.saving.as_str()
            ),
            ("premium", "499.00", "101.00")
        );
        let hint = upgrade_hint(
            &t,
            "premium",
            30,
            nov,
            &[(Resource::ComputeHours, 3_000)].into(),
            2_000_000,
        )
        .unwrap();
        assert_eq!(hint.tier, "enterprise");
    }

    fn measured(day: &str, peak: i64, first: &str, last: (i64, &str), area: i64) -> MeasuredDay {
        MeasuredDay {
            day: day.parse().unwrap(),
            peak,
            first_at: at(first),
            last_value: last.0,
            last_at: at(last.1),
            area,
        }
    }

    #[test]
    fn measured_levels_carry_forward_and_count_only_billed_days() {
        let nov: Period = "2026-11".parse().unwrap();
        let all: Vec<NaiveDate> = (1..=30)
            .map(|d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap())
            .collect();
        // Nothing measured, nothing carried: nothing is counted.
        assert_eq!(measured_peak(&all, None, &[], nov), 0);
        assert_eq!(measured_unit_months(&all, None, &[], nov), 0);
        // A level carried in from October holds all month.
        assert_eq!(measured_peak(&all, Some(7), &[], nov), 7);
        assert_eq!(measured_unit_months(&all, Some(1500), &[], nov), 1500);
        // First measured at noon on the 16th: the 15½ days before are unknown, not guessed.
        let rows = [measured(
            "2026-11-16",
            3000,
            "2026-11-16T12:00:00Z",
            (3000, "2026-11-16T12:00:00Z"),
            0,
        )];
        // 3000 × 14.5 days / 30 = 1450.
        assert_eq!(measured_unit_months(&all, None, &rows, nov), 1450);
        // Carried 1,000 until noon: 1000 × 15.5 + 3000 × 14.5 = 59,000 / 30 = 1966.67 → 1967.
        assert_eq!(measured_unit_months(&all, Some(1000), &rows, nov), 1967);
        // Only billed days count: the 1st to the 10th at the carried level, the peak on the
        // 16th is not billed.
        let first_ten = &all[..10];
        assert_eq!(measured_peak(first_ten, Some(1000), &rows, nov), 1000);
        assert_eq!(measured_unit_months(first_ten, Some(1200), &rows, nov), 400);
        // Within a day: 100 from 00:00 to 06:00 (area), then 400 to midnight; the peak of 900
        // was measured between.
        let day = [measured(
            "2026-11-01",
            900,
            "2026-11-01T00:00:00Z",
            (400, "2026-11-01T06:00:00Z"),
            100 * 6 * 3600,
        )];
        // (100 × 6 + 400 × 18) / 24 = 325 for the day, then 400 for 29 days:
        // (325 + 400 × 29) / 30 = 397.5 → 398 (half up).
        assert_eq!(measured_unit_months(&all, None, &day, nov), 398);
        assert_eq!(measured_peak(&all, None, &day, nov), 900);
    }
}
