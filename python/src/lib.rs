//! `medscreen._native`: the engine for Python, with Arrow in and Arrow out.
//!
//! The Python package (`python/medscreen`) wraps this module, and its docstrings are the user's
//! documentation. Here: an [`Engine`] compiled once, screening JSON documents ([`Engine::screen_json`],
//! behind `screen` and `screen_many`) and Arrow streams ([`Engine::screen_arrow`]) with the Python lock
//! released, on a pool of `threads` workers of its own.
//!
//! Every record is screened or reported invalid with its reasons, through the same core calls as the
//! command line: a JSON document's result is the command line's result, byte for byte, but for `line`
//! (the caller's position is `index`) and for what the command line says from the file around a
//! record (that the next line starts a new record, that the first record looks like FHIR or CSV):
//! a document here has no file around it. An Arrow row's result carries the same statuses, cautions,
//! evidence and undecided rules in columns ([`output`]).

mod input;
mod output;
mod pyjson;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use arrow_array::ffi::FFI_ArrowSchema;
use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use arrow_array::{RecordBatch, RecordBatchIterator, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};
use medscreen_core::output::{self as out, OutputOptions};
use medscreen_core::schema::{Problem, ProblemCode};
use medscreen_core::vocab::MatchCache;
use medscreen_core::{Rejection, Screening};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::types::{PyByteArray, PyBytes, PyCapsule, PyString};
use rayon::prelude::*;

pyo3::create_exception!(
    medscreen,
    LoadError,
    PyValueError,
    "The rule packs could not be loaded: each problem is named, with its file and place."
);

/// The longest record read, as on the command line (the default of `--max-record-bytes`).
const MAX_RECORD_BYTES: usize = 1 << 20;

/// Rows of an Arrow batch screened as one unit of work (and one output batch).
const CHUNK_ROWS: usize = 2048;

/// What became of one record.
enum Outcome<'e> {
    /// One screening per pack, in the engine's order.
    Screened(Vec<Screening<'e>>),
    /// Not screened, and why.
    Invalid(Rejection),
}

fn rejected<'e>(problem: Problem) -> Outcome<'e> {
    Outcome::Invalid(Rejection {
        id: None,
        problems: vec![problem],
    })
}

/// Validate and screen one document (`None`: there is none, a null cell or item).
fn screen_one<'e>(
    engine: &'e medscreen_core::Engine,
    doc: Option<&[u8]>,
    cache: &mut MatchCache,
) -> Outcome<'e> {
    let Some(bytes) = doc else {
        return rejected(Problem::new(
            "",
            ProblemCode::InvalidJson,
            "there is no profile (the value is null)",
        ));
    };
    if bytes.len() > MAX_RECORD_BYTES {
        return rejected(Problem::too_large(MAX_RECORD_BYTES));
    }
    match engine.parse_profile(bytes) {
        Ok(profile) => Outcome::Screened(engine.screen_packs_with(&profile, cache)),
        Err(rejection) => Outcome::Invalid(rejection),
    }
}

/// One item handed to `screen_json`, read while the Python lock is held so that screening needs none.
enum Doc {
    Bytes(PyBackedBytes),
    Str(PyBackedStr),
    /// A Python object written as JSON ([`pyjson`]).
    Written(Vec<u8>),
    /// `None`.
    Null,
    /// Could not be made into JSON text.
    Unreadable(Rejection),
}

impl Doc {
    fn read(item: &Bound<'_, PyAny>) -> Doc {
        if item.is_none() {
            return Doc::Null;
        }
        let unreadable = |code, message: &str| {
            Doc::Unreadable(Rejection {
                id: None,
                problems: vec![Problem::new("", code, message)],
            })
        };
        if item.is_instance_of::<PyBytes>() || item.is_instance_of::<PyByteArray>() {
            return match item.extract::<PyBackedBytes>() {
                Ok(b) => Doc::Bytes(b),
                Err(_) => unreadable(ProblemCode::IoError, "the bytes could not be read"),
            };
        }
        if item.is_instance_of::<PyString>() {
            return match item.extract::<PyBackedStr>() {
                Ok(s) => Doc::Str(s),
                // Lone surrogates: the text has no UTF-8 form.
                Err(_) => unreadable(ProblemCode::InvalidUtf8, "the record is not valid UTF-8"),
            };
        }
        let mut buf = Vec::new();
        match pyjson::write(item, &mut buf) {
            Ok(()) => Doc::Written(buf),
            Err(problem) => Doc::Unreadable(Rejection {
                id: usable_id(item),
                problems: vec![problem],
            }),
        }
    }

    fn screen<'e>(
        &self,
        engine: &'e medscreen_core::Engine,
        cache: &mut MatchCache,
    ) -> Outcome<'e> {
        match self {
            Doc::Bytes(b) => screen_one(engine, Some(b.as_ref()), cache),
            Doc::Str(s) => screen_one(engine, Some(s.as_bytes()), cache),
            Doc::Written(b) => screen_one(engine, Some(b), cache),
            Doc::Null => screen_one(engine, None, cache),
            Doc::Unreadable(r) => Outcome::Invalid(r.clone()),
        }
    }
}

/// A dict's `id`, when it is one the results may name (see `medscreen_core::engine::record_id`).
fn usable_id(item: &Bound<'_, PyAny>) -> Option<String> {
    let id = item.get_item("id").ok()?.extract::<String>().ok()?;
    let value = serde_json::json!({ "id": id });
    medscreen_core::engine::record_id(&value)
}

/// A compiled engine and its worker pool.
#[pyclass(frozen, module = "medscreen._native", name = "Engine")]
struct Engine {
    engine: medscreen_core::Engine,
    threads: usize,
    /// Started on first use, and again in a process forked after that: a forked child has none of
    /// its parent's threads.
    pool: Mutex<Option<Pool>>,
}

/// A worker pool and the process it belongs to.
struct Pool {
    pid: u32,
    pool: Arc<rayon::ThreadPool>,
}

impl Engine {
    /// This process's worker pool.
    fn pool(&self) -> PyResult<Arc<rayon::ThreadPool>> {
        let mut slot = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        let pid = std::process::id();
        if let Some(p) = slot.as_ref().filter(|p| p.pid == pid) {
            return Ok(p.pool.clone());
        }
        if let Some(inherited) = slot.take() {
            // Its threads were the parent's: there is nothing here to stop or join.
            std::mem::forget(inherited);
        }
        let threads = self.threads;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|k| format!("medscreen-{k}"))
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start {threads} threads: {e}")))?;
        let pool = Arc::new(pool);
        *slot = Some(Pool {
            pid,
            pool: pool.clone(),
        });
        Ok(pool)
    }
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (packs=None, rules_dir=None, threads=None))]
    fn new(
        packs: Option<Vec<String>>,
        rules_dir: Option<PathBuf>,
        threads: Option<usize>,
    ) -> PyResult<Engine> {
        let names: Vec<&str> = packs.iter().flatten().map(String::as_str).collect();
        let engine = match &rules_dir {
            Some(dir) => medscreen_core::Engine::from_dir_packs(dir, &names),
            None => medscreen_core::Engine::embedded_packs(&names),
        }
        .map_err(|e| LoadError::new_err(e.to_string().trim_end().to_owned()))?;
        let threads = match threads {
            Some(0) => return Err(PyValueError::new_err("threads must be at least 1")),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        Ok(Engine {
            engine,
            threads,
            pool: Mutex::new(None),
        })
    }

    /// The packs that screen, in order.
    #[getter]
    fn packs(&self) -> Vec<String> {
        self.engine
            .screening_packs()
            .map(|p| p.name().to_owned())
            .collect()
    }

    /// Each screening pack's `name@version#hash`, in order.
    #[getter]
    fn rulesets(&self) -> Vec<String> {
        self.engine
            .screening_packs()
            .map(|p| p.ruleset().label.clone())
            .collect()
    }

    /// The names a profile may hold (the columns a flat table may have), sorted.
    #[getter]
    fn facts(&self) -> Vec<String> {
        self.engine.facts().names().map(str::to_owned).collect()
    }

    /// The number of worker threads.
    #[getter]
    fn threads(&self) -> usize {
        self.threads
    }

    fn __repr__(&self) -> String {
        format!("Engine(packs={:?}, threads={})", self.packs(), self.threads)
    }

    /// Screen JSON documents (str, bytes, None, or Python objects written as JSON by [`pyjson`]);
    /// returns one command-line result per document (NDJSON text), numbered with `index` from `start`.
    #[pyo3(signature = (docs, start=0))]
    fn screen_json<'py>(
        &self,
        py: Python<'py>,
        docs: &Bound<'py, PyAny>,
        start: u64,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let docs: Vec<Doc> = docs
            .try_iter()?
            .map(|item| item.map(|item| Doc::read(&item)))
            .collect::<PyResult<_>>()?;
        let opts = OutputOptions {
            several_packs: self.engine.several(),
            ..OutputOptions::default()
        };
        let engine = &self.engine;
        let pool = self.pool()?;
        let results: Vec<Vec<u8>> = py.detach(|| {
            pool.install(|| {
                docs.par_iter()
                    .enumerate()
                    .map_init(MatchCache::new, |cache, (k, doc)| {
                        let mut buf = Vec::new();
                        let index = Some(start + k as u64);
                        match doc.screen(engine, cache) {
                            Outcome::Screened(s) => {
                                out::screened_packs_at(&opts, &mut buf, 0, index, None, &s, &[]);
                            }
                            Outcome::Invalid(r) => out::invalid_at(
                                &opts,
                                &mut buf,
                                0,
                                index,
                                None,
                                r.id.as_deref(),
                                &r.problems,
                            ),
                        }
                        buf
                    })
                    .collect()
            })
        });
        Ok(results.iter().map(|r| PyBytes::new(py, r)).collect())
    }

    /// Screen an Arrow stream (any object with `__arrow_c_stream__`): a JSON text column
    /// (`profile_col`, or a column named `profile`) or columns named by facts. Returns the results
    /// as an Arrow stream of [`output::schema`], rows numbered with `index` from `start`.
    #[pyo3(signature = (data, profile_col=None, start=0))]
    fn screen_arrow(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        profile_col: Option<String>,
        start: u64,
    ) -> PyResult<Stream> {
        let reader = import_stream(data)?;
        let plan = input::Plan::new(&reader.schema(), profile_col.as_deref(), &self.engine)?;
        let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().map_err(arrow_error)?;
        // The C stream interface imports batches unchecked; a producer may hand over arrays that do
        // not match the schema it declared (pyarrow's `RecordBatchReader.from_batches` does not check
        // them), and reading those would read out of bounds.
        for batch in &batches {
            for column in batch.columns() {
                column.to_data().validate_full().map_err(arrow_error)?;
            }
        }
        let mut units = Vec::new();
        let mut first = start;
        for batch in &batches {
            let rows = batch.num_rows();
            let mut at = 0;
            while at < rows {
                let len = CHUNK_ROWS.min(rows - at);
                units.push((batch.slice(at, len), first + at as u64));
                at += len;
            }
            first += rows as u64;
        }
        let engine = &self.engine;
        let packs: Vec<&str> = engine.screening_packs().map(|p| p.name()).collect();
        let pool = self.pool()?;
        let batches = py
            .detach(|| {
                pool.install(|| {
                    units
                        .par_iter()
                        .map(|(batch, first)| screen_batch(engine, &packs, &plan, batch, *first))
                        .collect::<Result<Vec<_>, ArrowError>>()
                })
            })
            .map_err(arrow_error)?;
        Ok(Stream {
            schema: output::schema(),
            batches,
        })
    }
}

/// Screen every row of `batch`, the first being row `first` of the input.
fn screen_batch(
    engine: &medscreen_core::Engine,
    packs: &[&str],
    plan: &input::Plan,
    batch: &RecordBatch,
    first: u64,
) -> Result<RecordBatch, ArrowError> {
    let mut columns = output::Columns::with_capacity(batch.num_rows() * packs.len());
    let mut cache = MatchCache::new();
    let mut doc = Vec::new();
    for row in 0..batch.num_rows() {
        let outcome = screen_one(engine, plan.document(batch, row, &mut doc), &mut cache);
        columns.push(first + row as u64, packs, &outcome);
    }
    columns.finish()
}

/// Results as an Arrow stream, for `pyarrow.RecordBatchReader.from_stream` and friends.
#[pyclass(frozen, module = "medscreen._native")]
struct Stream {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

#[pymethods]
impl Stream {
    /// The Arrow PyCapsule stream interface. A requested schema is not honoured: the results have
    /// one schema, which the interface lets a producer keep.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let reader = RecordBatchIterator::new(
            self.batches.clone().into_iter().map(Ok),
            self.schema.clone(),
        );
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }

    /// The number of result rows.
    fn __len__(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// The results' Arrow schema, for `pyarrow.schema`.
#[pyclass(frozen, module = "medscreen._native")]
struct Schema {
    schema: SchemaRef,
}

#[pymethods]
impl Schema {
    /// The Arrow PyCapsule schema interface.
    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        let ffi = FFI_ArrowSchema::try_from(self.schema.as_ref()).map_err(arrow_error)?;
        PyCapsule::new_with_value(py, ffi, c"arrow_schema")
    }
}

/// The schema of every result table (see the package's `OUTPUT_SCHEMA`).
#[pyfunction]
fn output_schema() -> Schema {
    Schema {
        schema: output::schema(),
    }
}

/// The packs built into the module, in name order.
#[pyfunction]
fn embedded_packs() -> Vec<String> {
    medscreen_core::engine::embedded_pack_names()
}

/// Take the stream `data` exports through the Arrow PyCapsule interface.
fn import_stream(data: &Bound<'_, PyAny>) -> PyResult<RecordBatchStreamReader> {
    if !data.hasattr("__arrow_c_stream__")? {
        let kind = data.get_type().name()?.to_string();
        return Err(PyTypeError::new_err(format!(
            "expected Arrow data (an object with __arrow_c_stream__, such as a pyarrow Table or \
             RecordBatchReader, or a polars DataFrame), got {kind}"
        )));
    }
    let capsule = data
        .call_method0("__arrow_c_stream__")?
        .cast_into::<PyCapsule>()?;
    let stream = capsule
        .pointer_checked(Some(c"arrow_array_stream"))?
        .cast::<FFI_ArrowArrayStream>();
    #[expect(
        unsafe_code,
        reason = "the Arrow C stream interface hands over a struct by pointer"
    )]
    // SAFETY: the capsule is named `arrow_array_stream`, so (by the Arrow PyCapsule interface) it
    // points to a valid `ArrowArrayStream`, and the capsule is alive while this runs. `from_raw`
    // moves the stream out and leaves a released one behind, so the capsule's own destructor does
    // not release it a second time. The arrays read from the stream are not trusted: `screen_arrow`
    // validates each one fully before reading it.
    let stream = unsafe { FFI_ArrowArrayStream::from_raw(stream.as_ptr()) };
    RecordBatchStreamReader::try_new(stream).map_err(arrow_error)
}

fn arrow_error(e: ArrowError) -> PyErr {
    PyValueError::new_err(format!("Arrow data: {e}"))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Engine>()?;
    m.add_class::<Stream>()?;
    m.add_class::<Schema>()?;
    m.add_function(wrap_pyfunction!(output_schema, m)?)?;
    m.add_function(wrap_pyfunction!(embedded_packs, m)?)?;
    m.add("LoadError", m.py().get_type::<LoadError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
