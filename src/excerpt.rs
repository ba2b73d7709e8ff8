//! `excerpt`: how a bad value appears in a message. Whatever a user (or an attacker) typed or
//! put in a file, an error shows at most a short, escaped piece of it: never a megabyte, never a
//! raw newline, terminal escape sequence or bidi override.

/// Characters of the value shown before it is cut.
pub const MAX_CHARS: usize = 40;

/// Characters of an operational failure's reason shown (an OS or server error after the path
/// or object it concerns): enough for its cause, which sits at the end.
pub const REASON_CHARS: usize = 300;

/// A short, escaped excerpt of `s` for an error message (callers put it in backticks):
/// control characters, bidi controls and other invisible format characters are written as
/// escapes (`\n`, `\u{1b}`, `\u{202e}`), and a value longer than `MAX_CHARS` is cut with
/// `…` and its length in bytes.
pub fn excerpt(s: &str) -> String {
    excerpt_n(s, MAX_CHARS)
}

/// `excerpt` with another cut: for values that are legitimately longer (a path, a parser's
/// message that quotes the input).
pub fn excerpt_n(s: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == max_chars {
            out.push_str(&format!("… ({} bytes)", s.len()));
            return out;
        }
        push_escaped(&mut out, c);
    }
    out
}

/// `s` whole, with the same escapes as `excerpt`: for a message that must stay on one line and
/// must not drive the terminal, but whose length is already bounded.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    out
}

/// True for characters that must never reach a terminal or a stored text field raw.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control() || is_format_char(c)
}

/// Bidi embeddings, overrides and isolates, zero-width characters, the byte-order mark and
/// the other invisible format characters that can make text read differently than it is.
fn is_format_char(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{061c}' | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{2069}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}')
}

fn push_escaped(out: &mut String, c: char) {
    if is_unsafe_char(c) {
        out.extend(c.escape_default());
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_pass_unchanged() {
        assert_eq!(excerpt("acme"), "acme");
        assert_eq!(excerpt("Zoë & Co."), "Zoë & Co.");
    }

    #[test]
    fn controls_and_bidi_are_escaped() {
        assert_eq!(excerpt("a\nb"), "a\\nb");
        assert_eq!(excerpt("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(excerpt("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(excerpt("\u{feff}slug"), "\\u{feff}slug");
    }

    #[test]
    fn long_values_are_cut_with_their_length() {
        let long = "k".repeat(1_000_000);
        let e = excerpt(&long);
        assert!(e.len() < 80, "{e}");
        assert!(e.ends_with("… (1000000 bytes)"), "{e}");
    }
}
