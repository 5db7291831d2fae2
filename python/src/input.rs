//! Reading a profile from an Arrow row: one JSON text column, or columns named by facts.
//!
//! A flat row is written as the JSON object the command line would read, then validated and screened
//! by the same calls: a null cell is a fact not given (as an absent member), a list is an array, a
//! struct an object (a medication's `name`, `rxnorm`, `atc`), a dictionary its value. What the schema
//! refuses (a wrong type, a value out of range) makes the row invalid with the field named, as it
//! would a line of NDJSON. What no row could ever be (a column that is not a fact, a type with no JSON
//! form) is refused before anything is screened.

use std::io::Write as _;

use arrow_array::cast::AsArray;
use arrow_array::types::ArrowDictionaryKeyType;
use arrow_array::types::{
    Decimal128Type, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_buffer::ArrowNativeType;
use arrow_schema::{DataType, Schema};
use medscreen_core::suggest::did_you_mean;
use pyo3::PyResult;
use pyo3::exceptions::{PyTypeError, PyValueError};

/// Where each row's profile comes from.
pub(crate) enum Plan {
    /// The text (or bytes) of column `k` is the profile's JSON.
    Json(usize),
    /// Columns `(k, name)` are the profile's members.
    Flat(Vec<(usize, String)>),
}

impl Plan {
    /// The plan for `schema`: the column `profile_col` (or `profile`) as JSON when there is one,
    /// else every column as a fact.
    pub(crate) fn new(
        schema: &Schema,
        profile_col: Option<&str>,
        engine: &medscreen_core::Engine,
    ) -> PyResult<Plan> {
        let named = |name: &str| schema.fields().iter().position(|f| f.name() == name);
        let json_column = match profile_col {
            Some(name) => Some(named(name).ok_or_else(|| {
                let columns: Vec<&str> =
                    schema.fields().iter().map(|f| f.name().as_str()).collect();
                PyValueError::new_err(format!(
                    "no column `{name}` to read profiles from{}; the columns are {}",
                    hint(name, columns.iter().copied()),
                    listed(&columns)
                ))
            })?),
            None => named("profile"),
        };
        if let Some(k) = json_column {
            let field = schema.fields().get(k).map(|f| (f.name(), f.data_type()));
            if let Some((name, ty)) = field
                && !matches!(
                    ty,
                    DataType::Utf8
                        | DataType::LargeUtf8
                        | DataType::Utf8View
                        | DataType::Binary
                        | DataType::LargeBinary
                        | DataType::BinaryView
                )
            {
                return Err(PyTypeError::new_err(format!(
                    "column `{name}` holds {ty}, not JSON text (string or binary)"
                )));
            }
            return Ok(Plan::Json(k));
        }
        let facts: Vec<&str> = engine.facts().names().collect();
        let mut columns = Vec::new();
        let mut unknown = Vec::new();
        for (k, field) in schema.fields().iter().enumerate() {
            let name = field.name();
            if !facts.contains(&name.as_str()) {
                unknown.push(format!("`{name}`{}", hint(name, facts.iter().copied())));
                continue;
            }
            if columns.iter().any(|(_, n)| n == name) {
                return Err(PyValueError::new_err(format!(
                    "column `{name}` appears twice"
                )));
            }
            if !writable(field.data_type()) {
                return Err(PyTypeError::new_err(format!(
                    "column `{name}` holds {}, which has no JSON form here (use strings, numbers, \
                     booleans, and lists or structs of them)",
                    field.data_type()
                )));
            }
            columns.push((k, name.clone()));
        }
        if !unknown.is_empty() {
            return Err(PyValueError::new_err(format!(
                "column{} {} {} not a fact of the profile, and there is no `profile` column of JSON \
                 text; select the fact columns, or name the JSON column with profile_col. The facts \
                 are {}",
                if unknown.len() == 1 { "" } else { "s" },
                unknown.join(", "),
                if unknown.len() == 1 { "is" } else { "are" },
                listed(&facts)
            )));
        }
        Ok(Plan::Flat(columns))
    }

    /// Row `row`'s profile as JSON bytes (`None` for a null cell of a JSON column); a flat row is
    /// written into `buf`.
    pub(crate) fn document<'a>(
        &self,
        batch: &'a RecordBatch,
        row: usize,
        buf: &'a mut Vec<u8>,
    ) -> Option<&'a [u8]> {
        match self {
            Plan::Json(k) => {
                let column = batch.columns().get(*k)?;
                if column.is_null(row) {
                    return None;
                }
                Some(match column.data_type() {
                    DataType::Utf8 => column.as_string::<i32>().value(row).as_bytes(),
                    DataType::LargeUtf8 => column.as_string::<i64>().value(row).as_bytes(),
                    DataType::Utf8View => column.as_string_view().value(row).as_bytes(),
                    DataType::Binary => column.as_binary::<i32>().value(row),
                    DataType::LargeBinary => column.as_binary::<i64>().value(row),
                    DataType::BinaryView => column.as_binary_view().value(row),
                    _ => return None,
                })
            }
            Plan::Flat(columns) => {
                buf.clear();
                let members = columns.iter().filter_map(|(k, name)| {
                    batch.columns().get(*k).map(|c| (name.as_str(), c.as_ref()))
                });
                write_object(buf, members, row);
                Some(buf)
            }
        }
    }
}

/// ` (did you mean `x`?)` when `word` is close to one of `candidates`.
fn hint<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> String {
    did_you_mean(word, candidates)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

fn listed(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(", ")
}

/// Whether values of type `ty` can be written as JSON by [`write_value`].
fn writable(ty: &DataType) -> bool {
    match ty {
        DataType::Null
        | DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal128(_, _)
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View => true,
        DataType::List(item) | DataType::LargeList(item) => writable(item.data_type()),
        DataType::Struct(fields) => fields.iter().all(|f| writable(f.data_type())),
        DataType::Dictionary(key, value) => {
            matches!(
                key.as_ref(),
                DataType::Int8
                    | DataType::Int16
                    | DataType::Int32
                    | DataType::Int64
                    | DataType::UInt8
                    | DataType::UInt16
                    | DataType::UInt32
                    | DataType::UInt64
            ) && writable(value)
        }
        _ => false,
    }
}

fn write_str(buf: &mut Vec<u8>, s: &str) {
    // Writing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, s);
}

/// A float as JSON; one that is not finite has no JSON number, and is written as a string so that the
/// schema rejects the row (with the field named) rather than the value being read as unknown.
fn write_float(buf: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        let _ = serde_json::to_writer(&mut *buf, &v);
    } else {
        write_str(buf, "not a finite number");
    }
}

/// The value at `row` of `array` (not null at the top level: callers skip null cells), as JSON.
fn write_value(buf: &mut Vec<u8>, array: &dyn Array, row: usize) {
    if array.is_null(row) {
        buf.extend_from_slice(b"null");
        return;
    }
    match array.data_type() {
        DataType::Boolean => buf.extend_from_slice(if array.as_boolean().value(row) {
            b"true"
        } else {
            b"false"
        }),
        DataType::Int8 => write_int(buf, array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => write_int(buf, array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => write_int(buf, array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => write_int(buf, array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => write_int(buf, array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => write_int(buf, array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => write_int(buf, array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => write_int(buf, array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float16 => write_float(
            buf,
            f64::from(array.as_primitive::<Float16Type>().value(row).to_f32()),
        ),
        DataType::Float32 => write_float(
            buf,
            f64::from(array.as_primitive::<Float32Type>().value(row)),
        ),
        DataType::Float64 => write_float(buf, array.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal128(_, _) => buf.extend_from_slice(
            array
                .as_primitive::<Decimal128Type>()
                .value_as_string(row)
                .as_bytes(),
        ),
        DataType::Utf8 => write_str(buf, array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => write_str(buf, array.as_string::<i64>().value(row)),
        DataType::Utf8View => write_str(buf, array.as_string_view().value(row)),
        DataType::List(_) => write_items(buf, array.as_list::<i32>().value(row).as_ref()),
        DataType::LargeList(_) => write_items(buf, array.as_list::<i64>().value(row).as_ref()),
        DataType::Struct(_) => {
            let array = array.as_struct();
            let members = array
                .column_names()
                .into_iter()
                .zip(array.columns().iter().map(|c| c.as_ref()));
            write_object(buf, members, row);
        }
        DataType::Dictionary(key, _) => match key.as_ref() {
            DataType::Int8 => write_entry::<Int8Type>(buf, array, row),
            DataType::Int16 => write_entry::<Int16Type>(buf, array, row),
            DataType::Int32 => write_entry::<Int32Type>(buf, array, row),
            DataType::Int64 => write_entry::<Int64Type>(buf, array, row),
            DataType::UInt8 => write_entry::<UInt8Type>(buf, array, row),
            DataType::UInt16 => write_entry::<UInt16Type>(buf, array, row),
            DataType::UInt32 => write_entry::<UInt32Type>(buf, array, row),
            DataType::UInt64 => write_entry::<UInt64Type>(buf, array, row),
            _ => buf.extend_from_slice(b"null"),
        },
        // `writable` admits no other type; a null has no other value.
        _ => buf.extend_from_slice(b"null"),
    }
}

/// A JSON object of the members' values at `row`; a member whose value is null there is left out
/// (a fact not given, as an absent member).
fn write_object<'a>(
    buf: &mut Vec<u8>,
    members: impl Iterator<Item = (&'a str, &'a dyn Array)>,
    row: usize,
) {
    buf.push(b'{');
    let mut first = true;
    for (name, column) in members {
        if column.is_null(row) {
            continue;
        }
        if !first {
            buf.push(b',');
        }
        first = false;
        write_str(buf, name);
        buf.push(b':');
        write_value(buf, column, row);
    }
    buf.push(b'}');
}

fn write_int(buf: &mut Vec<u8>, v: impl std::fmt::Display) {
    let _ = write!(buf, "{v}");
}

fn write_items(buf: &mut Vec<u8>, items: &dyn Array) {
    buf.push(b'[');
    for k in 0..items.len() {
        if k > 0 {
            buf.push(b',');
        }
        write_value(buf, items, k);
    }
    buf.push(b']');
}

/// A dictionary cell: the dictionary's value its key points to.
fn write_entry<K: ArrowDictionaryKeyType>(buf: &mut Vec<u8>, array: &dyn Array, row: usize) {
    let dictionary = array.as_dictionary::<K>();
    let key = dictionary.keys().value(row).as_usize();
    let values = dictionary.values();
    if key < values.len() {
        write_value(buf, values.as_ref(), key);
    } else {
        buf.extend_from_slice(b"null");
    }
}
