//! Reading inputs into records without ever holding more than one record (up to a size limit) at a time.
//!
//! An input is a sequence of JSON values, framed by one rule that depends only on the bytes, never on how
//! they arrive (a pipe that delivers one byte at a time gives the same records as a file):
//!
//! - One value per line (NDJSON) is the common case: each line is a record, invalid lines included.
//! - A value still open at the end of its line (inside an object, an array or a string) continues onto the
//!   next lines, so a pretty-printed object is one record. But a broken record never swallows a line that
//!   starts a record: a line starting with `{` or `[` continues an open value only as an element of an
//!   open array (after `[` or `,`, where pretty-printers put it), and even there not when it is a complete
//!   record by itself (a whole JSON object, or a whole array whose first element is an object, alone on
//!   the line). Otherwise the open record is reported cut off, and the line is read on its own; so
//!   truncated NDJSON lines keep one result each.
//! - Once a value is complete, the rest of its last line belongs to it; anything there but white space
//!   makes the record invalid (the parser reports the trailing data).
//! - A top-level array whose first element is an object is a batch: each element is a record (with its
//!   index), and whatever follows the array is read too; the rest of the line after `]` must be blank.
//!   Any other top-level value that is not an object is one record (an invalid one, later).
//!
//! This needs a scanner that follows strings and nesting (and whether the innermost container is an
//! object), not a parser: a small state machine (`Scan`), run in tight loops on the common path. A line
//! is only checked "by itself" when it continues an open record and starts with `{` or `[`, which keeps
//! that second state machine off the common path. The record's bytes go into the caller's buffer up to the limit; past it they are dropped
//! and only the scanner state is kept, so a record over the limit is still framed and reported
//! [`ItemKind::TooLarge`]. A read error ends the input with one [`ItemKind::Invalid`] item
//! (`truncated_input` or `io_error`) instead of ending the run.
//!
//! Gzip is detected by its magic bytes. A UTF-8 byte-order mark at the start is skipped, `\r\n` line ends
//! are accepted, blank lines between records are counted and skipped.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::schema::{Problem, ProblemCode};

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
        decompressed(raw)
    }
}

/// `raw`, decompressed when it starts with the gzip magic bytes. The two bytes are read in a loop, so the
/// decision does not depend on how many bytes the first read returns.
#[expect(
    clippy::indexing_slicing,
    reason = "positions into the buffer are bounded by its length just before; the reader fuzz target checks it"
)]
fn decompressed(mut raw: Box<dyn Read + Send>) -> io::Result<Box<dyn BufRead + Send>> {
    let mut magic = [0u8; 2];
    let mut n = 0;
    while n < magic.len() {
        match raw.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let joined = io::Cursor::new(magic).take(n as u64).chain(raw);
    Ok(if magic[..n] == [0x1f, 0x8b] {
        Box::new(BufReader::with_capacity(
            1 << 16,
            MultiGzDecoder::new(BufReader::with_capacity(1 << 16, joined)),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 16, joined))
    })
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
pub struct Item {
    /// The line the record (or blank line, or problem) starts on, 1-based.
    pub line: u64,
    /// The record's position in its JSON array (0-based), when it is an element of one.
    pub index: Option<u64>,
    /// What was read.
    pub kind: ItemKind,
    /// Help for the first record of an input that looks like something else than profiles; given once
    /// per input.
    pub hint: Option<Hint>,
    /// A one-line [`ItemKind::Record`] framed without scanning it: the line after it starts a record
    /// and this one cannot take it as an array element, so the record ends here whether or not it is
    /// complete. Only when it does not parse does it matter which: [`cut_off`] tells.
    pub unchecked: bool,
}

/// For an [`Item::unchecked`] record on `line` whose `bytes` do not parse: the problem to report instead
/// when the record is not complete (the one a scanned record gets).
pub fn cut_off(line: u64, bytes: &[u8]) -> Option<Problem> {
    let mut scan = Scan::default();
    scan.feed(bytes, false);
    (!scan.complete()).then(|| cut_before_problem(line))
}

/// The problem of a record that is open at the end of line `last`, where the next line starts a record.
fn cut_before_problem(last: u64) -> Problem {
    Problem::new(
        "",
        ProblemCode::InvalidJson,
        format!(
            "the JSON value is not complete at the end of line {last}, where the next line starts a new record"
        ),
    )
}

/// What an [`Item`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemKind {
    /// A record; its bytes are in the buffer given to [`Splitter::next_item`].
    Record,
    /// A record longer than the limit, skipped without being held.
    TooLarge,
    /// A blank line between records: counted, no result.
    Blank,
    /// Something that is invalid before it can be parsed: a record cut off, data after an array, an input
    /// that could not be read to its end.
    Invalid(Problem),
}

/// What an input seems to be instead of profiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// A FHIR resource of this type (`Bundle`, `Patient`, ...).
    Fhir(String),
    /// A CSV file.
    Csv,
}

impl Hint {
    /// One line of help.
    pub fn help(&self) -> String {
        match self {
            Hint::Fhir(kind) => format!(
                "this is a FHIR `{kind}`, not a patient profile: screen FHIR input with `--from fhir`"
            ),
            Hint::Csv => {
                "this looks like CSV: medscreen reads JSON, one profile per line (NDJSON) \
                          or a JSON array of profiles"
                    .to_owned()
            }
        }
    }

    /// Give the help to a record's problems: on the one it explains (`/resourceType` for FHIR), moved
    /// first, or else on the first.
    pub fn apply(&self, problems: &mut Vec<Problem>) {
        let explained = match self {
            Hint::Fhir(_) => problems.iter().position(|p| p.pointer == "/resourceType"),
            Hint::Csv => None,
        };
        if let Some(at) = explained {
            let p = problems.remove(at);
            problems.insert(0, p);
        }
        if let Some(first) = problems.first_mut() {
            first.help = Some(self.help());
        }
    }
}

/// Splits one input into records.
pub struct Splitter {
    reader: Box<dyn BufRead + Send>,
    /// Bytes to read again before `reader`: a byte-order mark prefix that turned out not to be one, or a
    /// one-line batch that cut off the record before it.
    replay: Vec<u8>,
    replay_at: usize,
    /// Records longer than this are too large.
    limit: usize,
    /// The line of the next byte.
    line: u64,
    state: State,
    /// A record read together with the one before it (the line that cut it off), returned next.
    carry: Option<(Item, Vec<u8>)>,
    /// Records returned so far.
    records: u64,
    /// Whether the FHIR hint was given.
    fhir_hinted: bool,
    /// Set when the input could not be opened: the one item to return.
    open_error: Option<io::Error>,
}

enum State {
    /// Before the byte-order mark check.
    Start,
    /// Between top-level values.
    Top,
    /// Inside a batch (a top-level array of records).
    Batch {
        /// Index of the next element.
        next: u64,
        /// Whether an element was just read (a `,` or `]` is due).
        after_element: bool,
    },
    Done,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl Splitter {
    /// Split `reader`, reporting records longer than `limit` bytes as too large.
    pub fn new(reader: Box<dyn BufRead + Send>, limit: usize) -> Splitter {
        Splitter {
            reader,
            replay: Vec::new(),
            replay_at: 0,
            limit,
            line: 1,
            state: State::Start,
            carry: None,
            records: 0,
            fhir_hinted: false,
            open_error: None,
        }
    }

    /// Open `source` and split it; if it cannot be opened, the only item is an `io_error`.
    pub fn open(source: &Source, limit: usize) -> Splitter {
        match source.open() {
            Ok(reader) => Splitter::new(reader, limit),
            Err(e) => {
                let mut s = Splitter::new(Box::new(io::empty()), limit);
                s.open_error = Some(e);
                s
            }
        }
    }

    /// The next item; `buf` receives a record's bytes. `None` at the end of the input.
    pub fn next_item(&mut self, buf: &mut Vec<u8>) -> Option<Item> {
        buf.clear();
        if let Some(e) = self.open_error.take() {
            self.state = State::Done;
            return Some(self.read_error(&e, 1, None));
        }
        if let Some((item, bytes)) = self.carry.take() {
            *buf = bytes;
            return Some(item);
        }
        loop {
            let step = match self.state {
                State::Done => return None,
                State::Start => self.skip_bom(),
                State::Top => self.top(buf),
                State::Batch {
                    next,
                    after_element,
                } => self.batch(buf, next, after_element),
            };
            match step {
                Ok(Some(item)) => {
                    if item.kind != ItemKind::Blank {
                        self.records += 1;
                    }
                    return Some(item);
                }
                Ok(None) => {}
                Err(Failed { line, index, error }) => {
                    self.state = State::Done;
                    return Some(self.read_error(&error, line, index));
                }
            }
        }
    }

    fn read_error(&self, e: &io::Error, line: u64, index: Option<u64>) -> Item {
        let problem = if e.kind() == io::ErrorKind::UnexpectedEof {
            Problem {
                help: Some(
                    "the records before this one were read; check that the input was copied whole"
                        .to_owned(),
                ),
                ..Problem::new(
                    "",
                    ProblemCode::TruncatedInput,
                    format!("the input ends too early: {e}"),
                )
            }
        } else {
            Problem::new(
                "",
                ProblemCode::IoError,
                format!("the input could not be read: {e}"),
            )
        };
        Item {
            line,
            index,
            kind: ItemKind::Invalid(problem),
            hint: None,
            unchecked: false,
        }
    }

    // ---- reading bytes

    /// The next bytes, an empty slice at the end of the input.
    #[expect(
        clippy::indexing_slicing,
        reason = "positions into the buffer are bounded by its length just before; the reader fuzz target checks it"
    )]
    fn fill(&mut self) -> io::Result<&[u8]> {
        if self.replay_at < self.replay.len() {
            return Ok(&self.replay[self.replay_at..]);
        }
        loop {
            match self.reader.fill_buf() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Reborrowing here is what the borrow checker needs; the result is the same buffer.
                Err(e) => return Err(e),
                Ok(_) => break,
            }
        }
        self.reader.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        if self.replay_at < self.replay.len() {
            self.replay_at += n;
            if self.replay_at == self.replay.len() {
                self.replay = Vec::new();
                self.replay_at = 0;
            }
        } else {
            self.reader.consume(n);
        }
    }

    /// Skip a byte-order mark, however its three bytes arrive.
    #[expect(
        clippy::indexing_slicing,
        reason = "positions into the buffer are bounded by its length just before; the reader fuzz target checks it"
    )]
    fn skip_bom(&mut self) -> Result<Option<Item>, Failed> {
        let mut matched = 0;
        while matched < BOM.len() {
            let here = self.fill().map_err(|e| Failed::at(1, None, e))?;
            match here.first() {
                Some(&b) if b == BOM[matched] => {
                    self.consume(1);
                    matched += 1;
                }
                _ => break,
            }
        }
        if matched < BOM.len() {
            // Not a byte-order mark after all: those bytes are data.
            self.replay = BOM[..matched].to_vec();
        }
        self.state = State::Top;
        Ok(None)
    }

    // ---- top level

    /// Between top-level values: a blank line, a batch, or a record.
    #[expect(
        clippy::indexing_slicing,
        reason = "positions into the buffer are bounded by its length just before; the reader fuzz target checks it"
    )]
    fn top(&mut self, buf: &mut Vec<u8>) -> Result<Option<Item>, Failed> {
        let line = self.line;
        let limit = self.limit;
        let mut rec = Rec::new(line, None, false);
        // Leading white space is kept: it is part of the record's line (and of its columns).
        let first = loop {
            let here = self.fill().map_err(|e| Failed::at(line, None, e))?;
            if here.is_empty() {
                self.state = State::Done;
                buf.clear();
                return Ok((rec.len > 0).then(|| self.blank(line)));
            }
            match here.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\r')) {
                Some(i) if here[i] == b'\n' => {
                    self.consume(i + 1);
                    self.line += 1;
                    buf.clear();
                    return Ok(Some(self.blank(line)));
                }
                Some(i) => {
                    let b = here[i];
                    rec.store(buf, &here[..i], limit);
                    self.consume(i);
                    break b;
                }
                None => {
                    let n = here.len();
                    rec.store(buf, here, limit);
                    self.consume(n);
                }
            }
        };
        if first == b'{'
            && let Some(item) = self.unchecked_line(buf, &mut rec)
        {
            return Ok(Some(item));
        }
        if first != b'[' {
            return self.read_value(buf, rec).map(Some);
        }
        // An array: a batch if its first element is an object, one record otherwise.
        self.consume(1);
        rec.store(buf, b"[", limit);
        rec.scan.depth = 1;
        rec.scan.last = b'[';
        let next = loop {
            let here = self.fill().map_err(|e| Failed::at(line, None, e))?;
            if here.is_empty() {
                return self.read_value(buf, rec).map(Some);
            }
            let len = here.len();
            match here.iter().position(|b| !is_ws(*b)) {
                Some(i) => {
                    let b = here[i];
                    self.ws_in_value(buf, &mut rec, i);
                    break b;
                }
                None => self.ws_in_value(buf, &mut rec, len),
            }
        };
        match next {
            b'{' => {
                buf.clear();
                self.state = State::Batch {
                    next: 0,
                    after_element: false,
                };
                Ok(None)
            }
            b']' => {
                // An empty batch.
                self.consume(1);
                buf.clear();
                self.after_array()
            }
            _ => self.read_value(buf, rec).map(Some),
        }
    }

    /// The common case without a scan (see [`Item::unchecked`]): a line starting with `{` whose last byte
    /// that is not white space is not `[` or `,`, followed by a line starting with `{` or `[`. The whole
    /// line and the next byte must be in the read buffer; otherwise `None`, and the line is scanned.
    #[expect(
        clippy::indexing_slicing,
        reason = "positions into the buffer are bounded by its length just before; the reader fuzz target checks it"
    )]
    fn unchecked_line(&mut self, buf: &mut Vec<u8>, rec: &mut Rec) -> Option<Item> {
        let limit = self.limit;
        let here = self.fill().ok()?;
        let end = find_line_end(here)?;
        let line = &here[..end];
        let last = line.iter().rposition(|b| !is_ws(*b)).map(|i| line[i]);
        if !matches!(here.get(end + 1), Some(b'{' | b'[')) || matches!(last, Some(b'[' | b',')) {
            return None;
        }
        rec.store(buf, line, limit);
        self.consume(end + 1);
        self.line += 1;
        let done = std::mem::replace(rec, Rec::new(0, None, false));
        let mut item = self.finish(buf, done);
        item.unchecked = item.kind == ItemKind::Record;
        Some(item)
    }

    /// Keep `n` bytes of white space inside an open value, counting its lines; a line end makes the next
    /// line a continuation line.
    #[expect(
        clippy::indexing_slicing,
        reason = "positions into the buffer are bounded by its length just before; the reader fuzz target checks it"
    )]
    fn ws_in_value(&mut self, buf: &mut Vec<u8>, rec: &mut Rec, n: usize) {
        let limit = self.limit;
        let mut lines = 0;
        let Ok(here) = self.fill() else { return };
        let ws = &here[..n];
        let mut from = 0;
        for (k, b) in ws.iter().enumerate() {
            if *b == b'\n' {
                rec.store(buf, &ws[from..=k], limit);
                from = k + 1;
                lines += 1;
                rec.new_line();
            }
        }
        rec.store(buf, &ws[from..], limit);
        self.line += lines;
        self.consume(n);
    }

    fn blank(&self, line: u64) -> Item {
        Item {
            line,
            index: None,
            kind: ItemKind::Blank,
            hint: None,
            unchecked: false,
        }
    }

    /// After the `]` of a batch: the rest of the line must be blank.
    #[expect(
        clippy::indexing_slicing,
        reason = "positions into the buffer are bounded by its length just before; the reader fuzz target checks it"
    )]
    fn after_array(&mut self) -> Result<Option<Item>, Failed> {
        let line = self.line;
        self.state = State::Top;
        let mut trailing = false;
        loop {
            let here = self.fill().map_err(|e| Failed::at(line, None, e))?;
            if here.is_empty() {
                break;
            }
            let (n, end) = match here.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (here.len(), false),
            };
            trailing |= here[..n].iter().any(|b| !is_ws(*b));
            self.consume(n);
            if end {
                self.line += 1;
                break;
            }
        }
        Ok(trailing.then(|| Item {
            line,
            index: None,
            kind: ItemKind::Invalid(Problem::new(
                "",
                ProblemCode::InvalidJson,
                "unexpected data after the JSON array on its last line",
            )),
            hint: None,
            unchecked: false,
        }))
    }

    // ---- batches

    #[expect(
        clippy::indexing_slicing,
        reason = "positions into the buffer are bounded by its length just before; the reader fuzz target checks it"
    )]
    fn batch(
        &mut self,
        buf: &mut Vec<u8>,
        next: u64,
        after_element: bool,
    ) -> Result<Option<Item>, Failed> {
        let b = loop {
            let line = self.line;
            let here = self.fill().map_err(|e| Failed::at(line, None, e))?;
            if here.is_empty() {
                self.state = State::Done;
                return Ok(Some(Item {
                    line,
                    index: None,
                    kind: ItemKind::Invalid(Problem::new(
                        "",
                        ProblemCode::InvalidJson,
                        "the JSON array is not closed at the end of the input",
                    )),
                    hint: None,
                    unchecked: false,
                }));
            }
            match here.iter().position(|b| !is_ws(*b)) {
                Some(i) => {
                    let b = here[i];
                    self.skip_ws(i);
                    break b;
                }
                None => {
                    let n = here.len();
                    self.skip_ws(n);
                }
            }
        };
        if after_element {
            return match b {
                b',' => {
                    self.consume(1);
                    self.state = State::Batch {
                        next,
                        after_element: false,
                    };
                    Ok(None)
                }
                b']' => {
                    self.consume(1);
                    self.after_array()
                }
                _ => {
                    // The array is broken: read on as top-level records from here.
                    self.state = State::Top;
                    Ok(Some(Item {
                        line: self.line,
                        index: None,
                        kind: ItemKind::Invalid(Problem::new(
                            "",
                            ProblemCode::InvalidJson,
                            format!(
                                "expected `,` or `]` after element {} of the JSON array",
                                next - 1
                            ),
                        )),
                        hint: None,
                        unchecked: false,
                    }))
                }
            };
        }
        if b == b']' {
            // A trailing comma before the end: accepted.
            self.consume(1);
            return self.after_array();
        }
        self.state = State::Batch {
            next: next + 1,
            after_element: true,
        };
        let rec = Rec::new(self.line, Some(next), true);
        self.read_value(buf, rec).map(Some)
    }

    /// Consume `n` bytes of white space, counting lines.
    #[expect(
        clippy::indexing_slicing,
        reason = "positions into the buffer are bounded by its length just before; the reader fuzz target checks it"
    )]
    fn skip_ws(&mut self, n: usize) {
        if let Ok(here) = self.fill() {
            let lines = here[..n].iter().filter(|b| **b == b'\n').count() as u64;
            self.line += lines;
        }
        self.consume(n);
    }

    // ---- one value

    /// Read the value `rec` has begun (at its first byte, not yet consumed, or inside it) to its end.
    #[expect(
        clippy::indexing_slicing,
        reason = "positions into the buffer are bounded by its length just before; the reader fuzz target checks it"
    )]
    fn read_value(&mut self, buf: &mut Vec<u8>, mut rec: Rec) -> Result<Item, Failed> {
        let limit = self.limit;
        loop {
            let (line, index) = (rec.line, rec.index);
            let here = self.fill().map_err(|e| Failed::at(line, index, e))?;
            if here.is_empty() {
                return Ok(self.end_of_input(buf, rec));
            }
            match &mut rec.solo {
                None => {
                    let (n, stop) = rec.scan.feed(here, rec.element);
                    match stop {
                        Stop::More => {
                            rec.store(buf, &here[..n], limit);
                            self.consume(n);
                        }
                        Stop::End => {
                            rec.store(buf, &here[..n], limit);
                            self.consume(n);
                            return Ok(self.finish(buf, rec));
                        }
                        Stop::Line => {
                            rec.store(buf, &here[..n - 1], limit);
                            self.consume(n);
                            self.line += 1;
                            if let Some(item) = self.line_end(buf, &mut rec) {
                                return Ok(item);
                            }
                        }
                    }
                }
                Some(solo) => {
                    // A continuation line that may be a record by itself: both state machines, byte by byte.
                    let mut used = here.len();
                    let mut event = None;
                    let mut new = false;
                    for (k, &b) in here.iter().enumerate() {
                        if b != b'\n' {
                            solo.feed(b);
                            if *solo == Solo::New {
                                used = k;
                                new = true;
                                break;
                            }
                        }
                        match rec.scan.step(b, rec.element) {
                            Step::Go => {}
                            Step::Line => {
                                used = k;
                                event = Some(Stop::Line);
                                break;
                            }
                            Step::EndAfter => {
                                used = k + 1;
                                event = Some(Stop::End);
                                break;
                            }
                            Step::EndBefore => {
                                used = k;
                                event = Some(Stop::End);
                                break;
                            }
                        }
                        if *solo == Solo::No {
                            used = k + 1;
                            break;
                        }
                    }
                    let no = *solo == Solo::No;
                    rec.store(buf, &here[..used], limit);
                    if new {
                        self.consume(used);
                        return Ok(self.cut_before_line(buf, &mut rec));
                    }
                    match event {
                        Some(Stop::Line) => {
                            self.consume(used + 1);
                            self.line += 1;
                            if let Some(item) = self.line_end(buf, &mut rec) {
                                return Ok(item);
                            }
                        }
                        Some(Stop::End) => {
                            self.consume(used);
                            return Ok(self.finish(buf, rec));
                        }
                        Some(Stop::More) | None => {
                            self.consume(used);
                            if no {
                                rec.not_by_itself(buf, limit);
                            }
                        }
                    }
                }
            }
        }
    }

    /// A line of an open value ended (its `\n` consumed, not stored). Returns the item when the record
    /// ends here.
    fn line_end(&mut self, buf: &mut Vec<u8>, rec: &mut Rec) -> Option<Item> {
        if rec.solo.take() == Some(Solo::After) {
            return Some(self.cut(buf, rec, self.line - 1));
        }
        if !rec.element && rec.scan.complete() {
            return Some(self.finish(buf, std::mem::replace(rec, Rec::new(0, None, false))));
        }
        rec.store(buf, b"\n", self.limit);
        rec.new_line();
        None
    }

    /// The input ended inside `rec`.
    fn end_of_input(&mut self, buf: &mut Vec<u8>, mut rec: Rec) -> Item {
        let ended_line_is_a_record = rec.solo.take() == Some(Solo::After);
        if ended_line_is_a_record {
            let ended = self.line;
            return self.cut(buf, &mut rec, ended);
        }
        if rec.scan.complete() {
            // A scalar element ends with the input; the batch then reports the missing `]`.
            return self.finish(buf, rec);
        }
        self.state = State::Done;
        let item = if rec.len > self.limit {
            rec.kind_item(ItemKind::TooLarge)
        } else {
            rec.kind_item(ItemKind::Invalid(Problem::new(
                "",
                ProblemCode::InvalidJson,
                "the JSON value is not complete at the end of the input",
            )))
        };
        buf.clear();
        item
    }

    /// The current line starts a new record: the open record ended incomplete with the line before. The
    /// line is read again from its start (its leading white space is all that was read of it).
    fn cut_before_line(&mut self, buf: &mut Vec<u8>, rec: &mut Rec) -> Item {
        let line_len = rec.len - rec.line_start;
        let pending_len = rec.line_start.saturating_sub(1);
        if line_len <= buf.len() {
            self.replay = buf.split_off(buf.len() - line_len);
            self.replay_at = 0;
        }
        buf.clear();
        self.state = State::Top;
        let last = rec.line + u64::from(rec.newlines).saturating_sub(1);
        let cr = usize::from(rec.line_start >= 2 && rec.last_before_line == b'\r');
        let mut item = if pending_len - cr.min(pending_len) > self.limit {
            rec.kind_item(ItemKind::TooLarge)
        } else {
            rec.kind_item(ItemKind::Invalid(cut_before_problem(last)))
        };
        // As the unscanned path gives it (see `Item::unchecked`).
        if !rec.element {
            item.hint = self.hint(rec);
        }
        item
    }

    /// The line just ended is a record by itself: the open record before it is cut off, and the line is
    /// returned next (a one-line batch is read again from its bytes, to be split into its elements). A
    /// batch the open record was in is abandoned.
    fn cut(&mut self, buf: &mut Vec<u8>, rec: &mut Rec, ended: u64) -> Item {
        let line_len = rec.len - rec.line_start;
        // The open record's bytes, without the line end stored after them.
        let pending_len = rec.line_start.saturating_sub(1);
        let mut line_rec = Rec {
            len: line_len,
            last: rec.last,
            ..Rec::new(ended, None, false)
        };
        let line_bytes = if line_len <= buf.len() {
            buf.split_off(buf.len() - line_len)
        } else {
            Vec::new()
        };
        line_rec.note_head(&line_bytes);
        buf.clear();
        self.state = State::Top;
        if line_bytes.trim_ascii_start().starts_with(b"[") {
            // The bytes are at most the limit, and only they are held: the caller's buffer is empty.
            self.replay = line_bytes;
            self.replay.push(b'\n');
            self.replay_at = 0;
            self.line = ended;
        } else {
            let (line_item, line_bytes) = self.record_item(line_rec, line_bytes);
            self.carry = Some((line_item, line_bytes));
        }
        let last = rec.line + u64::from(rec.newlines).saturating_sub(1);
        if pending_len > self.limit {
            rec.kind_item(ItemKind::TooLarge)
        } else {
            rec.kind_item(ItemKind::Invalid(Problem::new(
                "",
                ProblemCode::InvalidJson,
                format!(
                    "the JSON value is not complete at the end of line {last}, and line {ended} is a record by itself"
                ),
            )))
        }
    }

    /// The record `rec` ended; its bytes are in `buf` unless it is too large.
    fn finish(&mut self, buf: &mut Vec<u8>, rec: Rec) -> Item {
        let bytes = std::mem::take(buf);
        let (item, bytes) = self.record_item(rec, bytes);
        *buf = bytes;
        item
    }

    fn record_item(&mut self, rec: Rec, mut bytes: Vec<u8>) -> (Item, Vec<u8>) {
        // The `\r` of a top-level value's line end is not part of it, and does not count.
        let cr = !rec.element && rec.last == b'\r';
        let too_large = rec.len - usize::from(cr) > self.limit;
        if cr && !too_large {
            bytes.pop();
        }
        let hint = self.hint(&rec);
        let mut item = rec.kind_item(if too_large {
            ItemKind::TooLarge
        } else {
            ItemKind::Record
        });
        item.hint = hint;
        if too_large {
            bytes.clear();
        }
        (item, bytes)
    }

    /// Help for the first record that looks like FHIR, or for a first line that looks like CSV.
    /// From the record's first bytes only, so that a record gets the same hint on every path.
    #[expect(
        clippy::indexing_slicing,
        reason = "positions into the buffer are bounded by its length just before; the reader fuzz target checks it"
    )]
    fn hint(&mut self, rec: &Rec) -> Option<Hint> {
        let head = &rec.head[..rec.head_len];
        if !self.fhir_hinted
            && let Some(kind) = fhir_resource_type(head)
        {
            self.fhir_hinted = true;
            return Some(Hint::Fhir(kind));
        }
        (self.records == 0 && !rec.element && rec.newlines == 0 && looks_like_csv(head))
            .then_some(Hint::Csv)
    }
}

/// The resource type, when `bytes` is a JSON object whose first key is `resourceType` (as FHIR JSON writes
/// it).
#[expect(
    clippy::indexing_slicing,
    reason = "positions into the buffer are bounded by its length just before; the reader fuzz target checks it"
)]
fn fhir_resource_type(bytes: &[u8]) -> Option<String> {
    let mut rest = bytes
        .trim_ascii_start()
        .strip_prefix(b"{")?
        .trim_ascii_start();
    rest = rest.strip_prefix(b"\"resourceType\"")?.trim_ascii_start();
    rest = rest.strip_prefix(b":")?.trim_ascii_start();
    rest = rest.strip_prefix(b"\"")?;
    let end = rest.iter().position(|b| !b.is_ascii_alphanumeric())?;
    (rest.get(end) == Some(&b'"') && end > 0)
        .then(|| String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// A first line such as `id,age,sex` or `"id","age"`: it starts with a letter or a quote and has a comma.
fn looks_like_csv(bytes: &[u8]) -> bool {
    let line = bytes.trim_ascii_start();
    line.first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'"')
        && line.contains(&b',')
}

/// The reason a read failed, and where.
struct Failed {
    line: u64,
    index: Option<u64>,
    error: io::Error,
}

impl Failed {
    fn at(line: u64, index: Option<u64>, error: io::Error) -> Failed {
        Failed { line, index, error }
    }
}

/// The record being read.
struct Rec {
    line: u64,
    index: Option<u64>,
    /// An array element (ends with its value) rather than a top-level value (ends with its line).
    element: bool,
    scan: Scan,
    /// Bytes of the record so far (saturating); they are in the buffer while this is within the limit.
    len: usize,
    /// `len` where the current continuation line starts.
    line_start: usize,
    /// The last byte stored before the current continuation line's `\n`.
    last_before_line: u8,
    /// Line ends inside the record.
    newlines: u32,
    /// While a continuation line may be a record by itself: that line's own state.
    solo: Option<Solo>,
    /// The last byte stored, and the one before it.
    last: u8,
    before_last: u8,
    /// The first bytes, for the hint of a record over the limit.
    head: [u8; 96],
    head_len: usize,
}

impl Rec {
    fn new(line: u64, index: Option<u64>, element: bool) -> Rec {
        Rec {
            line,
            index,
            element,
            scan: Scan::default(),
            len: 0,
            line_start: 0,
            last_before_line: 0,
            newlines: 0,
            solo: None,
            last: 0,
            before_last: 0,
            head: [0; 96],
            head_len: 0,
        }
    }

    fn kind_item(&self, kind: ItemKind) -> Item {
        Item {
            line: self.line,
            index: self.index,
            kind,
            hint: None,
            unchecked: false,
        }
    }

    /// A line end was stored: the next line is a continuation line, and may start a new record.
    fn new_line(&mut self) {
        self.line_start = self.len;
        self.last_before_line = self.before_last;
        self.newlines = self.newlines.saturating_add(1);
        self.solo = Some(Solo::Start(self.scan.takes_element()));
    }

    /// Keep `bytes` while the record is within the limit (plus one byte for a `\r` before its line end).
    /// Past it, only the current continuation line is kept, while it may still be a record by itself.
    #[expect(
        clippy::indexing_slicing,
        reason = "positions into the buffer are bounded by its length just before; the reader fuzz target checks it"
    )]
    fn store(&mut self, buf: &mut Vec<u8>, bytes: &[u8], limit: usize) {
        self.note_head(bytes);
        match *bytes {
            [] => {}
            [b] => (self.before_last, self.last) = (self.last, b),
            [.., a, b] => (self.before_last, self.last) = (a, b),
        }
        if let Some(at) = bytes.iter().rposition(|b| !is_ws(*b)) {
            self.scan.last = bytes[at];
        }
        let cap = limit.saturating_add(1);
        let before = self.len;
        self.len = self.len.saturating_add(bytes.len());
        if self.len <= cap {
            buf.extend_from_slice(bytes);
            return;
        }
        if self.solo.is_some() && self.len - self.line_start <= cap {
            if before <= cap {
                buf.drain(..self.line_start);
            }
            buf.extend_from_slice(bytes);
            return;
        }
        buf.clear();
    }

    /// Keep the first bytes from the first one that is not white space, for the hint.
    #[expect(
        clippy::indexing_slicing,
        reason = "positions into the buffer are bounded by its length just before; the reader fuzz target checks it"
    )]
    fn note_head(&mut self, bytes: &[u8]) {
        let bytes = if self.head_len == 0 {
            bytes.trim_ascii_start()
        } else {
            bytes
        };
        let n = bytes.len().min(self.head.len() - self.head_len);
        self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[..n]);
        self.head_len += n;
    }

    /// The current continuation line turned out not to be a record by itself.
    fn not_by_itself(&mut self, buf: &mut Vec<u8>, limit: usize) {
        self.solo = None;
        if self.len > limit.saturating_add(1) {
            buf.clear();
        }
    }
}

/// Whether a continuation line starts a new record: it starts with `{` or `[` where the open value
/// cannot take an element ([`Solo::New`], known at its first byte), or it is a complete record by itself
/// ([`Solo::After`] at its end): a JSON object, or an array whose first element is an object, with only
/// white space around it. Fed every byte of the line but its `\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Solo {
    /// Before the first byte that is not white space; whether the open value can take an element.
    Start(bool),
    /// The line starts a new record.
    New,
    /// After `[`, before the first element.
    ArrayStart,
    In(Scan),
    /// The value is complete; only white space may follow.
    After,
    No,
}

impl Solo {
    fn feed(&mut self, b: u8) {
        *self = match *self {
            Solo::Start(takes) if is_ws(b) => Solo::Start(takes),
            Solo::Start(false) if b == b'{' || b == b'[' => Solo::New,
            Solo::Start(true) if b == b'{' => Solo::In(Scan {
                depth: 1,
                objects: 1,
                ..Scan::default()
            }),
            Solo::Start(true) if b == b'[' => Solo::ArrayStart,
            Solo::ArrayStart if is_ws(b) => Solo::ArrayStart,
            Solo::ArrayStart if b == b'{' => Solo::In(Scan {
                depth: 2,
                objects: 2,
                ..Scan::default()
            }),
            Solo::In(mut s) => {
                s.step(b, false);
                if s.done { Solo::After } else { Solo::In(s) }
            }
            Solo::After if is_ws(b) => Solo::After,
            _ => Solo::No,
        };
    }
}

/// The bytes that can change a scan's state inside a value.
#[expect(
    clippy::indexing_slicing,
    reason = "evaluated at compile time: a byte indexes a 256-entry table"
)]
static STRUCTURAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut k = 0;
    let bytes = *b"\"\\{}[]\n";
    while k < bytes.len() {
        t[bytes[k] as usize] = true;
        k += 1;
    }
    t
};

/// What the scanner saw.
enum Stop {
    /// The bytes ended inside the value.
    More,
    /// A line end (the count includes the `\n`).
    Line,
    /// An array element ended (the count includes its last byte).
    End,
}

enum Step {
    Go,
    Line,
    /// The element ends with this byte.
    EndAfter,
    /// The element ended before this byte.
    EndBefore,
}

/// Where a value's scan is: nesting, strings, and whether the value is complete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Scan {
    depth: u32,
    /// Bit `d - 1` is set when the container at depth `d` (up to 128) is an object.
    objects: u128,
    /// The last byte that is not white space (outside strings when it matters: see
    /// [`Scan::takes_element`]); kept by [`Rec::store`], not per byte.
    last: u8,
    in_str: bool,
    escaped: bool,
    /// An element that is a bare word or number (it ends at white space, `,` or `]`).
    scalar: bool,
    /// The value is complete (for a top-level value: the rest of its line is trailing data, if anything).
    done: bool,
}

impl Scan {
    /// Whether a top-level value whose line ends here is complete (or can never be).
    fn complete(&self) -> bool {
        self.done || self.scalar || (self.depth == 0 && !self.in_str)
    }

    /// Whether a line starting with `{` or `[` could continue the value from here: only as an array
    /// element, where pretty-printers start a line with a bracket. (After a key's `:` they keep the
    /// bracket on the key's line; a key, a `,` or a closing bracket cannot start with one.)
    fn takes_element(&self) -> bool {
        let in_array = match self.depth {
            0 => return false,
            d @ 1..=128 => self.objects & (1u128 << (d - 1)) == 0,
            _ => true,
        };
        !self.in_str && !self.done && in_array && matches!(self.last, b'[' | b',')
    }

    /// One byte.
    #[inline]
    fn step(&mut self, b: u8, element: bool) -> Step {
        if self.in_str {
            if b == b'\n' {
                // A raw line end inside a string: the line ends with the value open.
                self.escaped = false;
                return Step::Line;
            }
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_str = false;
                if self.depth == 0 {
                    self.done = true;
                    if element {
                        return Step::EndAfter;
                    }
                }
            }
            return Step::Go;
        }
        if self.scalar {
            if is_ws(b) || b == b',' || b == b']' {
                self.done = true;
                return Step::EndBefore;
            }
            return Step::Go;
        }
        if b == b'\n' {
            return Step::Line;
        }
        if self.done {
            return Step::Go;
        }
        match b {
            b'"' => self.in_str = true,
            b'{' | b'[' => {
                self.depth = self.depth.saturating_add(1);
                if self.depth <= 128 {
                    let bit = 1u128 << (self.depth - 1);
                    if b == b'{' {
                        self.objects |= bit;
                    } else {
                        self.objects &= !bit;
                    }
                }
            }
            b'}' | b']' if self.depth > 0 => {
                self.depth -= 1;
                if self.depth == 0 {
                    self.done = true;
                    if element {
                        return Step::EndAfter;
                    }
                }
            }
            b' ' | b'\t' | b'\r' => {}
            _ if self.depth == 0 => {
                // A bare word, a number, or a stray closing bracket.
                if element {
                    self.scalar = true;
                } else {
                    self.done = true;
                }
            }
            _ => {}
        }
        Step::Go
    }

    /// Scan `bytes` up to the first line end or the end of an element: how many bytes are used, and why
    /// the scan stopped. Does what [`Scan::step`] on each byte would do, faster: string contents are
    /// skipped eight bytes at a time, the bytes between strings with a table, and the rest of a complete
    /// top-level value's line is only searched for its end.
    #[expect(
        clippy::indexing_slicing,
        reason = "positions into the buffer are bounded by its length just before; the reader fuzz target checks it"
    )]
    fn feed(&mut self, bytes: &[u8], element: bool) -> (usize, Stop) {
        let n = bytes.len();
        let mut i = 0;
        while i < n {
            if self.in_str && !self.escaped {
                i += string_run(&bytes[i..]);
                match bytes.get(i) {
                    None => break,
                    Some(b'"') => {
                        i += 1;
                        self.in_str = false;
                        if self.depth == 0 {
                            self.done = true;
                            if element {
                                return (i, Stop::End);
                            }
                        }
                        continue;
                    }
                    // An escape: skip the escaped byte too, unless it is a line end (see `step`).
                    Some(b'\\') if bytes.get(i + 1).is_some_and(|b| *b != b'\n') => {
                        i += 2;
                        continue;
                    }
                    Some(_) => {}
                }
            } else if self.depth > 0 && !self.in_str {
                while i < n && !STRUCTURAL[usize::from(bytes[i])] {
                    i += 1;
                }
                match bytes.get(i) {
                    None => break,
                    Some(b'"') => {
                        i += 1;
                        self.in_str = true;
                        continue;
                    }
                    Some(_) => {}
                }
            } else if self.done && !element {
                return match bytes[i..].iter().position(|b| *b == b'\n') {
                    Some(k) => (i + k + 1, Stop::Line),
                    None => (n, Stop::More),
                };
            }
            match self.step(bytes[i], element) {
                Step::Go => i += 1,
                Step::Line => return (i + 1, Stop::Line),
                Step::EndAfter => return (i + 1, Stop::End),
                Step::EndBefore => return (i, Stop::End),
            }
        }
        (n, Stop::More)
    }
}

/// Where the first `\n` in `bytes` is, eight bytes at a time (as in [`string_run`]).
#[expect(
    clippy::indexing_slicing,
    reason = "positions into the buffer are bounded by its length just before; the reader fuzz target checks it"
)]
fn find_line_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut i = 0;
    while let Some(word) = bytes.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let v = u64::from_le_bytes(w) ^ (ONES * u64::from(b'\n'));
        let hits = v.wrapping_sub(ONES) & !v & HIGHS;
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    bytes[i..].iter().position(|b| *b == b'\n').map(|k| i + k)
}

/// How many bytes at the start of `bytes` are plain string contents: not `"`, `\\` or a line end. Eight
/// bytes at a time: a byte equal to one of the three is a zero byte in the word XOR that byte repeated,
/// and the lowest flagged byte is exact.
#[expect(
    clippy::indexing_slicing,
    reason = "positions into the buffer are bounded by its length just before; the reader fuzz target checks it"
)]
fn string_run(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut i = 0;
    while let Some(word) = bytes.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let x = u64::from_le_bytes(w);
        let hits = zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            | zero(x ^ (ONES * u64::from(b'\n')));
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < bytes.len() && !matches!(bytes[i], b'"' | b'\\' | b'\n') {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out its bytes in the given chunk sizes (cycling).
    struct Chunked {
        data: Vec<u8>,
        at: usize,
        sizes: Vec<usize>,
        k: usize,
    }

    impl Read for Chunked {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let size = self.sizes[self.k % self.sizes.len()].max(1);
            self.k += 1;
            let n = size.min(out.len()).min(self.data.len() - self.at);
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn split_reader(reader: Box<dyn BufRead + Send>, limit: usize) -> Vec<(Item, String)> {
        let mut s = Splitter::new(reader, limit);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(mut item) = s.next_item(&mut buf) {
            // Resolve an unscanned record as the batch does when it does not parse, so that the fast
            // path (whole reads) is compared with the scanning one (one-byte reads).
            if item.unchecked {
                if let Some(p) = cut_off(item.line, &buf) {
                    item.kind = ItemKind::Invalid(p);
                    buf.clear();
                }
                item.unchecked = false;
            }
            out.push((item, String::from_utf8_lossy(&buf).into_owned()));
        }
        out
    }

    fn split(input: &str, limit: usize) -> Vec<(Item, String)> {
        split_bytes(input.as_bytes(), limit)
    }

    fn split_bytes(input: &[u8], limit: usize) -> Vec<(Item, String)> {
        let whole = split_reader(Box::new(io::Cursor::new(input.to_vec())), limit);
        // The same through one-byte reads, and through small reads of varying size.
        for sizes in [vec![1], vec![2, 7, 1, 3], vec![5, 1, 64, 2, 11]] {
            let chunked = Chunked {
                data: input.to_vec(),
                at: 0,
                sizes: sizes.clone(),
                k: 0,
            };
            let got = split_reader(Box::new(BufReader::with_capacity(1 << 10, chunked)), limit);
            assert_eq!(got, whole, "reads of sizes {sizes:?} differ on {input:?}");
        }
        whole
    }

    fn rec(line: u64, text: &str) -> (Item, String) {
        (
            Item {
                line,
                index: None,
                kind: ItemKind::Record,
                hint: None,
                unchecked: false,
            },
            text.to_owned(),
        )
    }

    fn elem(line: u64, index: u64, text: &str) -> (Item, String) {
        (
            Item {
                line,
                index: Some(index),
                kind: ItemKind::Record,
                hint: None,
                unchecked: false,
            },
            text.to_owned(),
        )
    }

    fn blank(line: u64) -> (Item, String) {
        (
            Item {
                line,
                index: None,
                kind: ItemKind::Blank,
                hint: None,
                unchecked: false,
            },
            String::new(),
        )
    }

    fn too_large(line: u64, index: Option<u64>) -> (Item, String) {
        (
            Item {
                line,
                index,
                kind: ItemKind::TooLarge,
                hint: None,
                unchecked: false,
            },
            String::new(),
        )
    }

    fn invalid_message(got: &(Item, String)) -> &str {
        match &got.0.kind {
            ItemKind::Invalid(p) => &p.message,
            other => panic!("expected an invalid item, got {other:?}"),
        }
    }

    #[test]
    fn ndjson_lines_crlf_blank_and_no_final_newline() {
        let got = split("\u{feff}{\"a\":1}\r\n\n{\"b\":2}\n  \n{\"c\":3}", 100);
        assert_eq!(
            got,
            vec![
                rec(1, "{\"a\":1}"),
                blank(2),
                rec(3, "{\"b\":2}"),
                blank(4),
                rec(5, "{\"c\":3}")
            ]
        );
    }

    #[test]
    fn invalid_lines_stay_one_result_each() {
        let got = split("{\"a\":1} x\nnot json\n\"str\"\n42\n{\"b\":2}\n", 100);
        assert_eq!(
            got,
            vec![
                rec(1, "{\"a\":1} x"),
                rec(2, "not json"),
                rec(3, "\"str\""),
                rec(4, "42"),
                rec(5, "{\"b\":2}")
            ]
        );
    }

    #[test]
    fn long_lines_are_skipped_not_buffered() {
        let long = "x".repeat(50);
        let got = split(&format!("{{}}\n{long}\n{{\"a\":1}}\n"), 10);
        assert_eq!(
            got,
            vec![rec(1, "{}"), too_large(2, None), rec(3, "{\"a\":1}")]
        );
        // Exactly at the limit, with or without `\r`, is not too large.
        let got = split("{\"a\":12}\r\n{\"a\":123}\n", 8);
        assert_eq!(got, vec![rec(1, "{\"a\":12}"), too_large(2, None)]);
    }

    #[test]
    fn pretty_printed_object_is_one_record() {
        let text = "{\n  \"id\": \"a\",\n  \"meds\": [\n    \"x\"\n  ]\n}";
        let got = split(&format!("{text}\n{{\"id\":\"b\"}}\n"), 100);
        assert_eq!(got, vec![rec(1, text), rec(7, "{\"id\":\"b\"}")]);
    }

    #[test]
    fn open_value_does_not_swallow_a_complete_line() {
        // Where an array element could follow, a line that is a whole record still starts a new one.
        let got = split(
            "{\"id\":\"a\",\"meds\":[\n{\"id\":\"b\"}\n{\"id\":\"c\"}\n",
            100,
        );
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].0.line, 1);
        assert_eq!(
            invalid_message(&got[0]),
            "the JSON value is not complete at the end of line 1, and line 2 is a record by itself"
        );
        assert_eq!(got[1], rec(2, "{\"id\":\"b\"}"));
        assert_eq!(got[2], rec(3, "{\"id\":\"c\"}"));
        // Cut off by a one-line batch.
        let got = split("[1,\n  [{\"id\":\"b\"}]\n", 100);
        assert!(matches!(got[0].0.kind, ItemKind::Invalid(_)), "{got:?}");
        assert_eq!(got[1], elem(2, 0, "{\"id\":\"b\"}"));
        // A line that only starts like a record is an element of the open array.
        let got = split("{\"a\":[\n{\"b\":1},\n{\"c\":2}]}\n", 100);
        assert_eq!(got, vec![rec(1, "{\"a\":[\n{\"b\":1},\n{\"c\":2}]}")]);
    }

    #[test]
    fn open_value_does_not_swallow_a_line_that_starts_a_record() {
        // Two NDJSON lines cut short after a key's comma, a `:`, a value, inside a string: one result each.
        for open in [
            "{\"id\":\"a\",",
            "{\"id\":\"a\",\"age\":",
            "{\"id\":\"a\",\"age\":4",
            "{\"id\":\"a",
        ] {
            let input = format!("{open}\n  {open}\n{{\"id\":\"c\"}}\n");
            let got = split(&input, 100);
            assert_eq!(got.len(), 3, "{open}: {got:?}");
            assert_eq!(
                invalid_message(&got[0]),
                "the JSON value is not complete at the end of line 1, where the next line starts a new record"
            );
            assert_eq!(got[1].0.line, 2);
            assert!(matches!(got[1].0.kind, ItemKind::Invalid(_)), "{got:?}");
            assert_eq!(got[2], rec(3, "{\"id\":\"c\"}"));
        }
        // The new record keeps its leading white space, for the columns of its errors.
        let got = split("{\"a\":1,\n  {\"b\":2} x\n", 100);
        assert_eq!(got[1], rec(2, "  {\"b\":2} x"));
    }

    #[test]
    fn open_value_at_the_end_of_the_input() {
        let got = split("{\"a\":1}\n{\"b\":\n", 100);
        assert_eq!(got[0], rec(1, "{\"a\":1}"));
        assert_eq!(got[1].0.line, 2);
        assert_eq!(
            invalid_message(&got[1]),
            "the JSON value is not complete at the end of the input"
        );
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn cut_off_record_over_the_limit_keeps_only_the_line() {
        // The open record (25 bytes) and the line that cuts it (12) do not fit the limit together.
        let got = split("{\"a\":[\"xxxxxxxxxxxxxxxxx\",\n{\"b\":\"yyyy\"}\n", 30);
        assert!(matches!(got[0].0.kind, ItemKind::Invalid(_)), "{got:?}");
        assert_eq!(got[1], rec(2, "{\"b\":\"yyyy\"}"));
        // The open record alone over the limit.
        let got = split(
            "{\"a\":[\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\",\n{\"b\":1}\n",
            30,
        );
        assert_eq!(got, vec![too_large(1, None), rec(2, "{\"b\":1}")]);
    }

    #[test]
    fn json_array_elements_with_lines_and_index() {
        let got = split("[\n  {\"a\": \"x,]\"},\n  {\"b\": [1, 2]}\n, 7\n]\n", 100);
        assert_eq!(
            got,
            vec![
                elem(2, 0, "{\"a\": \"x,]\"}"),
                elem(3, 1, "{\"b\": [1, 2]}"),
                elem(4, 2, "7")
            ]
        );
        assert_eq!(
            split("[{\"a\":1},{\"b\":2}]", 100),
            vec![elem(1, 0, "{\"a\":1}"), elem(1, 1, "{\"b\":2}")]
        );
        assert_eq!(split("[]", 100), vec![]);
        assert_eq!(split(" [ \n ]\n", 100), vec![]);
        // A one-line array longer than the record limit is still split element by element.
        assert_eq!(
            split("[{\"a\":1},{\"b\":2}]", 8),
            vec![elem(1, 0, "{\"a\":1}"), elem(1, 1, "{\"b\":2}")]
        );
        assert_eq!(
            split("[{\"a\":1},{\"b\":222}]", 8),
            vec![elem(1, 0, "{\"a\":1}"), too_large(1, Some(1))]
        );
    }

    #[test]
    fn records_after_an_array_are_read() {
        let got = split("[{\"a\":1},\n{\"b\":2}]\n{\"c\":3}\n[{\"d\":4}]\n", 100);
        assert_eq!(
            got,
            vec![
                elem(1, 0, "{\"a\":1}"),
                elem(2, 1, "{\"b\":2}"),
                rec(3, "{\"c\":3}"),
                elem(4, 0, "{\"d\":4}")
            ]
        );
        let got = split("[{\"a\":1}] {\"b\":2}\n{\"c\":3}\n", 100);
        assert_eq!(got[0], elem(1, 0, "{\"a\":1}"));
        assert_eq!(
            invalid_message(&got[1]),
            "unexpected data after the JSON array on its last line"
        );
        assert_eq!(got[2], rec(2, "{\"c\":3}"));
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn array_that_is_not_a_batch_is_one_record() {
        let got = split("[1,2]\n{\"a\":1}\n[\"p1\", 70]\n[\n  1,\n  2\n]\n", 100);
        assert_eq!(
            got,
            vec![
                rec(1, "[1,2]"),
                rec(2, "{\"a\":1}"),
                rec(3, "[\"p1\", 70]"),
                rec(4, "[\n  1,\n  2\n]")
            ]
        );
        // A long first-line array of non-objects does not take the lines after it along.
        let long = format!("[{}1]", "1,".repeat(50));
        let got = split(&format!("{long}\n{{\"a\":1}}\n"), 20);
        assert_eq!(got, vec![too_large(1, None), rec(2, "{\"a\":1}")]);
    }

    #[test]
    fn array_after_blank_lines_is_a_batch() {
        let input = format!("{}[{{\"a\":1}},{{\"b\":2}}]\n", "\n".repeat(70_000));
        let mut s = Splitter::new(Box::new(io::Cursor::new(input.into_bytes())), 100);
        let mut buf = Vec::new();
        let mut records = Vec::new();
        let mut blanks = 0;
        while let Some(item) = s.next_item(&mut buf) {
            match item.kind {
                ItemKind::Blank => blanks += 1,
                _ => records.push((item, String::from_utf8_lossy(&buf).into_owned())),
            }
        }
        assert_eq!(blanks, 70_000);
        assert_eq!(
            records,
            vec![elem(70_001, 0, "{\"a\":1}"), elem(70_001, 1, "{\"b\":2}")]
        );
    }

    #[test]
    fn broken_arrays_are_reported() {
        let got = split("[{\"a\":1}, {\"b\":", 100);
        assert_eq!(got[0], elem(1, 0, "{\"a\":1}"));
        assert_eq!(got[1].0.index, Some(1));
        assert!(matches!(got[1].0.kind, ItemKind::Invalid(_)));
        assert_eq!(got.len(), 2);
        let got = split("[{\"a\":1},", 100);
        assert_eq!(
            invalid_message(&got[1]),
            "the JSON array is not closed at the end of the input"
        );
        let got = split("[{\"a\":1} {\"b\":2}]\n", 100);
        assert_eq!(
            invalid_message(&got[1]),
            "expected `,` or `]` after element 0 of the JSON array"
        );
        assert_eq!(got[2], rec(1, "{\"b\":2}]"));
    }

    #[test]
    fn bom_only_at_the_start_and_partial_bom_is_data() {
        assert_eq!(
            split("\u{feff}[{\"a\":1}]", 100),
            vec![elem(1, 0, "{\"a\":1}")]
        );
        let got = split_bytes(b"\xEF\xBB{\"a\":1}\n", 100);
        assert_eq!(got, vec![rec(1, "\u{fffd}{\"a\":1}")]);
    }

    #[test]
    fn hints_for_fhir_and_csv_once_per_input() {
        let got = split(
            "{\"resourceType\": \"Bundle\", \"entry\": []}\n{\"resourceType\":\"Patient\"}\n",
            100,
        );
        assert_eq!(got[0].0.hint, Some(Hint::Fhir("Bundle".to_owned())));
        assert_eq!(got[1].0.hint, None);
        let got = split("id,age\np1,70\n", 100);
        assert_eq!(got[0].0.hint, Some(Hint::Csv));
        assert_eq!(got[1].0.hint, None);
        assert_eq!(split("{\"id\":\"a,b\"}\n", 100)[0].0.hint, None);
        // Over the limit, the record's first bytes still tell.
        let big = format!(
            "{{\"resourceType\":\"Bundle\",\"x\":\"{}\"}}",
            "y".repeat(200)
        );
        let got = split(&big, 100);
        assert_eq!(got[0].0.kind, ItemKind::TooLarge);
        assert_eq!(got[0].0.hint, Some(Hint::Fhir("Bundle".to_owned())));
    }

    #[test]
    fn read_errors_end_the_input_with_an_item() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let data = b"{\"a\":1}\n{\"b\":";
                if self.0 < data.len() {
                    let n = (data.len() - self.0).min(out.len());
                    out[..n].copy_from_slice(&data[self.0..self.0 + n]);
                    self.0 += n;
                    return Ok(n);
                }
                Err(io::Error::new(io::ErrorKind::UnexpectedEof, "cut"))
            }
        }
        let got = split_reader(Box::new(BufReader::new(Failing(0))), 100);
        assert_eq!(got[0], rec(1, "{\"a\":1}"));
        match &got[1].0.kind {
            ItemKind::Invalid(p) => assert_eq!(p.code, ProblemCode::TruncatedInput),
            other => panic!("{other:?}"),
        }
        assert_eq!(got[1].0.line, 2);
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn random_inputs_frame_the_same_at_any_read_size() {
        let alphabet = b"{}[]\",:\n \\a1\r";
        let mut seed: u64 = 0xf4a3;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        let (mut unchecked, mut cut) = (0, 0);
        for round in 0..800 {
            let len = next() % 60;
            let mut bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[next() % alphabet.len()])
                .collect();
            if round % 2 == 1 {
                // Lines that start like records, as in NDJSON with broken lines.
                for b in bytes.iter_mut().filter(|b| **b == b'\r') {
                    *b = b'\n';
                }
                let mut lined = Vec::new();
                for piece in bytes.split(|b| *b == b'\n') {
                    lined.push(if next() % 4 == 0 { b'[' } else { b'{' });
                    lined.extend_from_slice(piece);
                    lined.push(b'\n');
                }
                bytes = lined;
            }
            for limit in [3, 10, 100] {
                // `split_bytes` asserts that whole, one-byte and varied reads give the same items.
                let got = split_bytes(&bytes, limit);
                assert!(got.len() <= bytes.len() + 1, "{got:?}");
            }
            // Whole reads take the unscanned path for some records, complete or cut off.
            let mut s = Splitter::new(Box::new(io::Cursor::new(bytes)), 100);
            let mut buf = Vec::new();
            while let Some(item) = s.next_item(&mut buf) {
                if item.unchecked {
                    unchecked += 1;
                    cut += usize::from(cut_off(item.line, &buf).is_some());
                }
            }
        }
        assert!(
            unchecked > 300 && cut > 100,
            "{unchecked} unchecked, {cut} cut off"
        );
    }

    #[test]
    fn the_largest_limit_does_not_overflow() {
        // `limit + 1` overflowed here and the reader looped forever; the CLI also bounds the limit now.
        let got = split("[{\"a\":1}]\n[1]\n{\"b\":\n2}\r\n", usize::MAX);
        assert_eq!(
            got,
            vec![
                elem(1, 0, "{\"a\":1}"),
                rec(2, "[1]"),
                rec(3, "{\"b\":\n2}")
            ]
        );
    }

    #[test]
    fn empty_input() {
        assert_eq!(split("", 100), vec![]);
        assert_eq!(split("  ", 100), vec![blank(1)]);
    }

    #[test]
    fn feed_does_what_step_does() {
        // Random bytes drawn mostly from the ones that matter; a simple LCG keeps it deterministic.
        let alphabet = b"\"\\{}[],:\n \tab1-";
        let mut seed: u64 = 0x5eed;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for _ in 0..3000 {
            let len = next() % 40;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[next() % alphabet.len()])
                .collect();
            for element in [false, true] {
                let start = Scan {
                    depth: (next() % 3) as u32,
                    objects: (next() % 8) as u128,
                    in_str: next() % 2 == 0,
                    ..Scan::default()
                };
                let mut fast = start;
                let (used, stop) = fast.feed(&bytes, element);
                let mut slow = start;
                let mut expect = (bytes.len(), "more");
                for (k, b) in bytes.iter().enumerate() {
                    match slow.step(*b, element) {
                        Step::Go => continue,
                        Step::Line => expect = (k + 1, "line"),
                        Step::EndAfter => expect = (k + 1, "end"),
                        Step::EndBefore => expect = (k, "end"),
                    }
                    break;
                }
                let got = match stop {
                    Stop::More => "more",
                    Stop::Line => "line",
                    Stop::End => "end",
                };
                assert_eq!(
                    (used, got),
                    expect,
                    "{:?} from {start:?}",
                    String::from_utf8_lossy(&bytes)
                );
                assert_eq!(
                    fast,
                    slow,
                    "{:?} from {start:?}",
                    String::from_utf8_lossy(&bytes)
                );
            }
        }
    }

    #[test]
    fn string_run_stops_at_the_first_special_byte() {
        assert_eq!(string_run(b""), 0);
        assert_eq!(string_run(b"abcdefghijk"), 11);
        for k in 0..20 {
            for special in [b'"', b'\\', b'\n'] {
                let mut v = vec![b'x'; 20];
                v[k] = special;
                // A byte just above a special one must not hide it (borrows in the zero-byte test).
                if k + 1 < 20 {
                    v[k + 1] = special ^ 1;
                }
                assert_eq!(string_run(&v), k);
            }
        }
    }

    #[test]
    fn any_chunking_gives_the_same_items() {
        // A mix of every framing case; `split_bytes` compares whole, 1-byte and varied reads.
        let input = "\u{feff}\n{\"a\":1}\r\n{\n \"b\": [1, {\"c\": \"}]\\\"\"}]\n}\n[\n{\"d\":1},\n 2, \"x\"\n]\n\
                     {\"e\":\n{\"f\":1}\n[1,2]\n[{\"g\":1}] x\n\"s\n{\"h\":2}";
        let got = split(input, 1000);
        assert!(got.len() > 10, "{got:?}");
        for limit in [1, 5, 9, 20] {
            split(input, limit);
        }
    }
}
