//! The CRI container log format that runtimes write at a container's log path: one record
//! per line, `<RFC3339Nano timestamp> <stdout|stderr> <P|F> <message>`, where `P` marks a
//! partial record (a long line split by the runtime) and `F` the full one or its last part.

/// Which stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The container's standard output.
    Stdout,
    /// The container's standard error.
    Stderr,
}

/// One parsed log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// The timestamp exactly as written (RFC 3339 with nanoseconds).
    pub timestamp: &'a str,
    /// The stream.
    pub stream: Stream,
    /// False for a partial record (`P`): the message continues in the next record.
    pub full: bool,
    /// The message, without the trailing newline.
    pub message: &'a str,
}

/// Why a line is not a CRI log record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed CRI log line: {0}")]
pub struct ParseError(pub &'static str);

/// Parses one line (with or without its trailing newline).
pub fn parse_line(line: &str) -> Result<Record<'_>, ParseError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let (timestamp, rest) = line.split_once(' ').ok_or(ParseError("no timestamp"))?;
    if timestamp.len() < 20 || !timestamp.as_bytes()[0].is_ascii_digit() {
        return Err(ParseError("bad timestamp"));
    }
    let (stream, rest) = rest.split_once(' ').ok_or(ParseError("no stream"))?;
    let stream = match stream {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return Err(ParseError("unknown stream")),
    };
    // The tag field may in future carry more flags separated by ':'; the first is P or F.
    let (tag, message) = match rest.split_once(' ') {
        Some((t, m)) => (t, m),
        None => (rest, ""),
    };
    let full = match tag.split(':').next() {
        Some("F") => true,
        Some("P") => false,
        _ => return Err(ParseError("unknown tag")),
    };
    Ok(Record {
        timestamp,
        stream,
        full,
        message,
    })
}

/// Joins partial records into whole lines: returns (stream, line) for each full record.
pub fn lines(text: &str) -> Vec<(Stream, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for rec in text.lines().filter_map(|l| parse_line(l).ok()) {
        pending.push_str(rec.message);
        if rec.full {
            out.push((rec.stream, std::mem::take(&mut pending)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_and_partial_records() {
        let r = parse_line("2026-11-22T03:14:53.123456789Z stdout F hello world\n").unwrap();
        assert_eq!(r.stream, Stream::Stdout);
        assert!(r.full);
        assert_eq!(r.message, "hello world");
        let r = parse_line("2026-11-22T03:14:53.1Z stderr P part").unwrap();
        assert_eq!(
            (r.stream, r.full, r.message),
            (Stream::Stderr, false, "part")
        );
        assert_eq!(
            parse_line("2026-11-22T03:14:53.1Z stdout F")
                .unwrap()
                .message,
            ""
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_line("").is_err());
        assert!(parse_line("hello").is_err());
        assert!(parse_line("2026-11-22T03:14:53.1Z stdin F x").is_err());
        assert!(parse_line("2026-11-22T03:14:53.1Z stdout X x").is_err());
    }

    #[test]
    fn joins_partials() {
        let text = "2026-11-22T03:14:53.1Z stdout P ab\n2026-11-22T03:14:53.2Z stdout F cd\n\
                    2026-11-22T03:14:53.3Z stderr F e\n";
        assert_eq!(
            lines(text),
            vec![
                (Stream::Stdout, "abcd".to_string()),
                (Stream::Stderr, "e".to_string())
            ]
        );
    }
}
