//! Reading inputs into records without ever holding more than one record (up to a size limit) at a time.
//!
//! An input is NDJSON (one record per line) or one JSON array of records, detected from its first bytes:
//! an input whose first value is an array that is not followed by more lines is read as a JSON array,
//! element by element, with a small scanner that tracks strings and nesting; anything else is NDJSON.
//! Gzip is detected by its magic bytes. A UTF-8 byte-order mark at the start is skipped, `\r\n` line ends
//! are accepted, blank lines are counted and skipped, and a record longer than the limit is reported as
//! [`Item::TooLarge`] after being skipped, never buffered whole.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

/// Where records come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Standard input.
    Stdin,
    /// A file.
    File(PathBuf),
}

impl Source {
    /// `-` is standard input, anything else a path.
    pub fn parse(arg: &str) -> Source {
        if arg == "-" {
            Source::Stdin
        } else {
            Source::File(PathBuf::from(arg))
        }
    }

    /// How the source is named in output and errors.
    pub fn name(&self) -> String {
        match self {
            Source::Stdin => "-".to_owned(),
            Source::File(p) => p.display().to_string(),
        }
    }

    /// Open the source, decompressing gzip transparently.
    pub fn open(&self) -> io::Result<Box<dyn BufRead + Send>> {
        let raw: Box<dyn Read + Send> = match self {
            Source::Stdin => Box::new(io::stdin()),
            Source::File(p) => Box::new(open_file(p)?),
        };
        let mut buffered = BufReader::with_capacity(1 << 16, raw);
        let head = buffered.fill_buf()?;
        if head.starts_with(&[0x1f, 0x8b]) {
            Ok(Box::new(BufReader::with_capacity(
                1 << 16,
                MultiGzDecoder::new(buffered),
            )))
        } else {
            Ok(Box::new(buffered))
        }
    }
}

fn open_file(p: &Path) -> io::Result<File> {
    let f = File::open(p)?;
    if f.metadata()?.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a directory",
        ));
    }
    Ok(f)
}

/// One thing read from an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A record's bytes (without line end), starting on line `line` (1-based).
    Record {
        /// Line the record starts on.
        line: u64,
    },
    /// A record longer than the limit, skipped.
    TooLarge {
        /// Line the record starts on.
        line: u64,
    },
    /// A blank line (NDJSON) or nothing: counted, no result.
    Blank,
    /// A JSON array input that is malformed from here on; the rest of the input cannot be split.
    BrokenArray {
        /// Line where the problem was found.
        line: u64,
        /// What is wrong.
        message: String,
    },
}

/// Splits one input into records.
pub struct Splitter {
    reader: Box<dyn BufRead + Send>,
    limit: usize,
    line: u64,
    mode: Mode,
    /// Bytes already read while detecting the format, to be replayed first.
    pending: Option<Vec<u8>>,
}

enum Mode {
    Detect,
    Lines,
    Array(ArrayScan),
    Done,
}

impl Splitter {
    /// Split `reader`, reporting records longer than `limit` bytes as too large.
    pub fn new(reader: Box<dyn BufRead + Send>, limit: usize) -> Splitter {
        Splitter {
            reader,
            limit,
            line: 0,
            mode: Mode::Detect,
            pending: None,
        }
    }

    /// The next item; `buf` receives a record's bytes. `None` at the end of the input.
    pub fn next_item(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<Item>> {
        buf.clear();
        loop {
            match &mut self.mode {
                Mode::Done => return Ok(None),
                Mode::Detect => self.detect()?,
                Mode::Lines => return self.next_line(buf),
                Mode::Array(_) => return self.next_element(buf),
            }
        }
    }

    /// Decide between NDJSON and a JSON array. Skips a byte-order mark.
    fn detect(&mut self) -> io::Result<()> {
        if self.reader.fill_buf()?.starts_with(b"\xEF\xBB\xBF") {
            self.reader.consume(3);
        }
        let head = self.reader.fill_buf()?;
        if head.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'[') {
            self.mode = Mode::Lines;
            return Ok(());
        }
        // The first value starts with `[`. Read the first non-blank line (at most `limit` bytes of it)
        // and see whether it is a whole JSON value followed by more lines (NDJSON whose first record is
        // an array) or not (one JSON array, on one line or many).
        let mut replay = Vec::new();
        let complete = loop {
            let start = replay.len();
            let complete = read_line_prefix(&mut *self.reader, &mut replay, self.limit)?;
            if !complete
                || replay.len() == start
                || !replay[start..].iter().all(u8::is_ascii_whitespace)
            {
                break complete;
            }
            // A blank line: keep only its line end, for line numbers.
            replay.truncate(start);
            replay.push(b'\n');
        };
        let first_line = trim_line_end(&replay);
        let whole_value =
            complete && serde_json::from_slice::<serde::de::IgnoredAny>(first_line).is_ok();
        self.pending = Some(replay);
        let more_lines = whole_value && self.has_more_content()?;
        self.mode = if more_lines {
            Mode::Lines
        } else {
            Mode::Array(ArrayScan::default())
        };
        Ok(())
    }

    /// Whether anything but white space follows, without consuming it... beyond white space.
    fn has_more_content(&mut self) -> io::Result<bool> {
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(false);
            }
            match buf.iter().position(|b| !b.is_ascii_whitespace()) {
                Some(_) => return Ok(true),
                None => {
                    // Only white space in the buffer: keep the line ends so line numbers stay right.
                    let n = buf.len();
                    let newlines = buf.iter().filter(|b| **b == b'\n').count();
                    self.reader.consume(n);
                    let pending = self.pending.get_or_insert_with(Vec::new);
                    pending.extend(std::iter::repeat_n(b'\n', newlines));
                }
            }
        }
    }

    fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<Item>> {
        let (n, too_long) = if let Some(p) = self.pending.take() {
            // Replay the bytes read while detecting: they hold whole lines.
            let mut cursor = io::Cursor::new(p);
            let (n, too_long) = read_line_limited(&mut cursor, buf, self.limit)?;
            let rest = cursor.get_ref()[cursor.position() as usize..].to_vec();
            if !rest.is_empty() {
                self.pending = Some(rest);
            }
            (n, too_long)
        } else {
            read_line_limited(&mut *self.reader, buf, self.limit)?
        };
        if n == 0 {
            self.mode = Mode::Done;
            return Ok(None);
        }
        self.line += 1;
        if too_long {
            buf.clear();
            return Ok(Some(Item::TooLarge { line: self.line }));
        }
        let len = trim_line_end(buf).len();
        buf.truncate(len);
        if buf.iter().all(u8::is_ascii_whitespace) {
            buf.clear();
            return Ok(Some(Item::Blank));
        }
        Ok(Some(Item::Record { line: self.line }))
    }

    fn next_element(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<Item>> {
        let Mode::Array(scan) = &mut self.mode else {
            return Ok(None);
        };
        if let Some(p) = self.pending.take() {
            scan.replay = p;
        }
        let out = scan.next(&mut *self.reader, buf, self.limit)?;
        if matches!(out, None | Some(Item::BrokenArray { .. })) {
            self.mode = Mode::Done;
        }
        Ok(out)
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Append up to and including the next `\n` to `buf`, stopping early (without consuming more) once the
/// line holds more than `limit` bytes. Returns whether the line was read to its end.
fn read_line_prefix<R: BufRead + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> io::Result<bool> {
    let start = buf.len();
    loop {
        let available = r.fill_buf()?;
        if available.is_empty() {
            return Ok(true);
        }
        let room = (limit + 1).saturating_sub(buf.len() - start);
        let window = &available[..available.len().min(room)];
        match memchr(b'\n', window) {
            Some(i) => {
                buf.extend_from_slice(&window[..=i]);
                r.consume(i + 1);
                return Ok(true);
            }
            None => {
                let n = window.len();
                buf.extend_from_slice(window);
                r.consume(n);
                if buf.len() - start > limit {
                    return Ok(false);
                }
            }
        }
    }
}

/// Read up to and including the next `\n` into `buf`, but keep at most `limit` bytes: a longer line is
/// consumed to its end and reported as too long. Returns bytes consumed (0 at end of input).
fn read_line_limited<R: BufRead + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut too_long = false;
    loop {
        let available = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((consumed, too_long));
        }
        let (chunk, done) = match memchr(b'\n', available) {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let len = chunk.len();
        if !too_long {
            // The line end itself does not count against the limit.
            let content = trim_line_end(chunk).len();
            if buf.len() + content > limit {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        r.consume(len);
        consumed += len;
        if done {
            return Ok((consumed, too_long));
        }
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|b| *b == needle)
}

/// Streaming splitter for one top-level JSON array.
#[derive(Default)]
struct ArrayScan {
    started: bool,
    finished: bool,
    line: u64,
    replay: Vec<u8>,
    replay_at: usize,
}

impl ArrayScan {
    fn next_byte<R: BufRead + ?Sized>(&mut self, r: &mut R) -> io::Result<Option<u8>> {
        if self.replay_at < self.replay.len() {
            let b = self.replay[self.replay_at];
            self.replay_at += 1;
            return Ok(Some(b));
        }
        let buf = r.fill_buf()?;
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        r.consume(1);
        Ok(Some(b))
    }

    fn next<R: BufRead + ?Sized>(
        &mut self,
        r: &mut R,
        buf: &mut Vec<u8>,
        limit: usize,
    ) -> io::Result<Option<Item>> {
        if self.line == 0 {
            self.line = 1;
        }
        // Skip white space and separators up to the next element.
        let first = loop {
            let Some(b) = self.next_byte(r)? else {
                if self.started && !self.finished {
                    return Ok(Some(self.broken("the JSON array is not closed")));
                }
                return Ok(None);
            };
            if b == b'\n' {
                self.line += 1;
            }
            if b.is_ascii_whitespace() {
                continue;
            }
            if self.finished {
                return Ok(Some(self.broken("unexpected data after the JSON array")));
            }
            if !self.started {
                if b != b'[' {
                    return Ok(Some(self.broken("expected a JSON array")));
                }
                self.started = true;
                continue;
            }
            match b {
                b',' => continue,
                b']' => {
                    self.finished = true;
                    continue;
                }
                other => break other,
            }
        };
        let start_line = self.line;
        let mut depth: u32 = 0;
        let mut in_string = false;
        let mut escaped = false;
        let mut too_large = false;
        let mut b = first;
        loop {
            if !too_large {
                if buf.len() >= limit {
                    too_large = true;
                    buf.clear();
                } else {
                    buf.push(b);
                }
            }
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
            } else {
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
            if b == b'\n' {
                self.line += 1;
            }
            // Look at the next byte: at depth 0 outside a string, `,` or `]` ends the element.
            let Some(next) = self.next_byte(r)? else {
                return Ok(Some(self.broken("the JSON array is not closed")));
            };
            if depth == 0 && !in_string && (next == b',' || next == b']') {
                if next == b']' {
                    self.finished = true;
                }
                let len = buf
                    .iter()
                    .rposition(|c| !c.is_ascii_whitespace())
                    .map_or(0, |i| i + 1);
                buf.truncate(len);
                return Ok(Some(if too_large {
                    Item::TooLarge { line: start_line }
                } else {
                    Item::Record { line: start_line }
                }));
            }
            b = next;
        }
    }

    fn broken(&mut self, message: &str) -> Item {
        Item::BrokenArray {
            line: self.line,
            message: message.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &str, limit: usize) -> Vec<(Item, String)> {
        let mut s = Splitter::new(Box::new(io::Cursor::new(input.as_bytes().to_vec())), limit);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(item) = s.next_item(&mut buf).unwrap() {
            out.push((item, String::from_utf8_lossy(&buf).into_owned()));
        }
        out
    }

    fn rec(line: u64, text: &str) -> (Item, String) {
        (Item::Record { line }, text.to_owned())
    }

    #[test]
    fn ndjson_lines_crlf_blank_and_no_final_newline() {
        let got = split("\u{feff}{\"a\":1}\r\n\n{\"b\":2}\n  \n{\"c\":3}", 100);
        assert_eq!(
            got,
            vec![
                rec(1, "{\"a\":1}"),
                (Item::Blank, String::new()),
                rec(3, "{\"b\":2}"),
                (Item::Blank, String::new()),
                rec(5, "{\"c\":3}")
            ]
        );
    }

    #[test]
    fn long_lines_are_skipped_not_buffered() {
        let long = "x".repeat(50);
        let got = split(&format!("{{}}\n{long}\n{{\"a\":1}}\n"), 10);
        assert_eq!(
            got,
            vec![
                rec(1, "{}"),
                (Item::TooLarge { line: 2 }, String::new()),
                rec(3, "{\"a\":1}")
            ]
        );
    }

    #[test]
    fn json_array_elements_with_lines() {
        let got = split("[\n  {\"a\": \"x,]\"},\n  {\"b\": [1, 2]}\n, 7\n]\n", 100);
        assert_eq!(
            got,
            vec![
                rec(2, "{\"a\": \"x,]\"}"),
                rec(3, "{\"b\": [1, 2]}"),
                rec(4, "7")
            ]
        );
        assert_eq!(
            split("[{\"a\":1},{\"b\":2}]", 100),
            vec![rec(1, "{\"a\":1}"), rec(1, "{\"b\":2}")]
        );
        assert_eq!(split("[]", 100), vec![]);
        // A one-line array longer than the record limit is still split element by element.
        assert_eq!(
            split("[{\"a\":1},{\"b\":2}]", 8),
            vec![rec(1, "{\"a\":1}"), rec(1, "{\"b\":2}")]
        );
    }

    #[test]
    fn ndjson_whose_first_record_is_an_array() {
        let got = split("[1,2]\n{\"a\":1}\n", 100);
        assert_eq!(got, vec![rec(1, "[1,2]"), rec(2, "{\"a\":1}")]);
    }

    #[test]
    fn broken_arrays_are_reported() {
        let got = split("[{\"a\":1}, {\"b\":", 100);
        assert_eq!(got[0], rec(1, "{\"a\":1}"));
        assert!(matches!(got[1].0, Item::BrokenArray { .. }));
        let got = split("[{\"a\":1}] junk", 100);
        assert!(matches!(got[1].0, Item::BrokenArray { .. }), "{got:?}");
    }

    #[test]
    fn empty_input() {
        assert_eq!(split("", 100), vec![]);
    }
}
