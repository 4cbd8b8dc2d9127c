//! Progress for the long steps: a spinner with phase, elapsed time and log path on a
//! terminal; plain lines otherwise (CI logs); nothing at all for tests.

use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Reports build phases to the user.
pub struct Progress {
    mode: Mode,
}

enum Mode {
    Terminal,
    Lines,
    Hidden,
}

/// One running phase; finish it with [`Phase::done`].
pub struct Phase {
    bar: Option<ProgressBar>,
    started: Instant,
    name: String,
    lines: bool,
}

impl Progress {
    /// Spinner on stderr when it is a terminal, plain lines otherwise.
    pub fn stderr() -> Progress {
        let mode = if ProgressDrawTarget::stderr().is_hidden() {
            Mode::Lines
        } else {
            Mode::Terminal
        };
        Progress { mode }
    }

    /// Prints nothing (tests, library callers with their own display).
    pub fn hidden() -> Progress {
        Progress { mode: Mode::Hidden }
    }

    /// A one-off message (source chosen, cache hit, fallbacks).
    pub fn note(&self, message: &str) {
        match self.mode {
            Mode::Hidden => {}
            Mode::Terminal | Mode::Lines => eprintln!("{message}"),
        }
    }

    /// Starts a phase; `log` is shown so a user can `tail -f` it.
    pub fn phase(&self, name: &str, log: Option<&Path>) -> Phase {
        let detail = log
            .map(|l| format!("  (log: {})", l.display()))
            .unwrap_or_default();
        let bar = match self.mode {
            Mode::Terminal => {
                let bar = ProgressBar::new_spinner();
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                        .expect("valid template"),
                );
                bar.set_message(format!("{name}{detail}"));
                bar.enable_steady_tick(Duration::from_millis(200));
                Some(bar)
            }
            Mode::Lines => {
                eprintln!("{name}...{detail}");
                None
            }
            Mode::Hidden => None,
        };
        Phase {
            bar,
            started: Instant::now(),
            name: name.to_string(),
            lines: matches!(self.mode, Mode::Lines | Mode::Terminal),
        }
    }
}

impl Phase {
    /// Ends the phase and returns its wall time in seconds.
    pub fn done(self) -> f64 {
        let secs = self.started.elapsed().as_secs_f64();
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.lines {
            eprintln!("{} done in {}", self.name, format_secs(secs));
        }
        secs
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        // A phase abandoned by an error must not leave a spinner ticking over the message.
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
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
    use super::*;

    #[test]
    fn durations_read_like_a_human_wrote_them() {
        assert_eq!(format_secs(4.25), "4.2s");
        assert_eq!(format_secs(192.0), "3m 12s");
    }
}
