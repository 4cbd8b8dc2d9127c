//! Where a report came from: the phase of a run and the test or scenario inside it.
//!
//! The parser never sets an origin; the caller that knows which process wrote a log does.
//! The phases are ftreview's; logs triaged on their own carry no origin.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One step of an ftreview run, in the order a run takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Fetch,
    Venv,
    ProjectInfo,
    Build,
    Install,
    TestDeps,
    GilCheck,
    /// The test suite as is (also records which tests reach the extension).
    Tests,
    /// The suite under pytest-run-parallel.
    ParallelTests,
    /// Generated multithreaded scenarios.
    Stress,
    /// Single-threaded reruns that tell concurrency bugs from plain ones.
    Control,
    /// Reruns of the small per-problem reproducers.
    Repro,
}

impl Phase {
    /// The name used in run records, logs directories and the plan.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Fetch => "fetch",
            Phase::Venv => "venv",
            Phase::ProjectInfo => "project-info",
            Phase::Build => "build",
            Phase::Install => "install",
            Phase::TestDeps => "test-deps",
            Phase::GilCheck => "gil-check",
            Phase::Tests => "tests",
            Phase::ParallelTests => "parallel-tests",
            Phase::Stress => "stress",
            Phase::Control => "control",
            Phase::Repro => "repro",
        }
    }

    /// Phases that run the extension under TSan with threads or its test suite.
    pub fn is_instrumented(self) -> bool {
        matches!(
            self,
            Phase::Tests | Phase::ParallelTests | Phase::Stress | Phase::Control | Phase::Repro
        )
    }

    /// Phases that run the extension from several threads at once.
    pub fn is_concurrent(self) -> bool {
        matches!(self, Phase::ParallelTests | Phase::Stress | Phase::Repro)
    }

    /// The two phases that run the project's own test suite.
    pub fn is_test_suite(self) -> bool {
        matches!(self, Phase::Tests | Phase::ParallelTests)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which test or scenario of which phase produced something.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Origin {
    pub phase: Phase,
    /// pytest node id or scenario name; `None` outside any test (collection, teardown).
    pub item: Option<String>,
}

impl Origin {
    pub fn new(phase: Phase, item: impl Into<String>) -> Origin {
        Origin {
            phase,
            item: Some(item.into()),
        }
    }

    /// Something of `phase` that happened outside any test or scenario.
    pub fn outside(phase: Phase) -> Origin {
        Origin { phase, item: None }
    }

    /// The scenario name, when this is a stress scenario.
    pub fn scenario(&self) -> Option<&str> {
        (self.phase == Phase::Stress)
            .then_some(self.item.as_deref())
            .flatten()
    }

    /// The pytest node id, when this is a test of the suite.
    pub fn test(&self) -> Option<&str> {
        self.phase
            .is_test_suite()
            .then_some(self.item.as_deref())
            .flatten()
    }
}

/// `phase: item`, or the phase alone.
impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.item {
            Some(item) => write!(f, "{}: {item}", self.phase),
            None => write!(f, "{} (outside tests)", self.phase),
        }
    }
}
