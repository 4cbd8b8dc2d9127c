//! Progress of the long steps, as events for the caller's display: the toolchain draws
//! nothing itself, so one display (the runner's) shows the build and the review alike.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// What the toolchain tells its caller while it works.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildEvent {
    /// A one-off message (source chosen, cache hit, fallbacks).
    Note(String),
    /// A step started; `log` is where its output goes (for `tail -f`).
    Started { step: String, log: Option<PathBuf> },
    /// A step ended (successfully or not) after `seconds`.
    Finished {
        step: String,
        seconds: f64,
        success: bool,
    },
}

/// Where build events go.
#[derive(Clone)]
pub struct Progress {
    sink: Option<Arc<dyn Fn(BuildEvent) + Send + Sync>>,
}

/// One running step; finish it with [`Phase::done`]. Dropped unfinished, it reports failure.
pub struct Phase {
    progress: Progress,
    started: Instant,
    name: String,
    finished: bool,
}

impl Progress {
    /// Sends every event to `sink`.
    pub fn to(sink: impl Fn(BuildEvent) + Send + Sync + 'static) -> Progress {
        Progress {
            sink: Some(Arc::new(sink)),
        }
    }

    /// Drops every event (tests, callers without a display).
    pub fn hidden() -> Progress {
        Progress { sink: None }
    }

    fn emit(&self, event: BuildEvent) {
        if let Some(sink) = &self.sink {
            sink(event);
        }
    }

    pub fn note(&self, message: &str) {
        self.emit(BuildEvent::Note(message.to_string()));
    }

    /// Starts a step.
    pub fn phase(&self, name: &str, log: Option<&Path>) -> Phase {
        self.emit(BuildEvent::Started {
            step: name.to_string(),
            log: log.map(Path::to_path_buf),
        });
        Phase {
            progress: self.clone(),
            started: Instant::now(),
            name: name.to_string(),
            finished: false,
        }
    }
}

impl Phase {
    /// Ends the step and returns its wall time in seconds.
    pub fn done(mut self) -> f64 {
        self.finish(true)
    }

    fn finish(&mut self, success: bool) -> f64 {
        let seconds = self.started.elapsed().as_secs_f64();
        self.finished = true;
        self.progress.emit(BuildEvent::Finished {
            step: self.name.clone(),
            seconds,
            success,
        });
        seconds
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        if !self.finished {
            self.finish(false);
        }
    }
}

/// `3m 12s`, `41.2s`.
pub fn format_secs(secs: f64) -> String {
    if secs >= 60.0 {
        format!("{}m {:02}s", (secs / 60.0) as u64, (secs % 60.0) as u64)
    } else {
        format!("{secs:.1}s")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn durations_read_like_a_human_wrote_them() {
        assert_eq!(format_secs(4.25), "4.2s");
        assert_eq!(format_secs(192.0), "3m 12s");
    }

    #[test]
    fn a_step_abandoned_by_an_error_reports_failure() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let progress = Progress::to(move |e| sink.lock().unwrap().push(e));
        progress.phase("ok", None).done();
        drop(progress.phase("broken", None));
        let outcomes: Vec<(String, bool)> = seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                BuildEvent::Finished { step, success, .. } => Some((step.clone(), *success)),
                _ => None,
            })
            .collect();
        assert_eq!(
            outcomes,
            [("ok".to_string(), true), ("broken".to_string(), false)]
        );
    }
}
