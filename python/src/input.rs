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
            let name = schema
                .fields()
                .get(k)
                .map(|f| f.name().as_str())
                .unwrap_or("");
            if schema.fields().iter().filter(|f| f.name() == name).count() > 1 {
                return Err(PyValueError::new_err(format!(
                    "column `{name}` appears twice"
                )));
            }
        }
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
        | DataType::Decimal128(_, _)
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View => true,
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            writable(item.data_type())
        }
        DataType::Struct(fields) => fields.iter().all(|f| writable(f.data_type())),
        DataType::Dictionary(key, value) => {
            DataType::is_dictionary_key_type(key) && writable(value)
        }
        _ => ty.is_integer() || ty.is_floating(),
    }
}

fn write_str(buf: &mut Vec<u8>, s: &str) {
    // Writing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, s);
}

/// A float as JSON, in its shortest form for its own width (a float32 29.9 is `29.9`, as written).
/// One that is not finite has no JSON number: it is written as `[]`, which no fact takes, so that the
/// schema rejects the row with the field named rather than the value being read as unknown or as text.
fn write_float<F: Copy + Into<f64> + serde::Serialize>(buf: &mut Vec<u8>, v: F) {
    if v.into().is_finite() {
        let _ = serde_json::to_writer(&mut *buf, &v);
    } else {
        buf.extend_from_slice(b"[]");
    }
}

/// Whether the cell at `row` holds no value: null in the array, or in the dictionary it points to,
/// or of the null type (whose arrays carry no validity).
fn is_absent(array: &dyn Array, row: usize) -> bool {
    match array.data_type() {
        DataType::Null => true,
        DataType::Dictionary(_, _) => {
            array.is_null(row)
                || dictionary_entry(array, row).is_none_or(|(values, k)| is_absent(values, k))
        }
        _ => array.is_null(row),
    }
}

/// The value at `row` of `array` (not null at the top level: callers skip null cells), as JSON.
fn write_value(buf: &mut Vec<u8>, array: &dyn Array, row: usize) {
    if is_absent(array, row) {
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
        DataType::Float16 => {
            write_float(buf, array.as_primitive::<Float16Type>().value(row).to_f32())
        }
        DataType::Float32 => write_float(buf, array.as_primitive::<Float32Type>().value(row)),
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
        DataType::FixedSizeList(_, _) => {
            write_items(buf, array.as_fixed_size_list().value(row).as_ref());
        }
        DataType::Struct(_) => {
            let array = array.as_struct();
            let members = array
                .column_names()
                .into_iter()
                .zip(array.columns().iter().map(|c| c.as_ref()));
            write_object(buf, members, row);
        }
        DataType::Dictionary(_, _) => match dictionary_entry(array, row) {
            Some((values, k)) => write_value(buf, values, k),
            None => buf.extend_from_slice(b"null"),
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
        if is_absent(column, row) {
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

/// A dictionary cell's values and the key it holds (`None` when the key is out of range).
fn dictionary_entry(array: &dyn Array, row: usize) -> Option<(&dyn Array, usize)> {
    fn entry<K: ArrowDictionaryKeyType>(
        array: &dyn Array,
        row: usize,
    ) -> Option<(&dyn Array, usize)> {
        let dictionary = array.as_dictionary::<K>();
        let key = dictionary.keys().value(row).as_usize();
        let values = dictionary.values().as_ref();
        (key < values.len()).then_some((values, key))
    }
    let DataType::Dictionary(key, _) = array.data_type() else {
        return None;
    };
    match key.as_ref() {
        DataType::Int8 => entry::<Int8Type>(array, row),
        DataType::Int16 => entry::<Int16Type>(array, row),
        DataType::Int32 => entry::<Int32Type>(array, row),
        DataType::Int64 => entry::<Int64Type>(array, row),
        DataType::UInt8 => entry::<UInt8Type>(array, row),
        DataType::UInt16 => entry::<UInt16Type>(array, row),
        DataType::UInt32 => entry::<UInt32Type>(array, row),
        DataType::UInt64 => entry::<UInt64Type>(array, row),
        _ => None,
    }
}
