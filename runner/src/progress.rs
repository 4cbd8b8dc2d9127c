//! Progress on stderr: one spinner per running task on a terminal (several run at once with
//! `--jobs`), plain lines otherwise, nothing with `--quiet`.

use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub use ftreview_toolchain::format_secs;

#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
    lines: bool,
}

pub struct Task {
    bar: Option<ProgressBar>,
    label: String,
    started: Instant,
    lines: bool,
    multi: Option<MultiProgress>,
}

impl Progress {
    pub fn stderr(quiet: bool) -> Progress {
        let terminal = !ProgressDrawTarget::stderr().is_hidden();
        Progress {
            multi: (terminal && !quiet).then(MultiProgress::new),
            lines: !quiet,
        }
    }

    /// A message that stays (printed above the spinners).
    pub fn note(&self, message: &str) {
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(message);
            }
            None if self.lines => eprintln!("{message}"),
            None => {}
        }
    }

    pub fn start(&self, label: &str) -> Task {
        let bar = self.multi.as_ref().map(|multi| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                    .expect("valid template"),
            );
            bar.set_message(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        if bar.is_none() && self.lines {
            eprintln!("{label} ...");
        }
        Task {
            bar,
            label: label.to_string(),
            started: Instant::now(),
            lines: self.lines,
            multi: self.multi.clone(),
        }
    }
}

impl Task {
    /// Ends the task with a one-line result; returns its wall time in seconds.
    pub fn finish(self, result: &str) -> f64 {
        let secs = self.started.elapsed().as_secs_f64();
        let line = format!("{}: {result} ({})", self.label, format_secs(secs));
        match (&self.bar, &self.multi) {
            (Some(bar), Some(multi)) => {
                bar.finish_and_clear();
                multi.remove(bar);
                let _ = multi.println(line);
            }
            _ if self.lines => eprintln!("{line}"),
            _ => {}
        }
        secs
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
