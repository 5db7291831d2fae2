//! The report of a run as it happens: `medscreen screen --report` hands a [`Collector`] to the batch
//! driver, whose workers give it each result as written with the profile it is about, so the page also
//! has what results on disk do not carry (age and sex).

use std::sync::{Mutex, MutexGuard};

use medscreen_core::Profile;
use medscreen_core::batch::Observer;

use crate::{Demographics, Report, ReportError, ReportOptions};

/// A report fed by the batch driver's workers (through [`Observer`]), from several threads.
pub struct Collector {
    state: Mutex<State>,
}

struct State {
    report: Report,
    /// The first result that could not be counted: kept, never lost, and returned by
    /// [`Collector::finish`]. (With NDJSON output, the only output `screen --report` accepts, every
    /// result is one.)
    error: Option<ReportError>,
}

impl Collector {
    /// An empty report with `opts`.
    pub fn new(opts: ReportOptions) -> Collector {
        Collector {
            state: Mutex::new(State {
                report: Report::new(opts),
                error: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A worker that panicked mid-count leaves counts, not broken memory: keep them.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The report of everything observed, with the run's summary (`--summary` JSON), or the first result
    /// that could not be counted.
    pub fn finish(&self, summary_json: &[u8]) -> Result<Report, ReportError> {
        let mut state = self.lock();
        if let Some(e) = state.error.take() {
            return Err(e);
        }
        let mut report =
            std::mem::replace(&mut state.report, Report::new(ReportOptions::default()));
        report.add_summary(summary_json)?;
        Ok(report)
    }
}

impl Observer for Collector {
    fn result(&self, written: &[u8], profile: Option<&Profile>) {
        let line = written.strip_suffix(b"\n").unwrap_or(written);
        let demographics = profile.map(Demographics::from_profile);
        let mut state = self.lock();
        if state.error.is_none()
            && let Err(e) = state.report.add_result(line, demographics)
        {
            state.error = Some(e);
        }
    }
}
