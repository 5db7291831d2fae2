//! Results as Arrow columns: one row per record and pack.
//!
//! | column | type | |
//! |---|---|---|
//! | `index` | int64 | the record's position in the input, from 0 |
//! | `id` | string | the record's `id`; null when an invalid record had none that could be read |
//! | `pack` | string | the pack this row is for |
//! | `status` | string | `clear`, `flagged` or `invalid` |
//! | `max_severity` | string | the highest severity of the cautions; null when there is none |
//! | `cautions` | list<struct<rule, severity, evidence>> | `evidence` is the JSON array the NDJSON result carries |
//! | `indeterminate` | list<struct<rule, missing: list<string>>> | rules undecided for want of facts |
//! | `errors` | list<struct<pointer, code, message, help>> | why an invalid record was not screened |
//! | `ruleset` | string | the pack's `name@version#hash` |
//!
//! A column is null where the NDJSON result has no such member: `cautions`, `indeterminate` and
//! `ruleset` for an invalid record, `errors` for a screened one. An invalid record has one row per
//! pack, so that each pack's rows account for every record.

use std::sync::{Arc, LazyLock};

use arrow_array::builder::{ArrayBuilder, StringBuilder};
use arrow_array::{ArrayRef, Int64Array, ListArray, RecordBatch, StructArray};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema, SchemaRef};
use medscreen_core::Status;
use medscreen_core::output::evidence_json;

use crate::Outcome;

fn text(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn caution_fields() -> Fields {
    Fields::from(vec![
        text("rule", false),
        text("severity", false),
        text("evidence", false),
    ])
}

fn missing_item() -> Arc<Field> {
    Arc::new(text("item", false))
}

fn indeterminate_fields() -> Fields {
    Fields::from(vec![
        text("rule", false),
        Field::new("missing", DataType::List(missing_item()), false),
    ])
}

fn error_fields() -> Fields {
    Fields::from(vec![
        text("pointer", false),
        text("code", false),
        text("message", false),
        text("help", true),
    ])
}

fn item(fields: Fields) -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(fields), false))
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("index", DataType::Int64, false),
        text("id", true),
        text("pack", false),
        text("status", false),
        text("max_severity", true),
        Field::new("cautions", DataType::List(item(caution_fields())), true),
        Field::new(
            "indeterminate",
            DataType::List(item(indeterminate_fields())),
            true,
        ),
        Field::new("errors", DataType::List(item(error_fields())), true),
        text("ruleset", true),
    ]))
});

/// The schema of every result batch.
pub(crate) fn schema() -> SchemaRef {
    SCHEMA.clone()
}

/// The offsets and validity of a list column.
struct Lists {
    offsets: Vec<i32>,
    valid: NullBufferBuilder,
}

impl Lists {
    fn with_capacity(rows: usize) -> Lists {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Lists {
            offsets,
            valid: NullBufferBuilder::new(rows),
        }
    }

    /// End a list whose items are the first `items` of the values so far.
    fn close(&mut self, items: usize) {
        self.offsets.push(items as i32);
        self.valid.append_non_null();
    }

    /// A null list.
    fn null(&mut self) {
        let last = self.offsets.last().copied().unwrap_or(0);
        self.offsets.push(last);
        self.valid.append_null();
    }

    fn finish(mut self, item: Arc<Field>, values: ArrayRef) -> Result<ListArray, ArrowError> {
        ListArray::try_new(
            item,
            OffsetBuffer::new(ScalarBuffer::from(self.offsets)),
            values,
            self.valid.finish(),
        )
    }
}

fn strings(builder: &mut StringBuilder) -> ArrayRef {
    Arc::new(builder.finish())
}

/// The columns of one result batch, filled a row at a time.
pub(crate) struct Columns {
    index: Vec<i64>,
    id: StringBuilder,
    pack: StringBuilder,
    status: StringBuilder,
    max_severity: StringBuilder,
    cautions: Lists,
    caution_rule: StringBuilder,
    caution_severity: StringBuilder,
    caution_evidence: StringBuilder,
    indeterminate: Lists,
    indeterminate_rule: StringBuilder,
    missing: Lists,
    missing_fact: StringBuilder,
    errors: Lists,
    error_pointer: StringBuilder,
    error_code: StringBuilder,
    error_message: StringBuilder,
    error_help: StringBuilder,
    ruleset: StringBuilder,
    evidence: Vec<u8>,
}

impl Columns {
    pub(crate) fn with_capacity(rows: usize) -> Columns {
        Columns {
            index: Vec::with_capacity(rows),
            id: StringBuilder::with_capacity(rows, rows * 16),
            pack: StringBuilder::with_capacity(rows, rows * 10),
            status: StringBuilder::with_capacity(rows, rows * 7),
            max_severity: StringBuilder::new(),
            cautions: Lists::with_capacity(rows),
            caution_rule: StringBuilder::new(),
            caution_severity: StringBuilder::new(),
            caution_evidence: StringBuilder::new(),
            indeterminate: Lists::with_capacity(rows),
            indeterminate_rule: StringBuilder::new(),
            missing: Lists::with_capacity(rows),
            missing_fact: StringBuilder::new(),
            errors: Lists::with_capacity(rows),
            error_pointer: StringBuilder::new(),
            error_code: StringBuilder::new(),
            error_message: StringBuilder::new(),
            error_help: StringBuilder::new(),
            ruleset: StringBuilder::with_capacity(rows, rows * 32),
            evidence: Vec::new(),
        }
    }

    /// Add the rows of one record: one per pack.
    pub(crate) fn push(&mut self, index: u64, packs: &[&str], outcome: &Outcome<'_>) {
        match outcome {
            Outcome::Screened(screenings) => {
                for (s, pack) in screenings.iter().zip(packs) {
                    self.index.push(index as i64);
                    self.id.append_value(&s.id);
                    self.pack.append_value(pack);
                    self.status.append_value(match s.status {
                        Status::Clear => "clear",
                        Status::Flagged => "flagged",
                    });
                    self.max_severity
                        .append_option(s.max_severity.map(|m| m.as_str()));
                    for c in &s.cautions {
                        self.caution_rule.append_value(c.rule);
                        self.caution_severity.append_value(c.severity.as_str());
                        self.evidence.clear();
                        evidence_json(&mut self.evidence, &c.evidence);
                        self.caution_evidence
                            .append_value(String::from_utf8_lossy(&self.evidence));
                    }
                    self.cautions.close(self.caution_rule.len());
                    for i in &s.indeterminate {
                        self.indeterminate_rule.append_value(i.rule);
                        for fact in &i.missing {
                            self.missing_fact.append_value(fact);
                        }
                        self.missing.close(self.missing_fact.len());
                    }
                    self.indeterminate.close(self.indeterminate_rule.len());
                    self.errors.null();
                    self.ruleset.append_value(s.ruleset);
                }
            }
            Outcome::Invalid(rejection) => {
                for pack in packs {
                    self.index.push(index as i64);
                    self.id.append_option(rejection.id.as_deref());
                    self.pack.append_value(pack);
                    self.status.append_value("invalid");
                    self.max_severity.append_null();
                    self.cautions.null();
                    self.indeterminate.null();
                    for p in &rejection.problems {
                        self.error_pointer.append_value(&p.pointer);
                        self.error_code.append_value(p.code.as_str());
                        self.error_message.append_value(&p.message);
                        self.error_help.append_option(p.help.as_deref());
                    }
                    self.errors.close(self.error_pointer.len());
                    self.ruleset.append_null();
                }
            }
        }
    }

    pub(crate) fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let cautions = StructArray::try_new(
            caution_fields(),
            vec![
                strings(&mut self.caution_rule),
                strings(&mut self.caution_severity),
                strings(&mut self.caution_evidence),
            ],
            None,
        )?;
        let missing = self
            .missing
            .finish(missing_item(), strings(&mut self.missing_fact))?;
        let indeterminate = StructArray::try_new(
            indeterminate_fields(),
            vec![strings(&mut self.indeterminate_rule), Arc::new(missing)],
            None,
        )?;
        let errors = StructArray::try_new(
            error_fields(),
            vec![
                strings(&mut self.error_pointer),
                strings(&mut self.error_code),
                strings(&mut self.error_message),
                strings(&mut self.error_help),
            ],
            None,
        )?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(self.index)),
            strings(&mut self.id),
            strings(&mut self.pack),
            strings(&mut self.status),
            strings(&mut self.max_severity),
            Arc::new(
                self.cautions
                    .finish(item(caution_fields()), Arc::new(cautions))?,
            ),
            Arc::new(
                self.indeterminate
                    .finish(item(indeterminate_fields()), Arc::new(indeterminate))?,
            ),
            Arc::new(self.errors.finish(item(error_fields()), Arc::new(errors))?),
            strings(&mut self.ruleset),
        ];
        RecordBatch::try_new(schema(), columns)
    }
}
