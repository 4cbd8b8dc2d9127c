//! What a scenario script reports about its own run.
//!
//! The script writes this JSON to the path in the environment variable [`OUTCOME_ENV`]: once
//! with status `started` before the workers run, and again with `finished` at the end. A file
//! still saying `started` means the process died in between (a crash or a kill).

use serde::{Deserialize, Serialize};

/// Environment variable naming the file a scenario writes its outcome to.
pub const OUTCOME_ENV: &str = "FTREVIEW_OUTCOME";

/// Environment variable naming the file where a scenario writes the time (Unix seconds) from
/// which it is stuck if it still runs: at once when a worker is alive past the workers'
/// deadline with no progress for 10 s, 10 s on when the script ends (a finalization that
/// spins). The runner need not wait for the timeout.
pub const STUCK_FILE_ENV: &str = "FTREVIEW_STUCK_FILE";

/// Set to `1`, a scenario script runs as the control: the same operations (same seed, each
/// worker's sequence) in one thread, round-robin, without child processes. Run it in a fresh
/// process; an anomaly it shows too ([`same_anomaly_in_control`]) is single-threaded.
pub const SINGLE_THREAD_ENV: &str = "FTREVIEW_SINGLE_THREAD";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioOutcome {
    pub format: u32,
    pub scenario: String,
    pub kind: String,
    pub status: OutcomeStatus,
    /// The control run ([`SINGLE_THREAD_ENV`]).
    #[serde(default)]
    pub single_thread: bool,
    pub seed: u64,
    pub threads: u32,
    /// Iterations per thread the script was generated with.
    pub iterations: u64,
    /// Iterations all threads completed.
    pub iterations_done: u64,
    pub elapsed_secs: f64,
    pub budget_secs: f64,
    /// A worker stopped because the time budget ran out.
    pub budget_exhausted: bool,
    /// Child processes that repeated the simultaneous first calls (lazy initialisation).
    #[serde(default)]
    pub first_call_processes: u64,
    /// Python exceptions raised in workers (expected under contention, not failures).
    pub worker_exceptions: u64,
    pub exceptions: Vec<ExceptionRecord>,
    /// Logical corruption TSan cannot see: findings of their own.
    pub anomalies: Vec<Anomaly>,
    /// The scenario could not run (its setup raised).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutcomeStatus {
    Started,
    Finished,
}

/// One kind of exception of one operation, counted over all workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExceptionRecord {
    pub op: String,
    #[serde(rename = "type")]
    pub exc_type: String,
    pub message: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    /// The operation (or `invariants of S`) that showed it.
    pub op: String,
    pub detail: String,
    pub count: u64,
    /// One-line Python reproducer: the shared object's constructor and the operation
    /// (`import pkg; S = pkg.T(); S.add('a')`). For an invariant, rebuilding and reading the
    /// object (the sequence that broke it is the scenario's).
    #[serde(default)]
    pub call: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnomalyKind {
    /// `SystemError`: a C function returned an error without an exception, or the reverse.
    InternalError,
    /// A quiescent object disagrees with itself (`len` vs iteration, iterated key not `in`).
    Invariant,
}

impl std::fmt::Display for Anomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            AnomalyKind::InternalError => "internal error",
            AnomalyKind::Invariant => "broken invariant",
        };
        write!(
            f,
            "{kind} in {}: {} (×{})",
            self.op, self.detail, self.count
        )
    }
}

/// The control run ([`SINGLE_THREAD_ENV`]) showed the same anomaly (kind and operation): it
/// happens without concurrency, a single-threaded bug rather than corruption by a race.
pub fn same_anomaly_in_control(anomaly: &Anomaly, control: &ScenarioOutcome) -> bool {
    control.single_thread
        && control
            .anomalies
            .iter()
            .any(|a| a.kind == anomaly.kind && a.op == anomaly.op)
}

impl ScenarioOutcome {
    /// The process died after the workers started (crash, kill, timeout).
    pub fn died(&self) -> bool {
        self.status == OutcomeStatus::Started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(single_thread: bool, anomalies: Vec<Anomaly>) -> ScenarioOutcome {
        ScenarioOutcome {
            format: 2,
            scenario: "function-hammer.pkg".into(),
            kind: "function-hammer".into(),
            status: OutcomeStatus::Finished,
            single_thread,
            seed: 1,
            threads: 4,
            iterations: 10,
            iterations_done: 40,
            elapsed_secs: 1.0,
            budget_secs: 1.0,
            budget_exhausted: false,
            first_call_processes: 0,
            worker_exceptions: 0,
            exceptions: Vec::new(),
            anomalies,
            error: None,
        }
    }

    fn anomaly(kind: AnomalyKind, op: &str) -> Anomaly {
        Anomaly {
            kind,
            op: op.into(),
            detail: "SystemError: boom".into(),
            count: 3,
            call: format!("import pkg; pkg.{op}"),
        }
    }

    #[test]
    fn the_control_reproduces_an_anomaly_of_the_same_kind_and_op() {
        let seen = anomaly(AnomalyKind::InternalError, "f('a')");
        let control = outcome(true, vec![anomaly(AnomalyKind::InternalError, "f('a')")]);
        assert!(same_anomaly_in_control(&seen, &control));
        let other_op = outcome(true, vec![anomaly(AnomalyKind::InternalError, "f(1)")]);
        assert!(!same_anomaly_in_control(&seen, &other_op));
        let other_kind = outcome(true, vec![anomaly(AnomalyKind::Invariant, "f('a')")]);
        assert!(!same_anomaly_in_control(&seen, &other_kind));
        let concurrent = outcome(false, vec![anomaly(AnomalyKind::InternalError, "f('a')")]);
        assert!(!same_anomaly_in_control(&seen, &concurrent));
    }
}
