//! FITS headers: 2880-byte blocks of 80-character ASCII cards ending with `END` (FITS 4.0, section 4).

use std::collections::HashMap;

pub const BLOCK: usize = 2880;
const CARD: usize = 80;

/// A keyword's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Logical(bool),
    /// Integers are kept exactly: TZERO of an unsigned 64-bit column is 2^63, beyond i64.
    Int(i128),
    Float(f64),
    Str(String),
    Complex(f64, f64),
    Undefined,
}

impl Value {
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    pub keyword: String,
    /// `None` for commentary cards (COMMENT, HISTORY, blank keywords, anything without a value indicator).
    pub value: Option<Value>,
    pub comment: String,
}

#[derive(Debug, Clone, Default)]
pub struct Header {
    cards: Vec<Card>,
    /// Keyword -> first card with a value.
    index: HashMap<String, usize>,
}

/// Where the `END` card is, if `bytes` (a whole number of blocks from the start of a header) holds it: the header's
/// length in bytes, a whole number of blocks.
pub fn header_len(bytes: &[u8]) -> Option<usize> {
    bytes
        .chunks_exact(CARD)
        .position(|card| card.starts_with(b"END") && card[3..].iter().all(|&b| b == b' '))
        .map(|i| ((i * CARD) / BLOCK + 1) * BLOCK)
}

impl Header {
    /// Parse the cards of a complete header (as delimited by [`header_len`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        if let Some(at) = bytes.iter().position(|&b| !(b' '..=b'~').contains(&b)) {
            return Err(format!("byte {at} of the header is not ASCII text: not a FITS header"));
        }
        let mut header = Header::default();
        for raw in bytes.chunks_exact(CARD) {
            // Checked above: every byte is printable ASCII, so this is valid UTF-8.
            let text = std::str::from_utf8(raw).map_err(|e| e.to_string())?;
            let keyword = text[..8].trim_end();
            if keyword == "END" {
                break;
            }
            if keyword == "CONTINUE" {
                header.append_continuation(&text[8..])?;
                continue;
            }
            let card = if &text[8..10] == "= " {
                let (value, comment) = parse_value(&text[10..]).map_err(|e| format!("keyword {keyword}: {e}"))?;
                Card { keyword: keyword.to_string(), value: Some(value), comment }
            } else {
                Card { keyword: keyword.to_string(), value: None, comment: text[8..].trim_end().to_string() }
            };
            if card.value.is_some() {
                header.index.entry(card.keyword.clone()).or_insert(header.cards.len());
            }
            header.cards.push(card);
        }
        Ok(header)
    }

    /// The long-string convention: a string ending in `&` goes on in the next CONTINUE card.
    fn append_continuation(&mut self, rest: &str) -> Result<(), String> {
        let Some(Card { value: Some(Value::Str(s)), comment, .. }) = self.cards.last_mut() else { return Ok(()) };
        if !s.ends_with('&') {
            return Ok(());
        }
        let (more, more_comment) = match parse_value(rest)? {
            (Value::Str(more), c) => (more, c),
            _ => return Err("CONTINUE card without a string".into()),
        };
        s.pop();
        s.push_str(&more);
        if !more_comment.is_empty() {
            comment.push_str(&more_comment);
        }
        Ok(())
    }

    pub fn cards(&self) -> &[Card] {
        &self.cards
    }

    pub fn card(&self, keyword: &str) -> Option<&Card> {
        self.index.get(keyword).map(|&i| &self.cards[i])
    }

    pub fn value(&self, keyword: &str) -> Option<&Value> {
        self.card(keyword).and_then(|c| c.value.as_ref())
    }

    pub fn string(&self, keyword: &str) -> Option<&str> {
        match self.value(keyword) {
            Some(Value::Str(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    /// An integer keyword; present with another type is an error.
    pub fn int(&self, keyword: &str) -> Result<Option<i128>, String> {
        match self.value(keyword) {
            None => Ok(None),
            Some(Value::Int(i)) => Ok(Some(*i)),
            Some(other) => Err(format!("{keyword} = {other:?} is not an integer")),
        }
    }

    /// A required non-negative integer that fits `u64`.
    pub fn count(&self, keyword: &str) -> Result<u64, String> {
        let value = self.int(keyword)?.ok_or_else(|| format!("keyword {keyword} is missing"))?;
        u64::try_from(value).map_err(|_| format!("{keyword} = {value} is out of range"))
    }

    /// A number (integer or real); present with another type is an error.
    pub fn number(&self, keyword: &str) -> Result<Option<f64>, String> {
        match self.value(keyword) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| format!("{keyword} = {v:?} is not a number")),
        }
    }
}

/// The value field (columns 11-80) of a card: the value and its comment.
fn parse_value(field: &str) -> Result<(Value, String), String> {
    let trimmed = field.trim_start();
    if let Some(quoted) = trimmed.strip_prefix('\'') {
        // A string: '' is a quote; trailing blanks are not significant.
        let mut value = String::new();
        let mut chars = quoted.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if matches!(chars.peek(), Some((_, '\''))) {
                    chars.next();
                    value.push('\'');
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                value.push(c);
            }
        }
        let end = end.ok_or("unterminated string")?;
        let comment = comment_of(&quoted[end..]);
        return Ok((Value::Str(value.trim_end().to_string()), comment));
    }
    let (token, comment) = match trimmed.find('/') {
        Some(i) => (trimmed[..i].trim(), comment_of(&trimmed[i..])),
        None => (trimmed.trim(), String::new()),
    };
    Ok((parse_token(token)?, comment))
}

fn comment_of(rest: &str) -> String {
    rest.trim_start().strip_prefix('/').map(|c| c.trim().to_string()).unwrap_or_default()
}

fn parse_token(token: &str) -> Result<Value, String> {
    match token {
        "" => return Ok(Value::Undefined),
        "T" => return Ok(Value::Logical(true)),
        "F" => return Ok(Value::Logical(false)),
        _ => {}
    }
    if let Some(inner) = token.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
        let (re, im) = inner.split_once(',').ok_or_else(|| format!("invalid complex value '{token}'"))?;
        return Ok(Value::Complex(parse_float(re.trim())?, parse_float(im.trim())?));
    }
    if let Ok(i) = token.parse::<i128>() {
        return Ok(Value::Int(i));
    }
    parse_float(token).map(Value::Float)
}

fn parse_float(token: &str) -> Result<f64, String> {
    // Fortran-style exponents: 1.0D+02.
    let normal = token.replace(['D', 'd'], "E");
    match normal.parse::<f64>() {
        // "inf"/"nan" are not FITS numbers.
        Ok(f) if f.is_finite() && normal.bytes().all(|b| b.is_ascii_digit() || b"+-.Ee".contains(&b)) => Ok(f),
        _ => Err(format!("invalid value '{token}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cards(lines: &[&str]) -> Vec<u8> {
        let mut bytes: Vec<u8> = lines.iter().flat_map(|l| format!("{l:<80}").into_bytes()).collect();
        bytes.resize(bytes.len().div_ceil(BLOCK) * BLOCK, b' ');
        bytes
    }

    #[test]
    fn values_comments_and_long_strings() {
        let bytes = cards(&[
            "SIMPLE  =                    T / conforms",
            "BITPIX  =                   -64",
            "TZERO1  =  9223372036854775808",
            "TSCAL1  =              1.5D-01 / scale",
            "TTYPE1  = 'O''Brien '           / the name",
            "CPLX    = (1.0, -2)",
            "EMPTY   =",
            "LONGSTR = 'abc&'",
            "CONTINUE  'def' / more",
            "COMMENT this = is commentary",
            "END",
        ]);
        assert_eq!(header_len(&bytes), Some(BLOCK));
        let h = Header::parse(&bytes).unwrap();
        assert_eq!(h.value("SIMPLE"), Some(&Value::Logical(true)));
        assert_eq!(h.card("SIMPLE").unwrap().comment, "conforms");
        assert_eq!(h.int("BITPIX").unwrap(), Some(-64));
        assert_eq!(h.int("TZERO1").unwrap(), Some(1 << 63));
        assert_eq!(h.number("TSCAL1").unwrap(), Some(0.15));
        assert_eq!(h.string("TTYPE1"), Some("O'Brien"));
        assert_eq!(h.card("TTYPE1").unwrap().comment, "the name");
        assert_eq!(h.value("CPLX"), Some(&Value::Complex(1.0, -2.0)));
        assert_eq!(h.value("EMPTY"), Some(&Value::Undefined));
        assert_eq!(h.string("LONGSTR"), Some("abcdef"));
        assert!(h.value("COMMENT").is_none());
        assert!(h.int("TTYPE1").is_err());
    }

    #[test]
    fn end_is_found_in_later_blocks_and_binary_is_refused() {
        let mut lines = vec!["SIMPLE  =                    T"; 40];
        lines.push("END");
        let bytes = cards(&lines);
        assert_eq!(header_len(&bytes), Some(2 * BLOCK));
        assert_eq!(header_len(&bytes[..BLOCK]), None);
        let mut binary = bytes.clone();
        binary[100] = 0;
        assert!(Header::parse(&binary).unwrap_err().contains("not ASCII"));
        assert!(parse_value(" 'abc").is_err());
        assert!(parse_value(" nan").is_err());
    }
}
