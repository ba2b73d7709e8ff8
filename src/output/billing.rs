//! Billing: a run of `bill`, invoices (`invoices list|show`), and their CSV export for
//! finance, one row per invoice line.

use super::{csv_record, fields, table, table_text, Render};
use crate::ops::billing::{InvoiceView, RunView};
use crate::words;

impl RunView {
    /// One sentence: what the run did or would do.
    fn summary(&self) -> String {
        if self.already_billed {
            return format!("{} was billed already; nothing to do", self.period);
        }
        format!(
            "{}{} for {}: total {} {} in {} ms ({})",
            if self.unfinished {
                "preview of an unfinished month (usage so far), nothing written: would bill "
            } else if self.dry_run {
                "dry run, nothing written: would bill "
            } else {
                "billed "
            },
            words::count_len(self.tenants_billed, "tenant"),
            self.period,
            self.total,
            self.currency,
            self.duration_ms,
            words::count_len(self.upgrade_hints, "upgrade hint")
        )
    }
}

impl Render for RunView {
    fn human(&self) -> String {
        let mut text = String::new();
        if !self.invoices.is_empty() {
            text.push_str(&self.invoices.human());
        }
        text.push_str(&self.summary());
        text.push('\n');
        text
    }

    const CSV: Option<fn(&Self) -> String> = Some(|run| invoices_csv(&run.invoices));

    fn csv_note(&self) -> Option<String> {
        Some(self.summary())
    }
}

impl Render for [InvoiceView] {
    fn human(&self) -> String {
        let mut t = table(&[
            "ID",
            "SLUG",
            "PERIOD",
            "TOTAL",
            "CURRENCY",
            "LINES",
            "UPGRADE HINT",
        ]);
        for i in self {
            t.add_row(vec![
                i.id.map(|n| n.to_string())
                    .unwrap_or_else(|| "-".to_owned()),
                i.slug.to_string(),
                i.period.to_string(),
                i.total.clone(),
                i.currency.clone(),
                i.lines.len().to_string(),
                hint_text(i),
            ]);
        }
        table_text(&t)
    }

    const CSV: Option<fn(&Self) -> String> = Some(invoices_csv);
}

impl Render for InvoiceView {
    fn human(&self) -> String {
        let i = self;
        let mut text = fields(vec![
            ("invoice", i.id.map(|n| n.to_string()).unwrap_or_default()),
            ("tenant", i.slug.to_string()),
            ("period", i.period.to_string()),
            ("total", format!("{} {}", i.total, i.currency)),
            ("upgrade hint", hint_text(i)),
        ]);
        let mut t = table(&[
            "KIND",
            "DESCRIPTION",
            "RESOURCE",
            "TIER",
            "QUANTITY",
            "UNIT PRICE",
            "AMOUNT",
        ]);
        for l in &i.lines {
            t.add_row(vec![
                l.kind.to_string(),
                l.description.clone(),
                l.resource
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                l.tier.to_string(),
                l.quantity.to_string(),
                l.unit_price.clone(),
                l.amount.clone(),
            ]);
        }
        text.push_str(&table_text(&t));
        text
    }

    const CSV: Option<fn(&Self) -> String> = Some(|i| invoices_csv(std::slice::from_ref(i)));
}

fn hint_text(i: &InvoiceView) -> String {
    match &i.upgrade_hint {
        Some(h) => format!(
            "{} would have cost {} (saving {})",
            h.tier, h.would_cost, h.saving
        ),
        None => String::new(),
    }
}

/// One row per invoice line, for finance. `included`, `month_usage` and `late_units` come
/// last (added later), so readers of the earlier columns by position are unaffected.
fn invoices_csv(list: &[InvoiceView]) -> String {
    let opt = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
    let mut out = String::from(
        "invoice_id,slug,period,currency,line_no,kind,description,resource,tier,quantity,unit_price,amount,usage_period,invoice_total,included,month_usage,late_units\n",
    );
    for i in list {
        for (n, l) in i.lines.iter().enumerate() {
            out.push_str(&csv_record(&[
                i.id.map(|n| n.to_string()).unwrap_or_default(),
                i.slug.to_string(),
                i.period.to_string(),
                i.currency.clone(),
                (n + 1).to_string(),
                l.kind.to_string(),
                l.description.clone(),
                l.resource
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                l.tier.to_string(),
                l.quantity.to_string(),
                l.unit_price.clone(),
                l.amount.clone(),
                l.usage_period
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                i.total.clone(),
                opt(l.included),
                opt(l.month_usage),
                opt(l.late_units),
            ]));
        }
    }
    out
}
