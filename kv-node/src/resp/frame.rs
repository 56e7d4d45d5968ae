//! RESP2 request parsing, bounded.
//!
//! A client sends either a multibulk command (`*<n>\r\n` then `n` times
//! `$<len>\r\n<bytes>\r\n`) or an inline command (one line of
//! space-separated words, with `"..."` and `'...'` quoting as redis-server
//! accepts it). [`parse`] looks at the buffered bytes without consuming
//! them until a whole command is there; only then does it split the command
//! off the buffer, so the arguments are slices of the bytes that arrived.
//!
//! Limits: a declared argument count or bulk length is checked against
//! [`Limits`] when its header is read and never sizes an allocation (the
//! argument vector grows by push, one entry per argument actually
//! buffered); a command (multibulk or inline) larger than
//! [`Limits::max_command_bytes`] is an error before it is buffered whole,
//! so the connection's read buffer stays bounded.

use bytes::{Buf, Bytes, BytesMut};

use crate::protocol::DEFAULT_MAX_FRAME_BYTES;

/// Bounds on what one command may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most arguments (command name included) in one command.
    pub max_args: usize,
    /// Most bytes in one command, headers included.
    pub max_command_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_args: 64 * 1024,
            max_command_bytes: DEFAULT_MAX_FRAME_BYTES + COMMAND_SLACK_BYTES,
        }
    }
}

/// Bytes a command may hold beyond the node's frame limit: its RESP
/// headers around the largest value.
pub(crate) const COMMAND_SLACK_BYTES: usize = 64 * 1024;

/// Longest inline command line (as redis-server's `PROTO_INLINE_MAX_SIZE`).
pub const MAX_INLINE_BYTES: usize = 64 * 1024;

/// A malformed request. Redis answers `-ERR Protocol error: <this>` and
/// closes the connection; so does kv.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The `*<n>` count is not a number, negative below -1, or over the
    /// argument limit.
    #[error("invalid multibulk length")]
    BadArrayLength,
    /// The `$<len>` length is not a number or is over the limit.
    #[error("invalid bulk length")]
    BadBulkLength,
    /// An argument did not start with `$`.
    #[error("expected '$', got '{0}'")]
    ExpectedBulk(char),
    /// A bulk argument was not followed by CRLF.
    #[error("bulk argument not terminated by CRLF")]
    MissingCrlf,
    /// An inline command line is too long, or a multibulk command over the
    /// command size limit.
    #[error("too big {0} request")]
    TooBig(&'static str),
    /// An inline command with an open quote.
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
}

/// One parsed command: its arguments, name first.
pub type Command = Vec<Bytes>;

/// Parses one command off the front of `buf`. `Ok(None)`: more bytes are
/// needed (nothing consumed). An empty command (blank inline line, `*0`,
/// `*-1`) is consumed and returned as an empty vector.
pub fn parse(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Command>, FrameError> {
    match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_multibulk(buf, limits),
        Some(_) => parse_inline(buf, limits),
    }
}

/// Finds the CRLF-terminated line starting at `from`: its end (excluding
/// CRLF). `None` when no full line is buffered.
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    let lf = rest.iter().position(|&b| b == b'\n')?;
    // A header line must end in CRLF; a bare LF is taken as the end too,
    // and the number parse below rejects the stray CR-less content.
    let end = from + lf;
    Some(if end > from && buf.get(end - 1) == Some(&b'\r') {
        end - 1
    } else {
        end
    })
}

/// Parses a decimal header number (`*<n>` / `$<n>`), at most 20 bytes.
fn header_number(digits: &[u8]) -> Option<i64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Reads a `<prefix><n>\r\n` header at `at`: the number and where the
/// next line starts. `Ok(None)` when the line is not all buffered.
fn header(
    buf: &[u8],
    at: usize,
    max_line: usize,
    bad: FrameError,
) -> Result<Option<(i64, usize)>, FrameError> {
    let Some(end) = line_end(buf, at) else {
        // No end of line within a sane header length: garbage.
        return if buf.len().saturating_sub(at) > max_line {
            Err(bad)
        } else {
            Ok(None)
        };
    };
    let digits = buf.get(at + 1..end).ok_or(bad.clone())?;
    let n = header_number(digits).ok_or(bad)?;
    let next = if buf.get(end) == Some(&b'\r') {
        end + 2
    } else {
        end + 1
    };
    Ok(Some((n, next)))
}

/// Longest header line (`*`/`$`, 20 digits, CRLF) before it is garbage.
const MAX_HEADER_LINE: usize = 32;

fn parse_multibulk(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Command>, FrameError> {
    let Some((count, mut at)) = header(buf, 0, MAX_HEADER_LINE, FrameError::BadArrayLength)? else {
        return Ok(None);
    };
    if count <= 0 {
        if count < -1 {
            return Err(FrameError::BadArrayLength);
        }
        buf.advance(at);
        return Ok(Some(Vec::new()));
    }
    let count = usize::try_from(count).map_err(|_| FrameError::BadArrayLength)?;
    if count > limits.max_args {
        return Err(FrameError::BadArrayLength);
    }
    // First pass: find every argument's span without copying anything.
    let mut spans = Vec::new();
    for _ in 0..count {
        let Some(&first) = buf.get(at) else {
            return Ok(None);
        };
        if first != b'$' {
            return Err(FrameError::ExpectedBulk(char::from(first)));
        }
        let Some((len, start)) = header(buf, at, MAX_HEADER_LINE, FrameError::BadBulkLength)?
        else {
            return Ok(None);
        };
        let len = usize::try_from(len).map_err(|_| FrameError::BadBulkLength)?;
        let end = start.checked_add(len).ok_or(FrameError::BadBulkLength)?;
        if end.saturating_add(2) > limits.max_command_bytes {
            return Err(if len > limits.max_command_bytes {
                FrameError::BadBulkLength
            } else {
                FrameError::TooBig("multibulk")
            });
        }
        match buf.get(end..end + 2) {
            None => return Ok(None),
            Some(b"\r\n") => {}
            Some(_) => return Err(FrameError::MissingCrlf),
        }
        spans.push((start, end));
        at = end + 2;
    }
    let whole = buf.split_to(at).freeze();
    Ok(Some(
        spans.into_iter().map(|(s, e)| whole.slice(s..e)).collect(),
    ))
}

fn parse_inline(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Command>, FrameError> {
    let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > MAX_INLINE_BYTES {
            Err(FrameError::TooBig("inline"))
        } else {
            Ok(None)
        };
    };
    if lf > MAX_INLINE_BYTES {
        return Err(FrameError::TooBig("inline"));
    }
    let line = buf.split_to(lf + 1).freeze();
    let text = line.slice(..lf);
    let text = text.strip_suffix(b"\r").unwrap_or(&text);
    let args = split_args(text)?;
    if args.len() > limits.max_args {
        return Err(FrameError::TooBig("inline"));
    }
    Ok(Some(args))
}

/// Splits an inline line into words: whitespace separated, with
/// double-quoted words taking `\n \r \t \b \a \\ \" \xHH` escapes and
/// single-quoted words taking only `\'`, as redis-server's `sdssplitargs`.
fn split_args(line: &[u8]) -> Result<Command, FrameError> {
    let mut args = Vec::new();
    let mut rest = line;
    loop {
        rest = trim_start(rest);
        if rest.is_empty() {
            return Ok(args);
        }
        let (word, after) = match rest.first() {
            Some(b'"') => double_quoted(rest.get(1..).unwrap_or_default())?,
            Some(b'\'') => single_quoted(rest.get(1..).unwrap_or_default())?,
            _ => {
                let end = rest
                    .iter()
                    .position(u8::is_ascii_whitespace)
                    .unwrap_or(rest.len());
                let (word, after) = rest.split_at(end);
                (word.to_vec(), after)
            }
        };
        args.push(Bytes::from(word));
        rest = after;
    }
}

fn trim_start(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    s.get(start..).unwrap_or_default()
}

/// A quoted word must be followed by whitespace or the end of the line.
fn closed(after: &[u8]) -> Result<&[u8], FrameError> {
    match after.first() {
        None => Ok(after),
        Some(b) if b.is_ascii_whitespace() => Ok(after),
        Some(_) => Err(FrameError::UnbalancedQuotes),
    }
}

fn double_quoted(s: &[u8]) -> Result<(Vec<u8>, &[u8]), FrameError> {
    let mut word = Vec::new();
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        match b {
            b'"' => return Ok((word, closed(s.get(i + 1..).unwrap_or_default())?)),
            b'\\' => {
                let (byte, used) = escape(s.get(i + 1..).unwrap_or_default());
                word.push(byte);
                i += 1 + used;
            }
            other => {
                word.push(other);
                i += 1;
            }
        }
    }
    Err(FrameError::UnbalancedQuotes)
}

/// One escape after a backslash: the byte and how many bytes it used.
fn escape(s: &[u8]) -> (u8, usize) {
    let hex = |b: u8| char::from(b).to_digit(16);
    match s {
        [b'x', h, l, ..] if hex(*h).is_some() && hex(*l).is_some() => {
            let value = hex(*h).unwrap_or(0) * 16 + hex(*l).unwrap_or(0);
            (u8::try_from(value).unwrap_or(0), 3)
        }
        [b'n', ..] => (b'\n', 1),
        [b'r', ..] => (b'\r', 1),
        [b't', ..] => (b'\t', 1),
        [b'b', ..] => (0x08, 1),
        [b'a', ..] => (0x07, 1),
        [other, ..] => (*other, 1),
        [] => (b'\\', 0),
    }
}

fn single_quoted(s: &[u8]) -> Result<(Vec<u8>, &[u8]), FrameError> {
    let mut word = Vec::new();
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        match (b, s.get(i + 1)) {
            (b'\\', Some(b'\'')) => {
                word.push(b'\'');
                i += 2;
            }
            (b'\'', _) => return Ok((word, closed(s.get(i + 1..).unwrap_or_default())?)),
            (other, _) => {
                word.push(other);
                i += 1;
            }
        }
    }
    Err(FrameError::UnbalancedQuotes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Command>, FrameError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(cmd) = parse(&mut buf, &Limits::default())? {
            out.push(cmd);
        }
        Ok(out)
    }

    fn words(cmd: &Command) -> Vec<&[u8]> {
        cmd.iter().map(|b| b.as_ref()).collect()
    }

    #[test]
    fn multibulk_commands_pipelined() {
        let cmds = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(cmds.len(), 2);
        assert_eq!(words(&cmds[0]), [&b"GET"[..], b"k"]);
        assert_eq!(words(&cmds[1]), [&b"PING"[..]]);
    }

    #[test]
    fn binary_bulk_arguments_are_kept() {
        let cmds = parse_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\n\x00\r\n\xff\r\n").unwrap();
        assert_eq!(words(&cmds[0])[2], b"\x00\r\n\xff");
    }

    #[test]
    fn incomplete_input_consumes_nothing() {
        let full = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(parse(&mut buf, &Limits::default()), Ok(None), "cut {cut}");
            assert_eq!(buf.len(), cut);
        }
    }

    #[test]
    fn inline_commands_with_quotes() {
        let cmds = parse_all(b"set k \"a b\\x41\\n\" 'it\\'s'\r\nPING\n\r\n").unwrap();
        assert_eq!(words(&cmds[0]), [&b"set"[..], b"k", b"a bA\n", b"it's"]);
        assert_eq!(words(&cmds[1]), [&b"PING"[..]]);
        assert!(cmds[2].is_empty());
        assert_eq!(
            parse_all(b"set k \"open\r\n"),
            Err(FrameError::UnbalancedQuotes)
        );
        assert_eq!(
            parse_all(b"get \"a\"b\r\n"),
            Err(FrameError::UnbalancedQuotes)
        );
    }

    #[test]
    fn declared_lengths_are_checked_before_bytes_arrive() {
        let limits = Limits {
            max_args: 4,
            max_command_bytes: 100,
        };
        let mut buf = BytesMut::from(&b"*5\r\n"[..]);
        assert_eq!(parse(&mut buf, &limits), Err(FrameError::BadArrayLength));
        let mut buf = BytesMut::from(&b"*1\r\n$1000\r\n"[..]);
        assert_eq!(parse(&mut buf, &limits), Err(FrameError::BadBulkLength));
        let mut buf = BytesMut::from(&b"*2\r\n$60\r\n"[..]);
        buf.extend_from_slice(&[b'x'; 60]);
        buf.extend_from_slice(b"\r\n");
        buf.extend_from_slice(b"$60\r\n");
        assert_eq!(
            parse(&mut buf, &limits),
            Err(FrameError::TooBig("multibulk"))
        );
        let mut buf = BytesMut::from(&b"*-2\r\n"[..]);
        assert_eq!(parse(&mut buf, &limits), Err(FrameError::BadArrayLength));
        let mut buf = BytesMut::from(&b"*1\r\nx"[..]);
        assert_eq!(parse(&mut buf, &limits), Err(FrameError::ExpectedBulk('x')));
        let mut buf = BytesMut::from(&b"*1\r\n$1\r\nab\r\n"[..]);
        assert_eq!(parse(&mut buf, &limits), Err(FrameError::MissingCrlf));
        let mut huge = BytesMut::from(&b"*99999999999999999999999\r\n"[..]);
        assert_eq!(parse(&mut huge, &limits), Err(FrameError::BadArrayLength));
    }

    #[test]
    fn long_garbage_without_newline_is_an_error() {
        let mut buf = BytesMut::from(&vec![b'a'; MAX_INLINE_BYTES + 1][..]);
        assert_eq!(
            parse(&mut buf, &Limits::default()),
            Err(FrameError::TooBig("inline"))
        );
        let mut buf = BytesMut::from(&b"*11111111111111111111111111111111111"[..]);
        assert_eq!(
            parse(&mut buf, &Limits::default()),
            Err(FrameError::BadArrayLength)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Arbitrary bytes, fed in arbitrary chunks: the parser never
        /// panics, every argument it returns is made of input bytes (so
        /// parsed arguments never hold more than the input), its argument
        /// vectors never grow past what was parsed, and the buffer never
        /// holds more than what was fed.
        #[test]
        fn arbitrary_bytes_never_panic_or_overallocate(
            input in prop::collection::vec(any::<u8>(), 0..512),
            chunk in 1usize..64,
            small in any::<bool>(),
        ) {
            let limits = if small {
                Limits { max_args: 8, max_command_bytes: 128 }
            } else {
                Limits::default()
            };
            let mut buf = BytesMut::new();
            let mut parsed_bytes = 0usize;
            for piece in input.chunks(chunk) {
                buf.extend_from_slice(piece);
                loop {
                    match parse(&mut buf, &limits) {
                        Ok(Some(cmd)) => {
                            prop_assert!(cmd.len() <= limits.max_args);
                            prop_assert!(cmd.capacity() <= cmd.len().max(4) * 2);
                            parsed_bytes += cmd.iter().map(Bytes::len).sum::<usize>();
                        }
                        Ok(None) => break,
                        Err(_) => return Ok(()),
                    }
                }
                prop_assert!(buf.len() <= input.len());
            }
            prop_assert!(parsed_bytes <= input.len());
        }

        /// Well-formed multibulk commands parse back to their arguments.
        #[test]
        fn encoded_commands_parse_back(
            args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6),
        ) {
            let mut wire = format!("*{}\r\n", args.len()).into_bytes();
            for a in &args {
                wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                wire.extend_from_slice(a);
                wire.extend_from_slice(b"\r\n");
            }
            let cmds = parse_all(&wire).unwrap();
            prop_assert_eq!(cmds.len(), 1);
            let back: Vec<Vec<u8>> = cmds[0].iter().map(|b| b.to_vec()).collect();
            prop_assert_eq!(back, args);
        }
    }
}
