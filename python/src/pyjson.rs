//! A profile given as a Python object (a dict), written as the JSON text the command line would read.
//!
//! As `json.dumps` would write it, but for what has no JSON form: a float that is not finite is
//! written as `[]`, which no fact takes, so the schema rejects the record with that member named (as
//! a `NaN` cell of a flat table is); anything else with no JSON form (a `datetime`, a key that is not
//! a string, nesting deeper than the parser reads) makes the record invalid with its place named.
//! Nothing here puts a value in a message.

use medscreen_core::schema::{Problem, ProblemCode, escape_pointer};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// Deeper than any profile, and than the JSON parser reads.
const MAX_DEPTH: usize = 128;

/// Write `obj` as JSON into `buf`.
pub(crate) fn write(obj: &Bound<'_, PyAny>, buf: &mut Vec<u8>) -> Result<(), Problem> {
    write_at(obj, buf, &mut String::new(), 0)
}

fn write_at(
    obj: &Bound<'_, PyAny>,
    buf: &mut Vec<u8>,
    pointer: &mut String,
    depth: usize,
) -> Result<(), Problem> {
    if depth > MAX_DEPTH {
        return Err(Problem::new(
            pointer.clone(),
            ProblemCode::TooDeep,
            "nested too deeply",
        ));
    }
    if obj.is_none() {
        buf.extend_from_slice(b"null");
    } else if obj.is_instance_of::<PyBool>() {
        buf.extend_from_slice(if obj.is_truthy().unwrap_or(false) {
            b"true"
        } else {
            b"false"
        });
    } else if obj.is_instance_of::<PyInt>() {
        // An int of any size: its decimal text is a JSON number.
        let text = obj.str().map_err(|_| unwritable(pointer, obj))?;
        buf.extend_from_slice(text.to_string().as_bytes());
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        let v = f.value();
        if v.is_finite() {
            let _ = serde_json::to_writer(&mut *buf, &v);
        } else {
            buf.extend_from_slice(b"[]");
        }
    } else if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_cow().map_err(|_| {
            Problem::new(
                pointer.clone(),
                ProblemCode::InvalidUtf8,
                "the text is not valid UTF-8",
            )
        })?;
        let _ = serde_json::to_writer(&mut *buf, text.as_ref());
    } else if let Ok(d) = obj.cast::<PyDict>() {
        buf.push(b'{');
        for (k, (key, value)) in d.iter().enumerate() {
            let key = key.cast::<PyString>().ok().and_then(|s| s.to_cow().ok());
            let Some(key) = key else {
                return Err(Problem::new(
                    pointer.clone(),
                    ProblemCode::InvalidJson,
                    "an object has a key that is not a string",
                ));
            };
            if k > 0 {
                buf.push(b',');
            }
            let _ = serde_json::to_writer(&mut *buf, key.as_ref());
            buf.push(b':');
            let len = pointer.len();
            pointer.push('/');
            pointer.push_str(&escape_pointer(&key));
            write_at(&value, buf, pointer, depth + 1)?;
            pointer.truncate(len);
        }
        buf.push(b'}');
    } else if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        buf.push(b'[');
        for (k, item) in obj
            .try_iter()
            .map_err(|_| unwritable(pointer, obj))?
            .enumerate()
        {
            let item = item.map_err(|_| unwritable(pointer, obj))?;
            if k > 0 {
                buf.push(b',');
            }
            let len = pointer.len();
            pointer.push('/');
            pointer.push_str(&k.to_string());
            write_at(&item, buf, pointer, depth + 1)?;
            pointer.truncate(len);
        }
        buf.push(b']');
    } else {
        return Err(unwritable(pointer, obj));
    }
    Ok(())
}

/// `obj`, at `pointer`, has no JSON form; the message names its type, not its value.
fn unwritable(pointer: &str, obj: &Bound<'_, PyAny>) -> Problem {
    let kind = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    Problem::new(
        pointer,
        ProblemCode::TypeMismatch,
        format!("a value of type `{kind}` has no JSON form"),
    )
}
