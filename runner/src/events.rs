//! One event stream from the review to whoever shows it. The review emits [`Event`]s; a
//! [`Reporter`] turns them into output. [`Display`] is the one on stderr: a spinner per running
//! task on a terminal (several run at once with `--jobs`), plain lines otherwise, only
//! warnings and findings with `--quiet`. The toolchain's build events come through here too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub use ftreview_toolchain::format_secs;
use ftreview_toolchain::BuildEvent;

/// Something worth telling the user while a review runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Note(String),
    Warning(String),
    Started {
        task: String,
    },
    Finished {
        task: String,
        summary: String,
        seconds: f64,
    },
    /// A race, crash or hang seen for the first time in this run, as soon as it was parsed.
    Found(FirstSight),
}

/// A new finding: what, where, from which test or scenario, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstSight {
    /// `data race`, `SEGV`, `hang`.
    pub kind: String,
    /// `file:line (function)` of each side, or the faulting frame.
    pub sites: Vec<String>,
    pub origin: String,
    /// Since the review started.
    pub elapsed: Duration,
}

/// Receives the events of a review.
pub trait Reporter: Send + Sync {
    fn event(&self, event: &Event);
}

/// The handle the review emits through; cheap to clone.
#[derive(Clone)]
pub struct Events {
    reporter: Arc<dyn Reporter>,
}

/// A running task; [`Task::finish`] ends it with a summary.
pub struct Task {
    events: Events,
    label: String,
    started: Instant,
    finished: bool,
}

impl Events {
    pub fn new(reporter: Arc<dyn Reporter>) -> Events {
        Events { reporter }
    }

    pub fn emit(&self, event: Event) {
        self.reporter.event(&event);
    }

    pub fn note(&self, message: &str) {
        self.emit(Event::Note(message.to_string()));
    }

    pub fn warn(&self, message: &str) {
        self.emit(Event::Warning(message.to_string()));
    }

    pub fn start(&self, label: &str) -> Task {
        self.emit(Event::Started {
            task: label.to_string(),
        });
        Task {
            events: self.clone(),
            label: label.to_string(),
            started: Instant::now(),
            finished: false,
        }
    }

    /// The toolchain's progress, rendered by the same reporter.
    pub fn toolchain(&self) -> ftreview_toolchain::Progress {
        let events = self.clone();
        ftreview_toolchain::Progress::to(move |event| match event {
            BuildEvent::Note(message) => events.note(&message),
            BuildEvent::Started { step, log } => events.emit(Event::Started {
                task: match log {
                    Some(log) => format!("{step}  (log: {})", log.display()),
                    None => step,
                },
            }),
            BuildEvent::Finished {
                step,
                seconds,
                success,
            } => events.emit(Event::Finished {
                task: step,
                summary: if success { "done" } else { "failed" }.into(),
                seconds,
            }),
        })
    }
}

impl Task {
    /// Ends the task with a one-line result; returns its wall time in seconds.
    pub fn finish(mut self, summary: &str) -> f64 {
        self.end(summary)
    }

    fn end(&mut self, summary: &str) -> f64 {
        let seconds = self.started.elapsed().as_secs_f64();
        self.finished = true;
        self.events.emit(Event::Finished {
            task: self.label.clone(),
            summary: summary.to_string(),
            seconds,
        });
        seconds
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if !self.finished {
            self.end("stopped");
        }
    }
}

/// The stderr display.
pub struct Display {
    multi: Option<MultiProgress>,
    verbose: bool,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Display {
    /// `quiet` keeps only warnings and findings.
    pub fn stderr(quiet: bool) -> Events {
        let terminal = !ProgressDrawTarget::stderr().is_hidden();
        Events::new(Arc::new(Display {
            multi: (terminal && !quiet).then(MultiProgress::new),
            verbose: !quiet,
            bars: Mutex::new(HashMap::new()),
        }))
    }

    fn line(&self, text: &str) {
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    fn spinner(&self, multi: &MultiProgress, task: &str) {
        let bar = multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"),
        );
        bar.set_message(task.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(task.to_string(), bar);
        }
    }

    fn clear_spinner(&self, task: &str) {
        let bar = self.bars.lock().ok().and_then(|mut bars| {
            // A toolchain step's spinner carries its log path after the name.
            let key = bars.keys().find(|k| k.starts_with(task)).cloned()?;
            bars.remove(&key)
        });
        if let (Some(bar), Some(multi)) = (bar, &self.multi) {
            bar.finish_and_clear();
            multi.remove(&bar);
        }
    }
}

impl Reporter for Display {
    fn event(&self, event: &Event) {
        match event {
            Event::Note(message) if self.verbose => self.line(message),
            Event::Note(_) => {}
            Event::Warning(message) => self.line(&format!("warning: {message}")),
            Event::Started { task } => match &self.multi {
                Some(multi) => self.spinner(multi, task),
                None if self.verbose => eprintln!("{task} ..."),
                None => {}
            },
            Event::Finished {
                task,
                summary,
                seconds,
            } => {
                self.clear_spinner(task);
                if self.verbose {
                    self.line(&format!("{task}: {summary} ({})", format_secs(*seconds)));
                }
            }
            Event::Found(found) => self.line(&format!(
                "[{}] new {}: {} (from {})",
                format_secs(found.elapsed.as_secs_f64()),
                found.kind,
                found.sites.join(" vs "),
                found.origin
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps every event, as a CI log reader would see them.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<Event>>);

    impl Reporter for Recorder {
        fn event(&self, event: &Event) {
            self.0.lock().unwrap().push(event.clone());
        }
    }

    #[test]
    fn toolchain_steps_and_abandoned_tasks_reach_the_reporter() {
        let recorder = Arc::new(Recorder::default());
        let events = Events::new(recorder.clone());
        events.toolchain().phase("configure", None).done();
        drop(events.start("stress"));
        let seen = recorder.0.lock().unwrap();
        let finished: Vec<(&str, &str)> = seen
            .iter()
            .filter_map(|e| match e {
                Event::Finished { task, summary, .. } => Some((task.as_str(), summary.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(finished, [("configure", "done"), ("stress", "stopped")]);
    }
}
