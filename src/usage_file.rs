//! `UsageRow` and the parsing of a usage import file: CSV with the columns
//! `slug,resource,quantity,time,key` (a header row of exactly those names is optional).
//! Every malformed row is reported with its line number; one bad row rejects the file.

use chrono::{DateTime, Utc};

use crate::error::Failure;
use crate::excerpt::excerpt;
use crate::period::parse_time;
use crate::resource::Resource;
use crate::slug::Slug;
use crate::tier::MAX_QUANTITY;

pub const HEADER: [&str; 5] = ["slug", "resource", "quantity", "time", "key"];

/// One valid row of a usage file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub line: i64,
    pub slug: Slug,
    pub resource: Resource,
    pub quantity: i64,
    pub at: DateTime<Utc>,
    pub key: String,
}

/// An idempotency key: see `field::KEY_MAX` and `field::check`.
pub fn check_key(key: &str) -> Result<(), String> {
    match crate::field::problem(key, crate::field::KEY_MAX) {
        None => Ok(()),
        Some(why) => Err(format!(
            "key `{}`: {why}; a key is {}",
            excerpt(key),
            crate::field::rule(crate::field::KEY_MAX)
        )),
    }
}

fn parse_row(line: i64, fields: &[&str]) -> Result<UsageRow, String> {
    if fields.len() != 5 {
        return Err(format!(
            "{} fields, expected 5 ({})",
            fields.len(),
            HEADER.join(",")
        ));
    }
    let slug: Slug = fields[0].parse().map_err(|e: Failure| e.to_string())?;
    let resource = fields[1]
        .parse::<Resource>()
        .and_then(Resource::check_metered)
        .map_err(|e| e.to_string())?;
    let quantity: i64 = fields[2]
        .parse()
        .ok()
        .filter(|q| (1..=MAX_QUANTITY).contains(q))
        .ok_or_else(|| {
            format!(
                "quantity `{}` is not a positive integer (1 to {MAX_QUANTITY})",
                excerpt(fields[2])
            )
        })?;
    let at = parse_time(fields[3])?;
    check_key(fields[4])?;
    Ok(UsageRow {
        line,
        slug,
        resource,
        quantity,
        at,
        key: fields[4].to_owned(),
    })
}

/// Splits one CSV line (RFC 4180 within the line: a field may be quoted, `""` is a quote).
/// A line without quotes (nearly every line of a generated file) is split in place, without
/// copying its fields.
pub(crate) fn split_line(line: &str) -> Result<Vec<std::borrow::Cow<'_, str>>, String> {
    if !line.contains('"') {
        return Ok(line.split(',').map(std::borrow::Cow::Borrowed).collect());
    }
    split_quoted(line).map(|f| f.into_iter().map(std::borrow::Cow::Owned).collect())
}

fn split_quoted(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.trim().is_empty() && !was_quoted => {
                field.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                fields.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".to_owned());
    }
    fields.push(field);
    Ok(fields)
}

/// Below this size a file is parsed on one thread (threads cost more than they save).
const PARALLEL_FROM: usize = 1 << 20;

/// Parses a whole file; `origin` names it in errors. A large file is parsed in as many pieces
/// as there are cores, each a run of whole lines (the server is idle meanwhile: parsing is
/// the import's own time); rows and errors come back in line order either way.
pub fn parse(text: &str, origin: &str) -> Result<Vec<UsageRow>, Failure> {
    // A byte-order mark is not part of the first slug (spreadsheets write one).
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let pieces = if text.len() < PARALLEL_FROM {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    };
    let (rows, errors) = if pieces == 1 {
        parse_lines(text, 1)
    } else {
        let mut chunks = Vec::with_capacity(pieces);
        let (mut start, mut first_line) = (0, 1i64);
        for i in 1..=pieces {
            let end = if i == pieces {
                text.len()
            } else {
                // The end of the line that holds this piece's last byte, found in bytes: that
                // byte may be inside a multi-byte character (a key in another script), where
                // slicing the text would panic; just past a '\n' is always a boundary.
                let at = (text.len() * i / pieces).max(start);
                text.as_bytes()[at..]
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(text.len(), |n| at + n + 1)
            };
            chunks.push((&text[start..end], first_line));
            first_line += text[start..end].bytes().filter(|b| *b == b'\n').count() as i64;
            start = end;
        }
        let parsed: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|(chunk, line)| s.spawn(move || parse_lines(chunk, line)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a parsing thread panicked"))
                .collect()
        });
        let mut rows = Vec::with_capacity(parsed.iter().map(|p| p.0.len()).sum());
        let mut errors = Vec::new();
        for (r, e) in parsed {
            rows.extend(r);
            errors.extend(e);
        }
        (rows, errors)
    };
    if !errors.is_empty() {
        return Err(crate::text_file::bad_rows(
            "usage file",
            origin,
            errors,
            "malformed row",
            "nothing imported",
        ));
    }
    Ok(rows)
}

/// The rows and the errors of `text`, whose first line is line `first_line` of the file.
fn parse_lines(text: &str, first_line: i64) -> (Vec<UsageRow>, Vec<String>) {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i as i64 + first_line;
        if raw.trim().is_empty() {
            continue;
        }
        let fields = match split_line(raw) {
            Ok(f) => f,
            Err(e) => {
                errors.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let fields: Vec<&str> = fields.iter().map(|f| f.trim()).collect();
        if line == 1 && fields == HEADER {
            continue;
        }
        match parse_row(line, &fields) {
            Ok(row) => rows.push(row),
            Err(e) => errors.push(format!("line {line}: {e}")),
        }
    }
    (rows, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_and_without_header() {
        let text = "slug,resource,quantity,time,key\nacme,api_requests,5,2026-11-03T10:00:00Z,k1\n\nbeta,compute_hours,2,2026-11-04,\"k,2\"\n";
        let rows = parse(text, "u.csv").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].line, rows[0].quantity, rows[0].key.as_str()),
            (2, 5, "k1")
        );
        assert_eq!((rows[1].line, rows[1].key.as_str()), (4, "k,2"));
        assert_eq!(
            parse("acme,api_requests,5,2026-11-03,k1\n", "u.csv")
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn every_malformed_row_is_named_by_line() {
        let lines = [
            ("acme,api_requests,x,2026-11-03,k2", "quantity `x`"),
            ("Acme,api_requests,1,2026-11-03,k3", "invalid slug `Acme`"),
            ("acme,users,1,2026-11-03,k4", "resource `users` is measured"),
            ("acme,api_requests,1,soon,k5", "invalid time `soon`"),
            ("acme,api_requests,1,2026-11-03", "4 fields"),
            ("acme,api_requests,0,2026-11-03,k7", "quantity `0`"),
            (
                "acme,api_requests,1000000000001,2026-11-03,k8",
                "quantity `1000000000001`",
            ),
            (
                "acme,api_requests,1,0000-01-01,k9",
                "invalid time `0000-01-01`: years 1970 to 9999 only",
            ),
        ];
        for (line, needle) in lines {
            let e = parse(
                &format!("acme,api_requests,5,2026-11-03,k1\n{line}\n"),
                "u.csv",
            )
            .unwrap_err()
            .to_string();
            assert!(
                e.contains(&format!("line 2: {needle}")),
                "`{needle}` missing from: {e}"
            );
        }
        // All of them at once: the first three explained, the other lines named.
        let text: String = std::iter::once("acme,api_requests,5,2026-11-03,k1")
            .chain(lines.iter().map(|l| l.0))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = parse(&text, "u.csv").unwrap_err().to_string();
        for needle in [
            "line 2: quantity `x`",
            "line 3: invalid slug `Acme`",
            "line 4: resource `users` is measured",
            "also bad: lines 5, 6, 7, 8, 9 (8 malformed rows; nothing imported)",
        ] {
            assert!(e.contains(needle), "`{needle}` missing from: {e}");
        }
        assert!(!e.contains('\n'));
        let e = parse("acme,api_requests,1,2026-11-03,\"open\n", "u.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1: a quoted field is not closed"), "{e}");
    }

    #[test]
    fn a_large_file_parsed_in_pieces_keeps_line_order_and_numbers() {
        // Past PARALLEL_FROM: parsed on several threads; rows, errors and line numbers as one
        // thread gives them (a header, blank lines and quoted keys included).
        let mut text = String::from("slug,resource,quantity,time,key\n");
        let mut n = 0;
        while text.len() <= 3 * PARALLEL_FROM {
            n += 1;
            if n % 1000 == 0 {
                text.push('\n');
            }
            text.push_str(&format!(
                "acme,api_requests,{},2026-11-03,\"k,{n}\"\n",
                n % 7 + 1
            ));
        }
        let rows = parse(&text, "u.csv").unwrap();
        assert_eq!(rows.len(), n);
        let lines: Vec<i64> = rows.iter().map(|r| r.line).collect();
        let single = parse_lines(&text, 1).0;
        assert_eq!(lines, single.iter().map(|r| r.line).collect::<Vec<_>>());
        assert_eq!(rows.last().unwrap().key, format!("k,{n}"));
        assert_eq!(rows, single);
        // Errors deep in two different pieces are named by their own lines, in order.
        let total_lines = text.lines().count();
        let mut bad: Vec<String> = text.lines().map(str::to_owned).collect();
        let (a, b) = (total_lines / 3, total_lines - 2);
        bad[a - 1] = "acme,api_requests,x,2026-11-03,ka".to_owned();
        bad[b - 1] = "acme,api_requests,0,2026-11-03,kb".to_owned();
        let e = parse(&bad.join("\n"), "u.csv").unwrap_err().to_string();
        let (ia, ib) = (
            e.find(&format!("line {a}: quantity `x`")).expect(&e),
            e.find(&format!("line {b}: quantity `0`")).expect(&e),
        );
        assert!(ia < ib, "{e}");
    }

    #[test]
    fn a_large_file_of_multi_byte_keys_is_split_between_characters() {
        // Lines of 232 bytes whose keys are 100 two-byte characters: the byte where each piece
        // would end falls inside a character on 2, 4 and 8 cores alike (a panic, exit 101,
        // before the split looked for the newline in bytes). Every piece count is tried.
        let line = format!("acme,api_requests,1,2026-11-03,{}\n", "é".repeat(100));
        let text = line.repeat(PARALLEL_FROM / line.len() + 1);
        assert!(text.len() >= PARALLEL_FROM);
        for pieces in 2..=8 {
            let at = text.len() * (pieces - 1) / pieces;
            if !text.is_char_boundary(at) {
                let rows = parse(&text, "u.csv").unwrap();
                assert_eq!(rows.len(), text.len() / line.len());
                assert_eq!(rows[rows.len() - 1].key, "é".repeat(100));
                return;
            }
        }
        panic!("no piece count splits this file inside a character: the test tests nothing");
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_field() {
        let rows = parse("\u{feff}acme,api_requests,5,2026-11-03,k1\n", "u.csv").unwrap();
        assert_eq!(rows[0].slug, "acme");
        let rows = parse(
            "\u{feff}slug,resource,quantity,time,key\nacme,api_requests,5,2026-11-03,k1\n",
            "u.csv",
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
    }

    #[test]
    fn quoted_fields() {
        assert_eq!(
            split_line(r#"a,"b,c","say ""hi""",d"#).unwrap(),
            ["a", "b,c", "say \"hi\"", "d"]
        );
        assert_eq!(split_line("a,,b").unwrap(), ["a", "", "b"]);
    }
}
