//! One time budget for the whole review. Setup (fetch, build, environment) spends from it
//! first; what it leaves, less a reserve for the reports, is shared out by expected yield.
//! Stress scenarios find the most per minute, so they start first and always get their share;
//! the suite under pytest-run-parallel comes next, restricted to tests that reach the
//! extension; the plain suite, which mostly attributes reports to tests and tells which tests
//! reach the extension, runs before it and gets the smallest share.
//!
//! With two or more job slots the stress phase and the suites run side by side (two lanes),
//! and the stress phase takes every slot the suites leave free; with one slot the phases run
//! one after the other. `--stress-budget` and `--timeout` fix a phase's share instead.
//!
//! A setup that spent the whole budget (a slow build on a loaded machine) still leaves the
//! phases a floor, past the budget: a review that exercised nothing answers nothing.

use std::time::{Duration, Instant};

use ftreview_reports::model::{Phase, PhaseShare, Schedule};

/// Kept back for clustering and writing the reports.
const REPORT_RESERVE: Duration = Duration::from_secs(30);
/// Share of the phases' time kept for rerunning each problem's small reproducer, and its
/// bounds.
const REPRO_SHARE: f64 = 0.15;
const REPRO_MIN: Duration = Duration::from_secs(20);
const REPRO_MAX: Duration = Duration::from_secs(150);
/// The phases' least time, a tenth of the budget within these bounds.
const FLOOR_MIN: Duration = Duration::from_secs(30);
const FLOOR_MAX: Duration = Duration::from_secs(90);
/// Relative yield of each phase, for sharing out the time.
const WEIGHTS: [(Phase, u32); 3] = [
    (Phase::Stress, 5),
    (Phase::ParallelTests, 3),
    (Phase::Tests, 2),
];

/// The review's clock and its limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    started: Instant,
    total: Duration,
}

impl Budget {
    pub fn start(total: Duration) -> Budget {
        Budget {
            started: Instant::now(),
            total,
        }
    }

    pub fn total(&self) -> Duration {
        self.total
    }

    /// When the instrumented phases must be done, so the reports still fit.
    pub fn phases_end(&self) -> Instant {
        self.started + self.total.saturating_sub(REPORT_RESERVE)
    }

    /// The phases' least time, however much setup spent.
    fn floor(&self) -> Duration {
        (self.total / 10).clamp(FLOOR_MIN, FLOOR_MAX)
    }
}

/// Shares fixed on the command line.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FixedShares {
    pub stress: Option<Duration>,
    /// Each test phase.
    pub test_phase: Option<Duration>,
}

impl FixedShares {
    /// The share fixed for `phase`, if any.
    fn of(&self, phase: Phase) -> Option<Duration> {
        match phase {
            Phase::Stress => self.stress,
            _ => self.test_phase,
        }
    }
}

/// Which phases share the time, and how.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Stress runs beside the suites (several job slots).
    pub concurrent: bool,
    shares: Vec<(Phase, Duration)>,
    /// When the suites' lane and the stress lane end (the same instant unless fixed).
    end: Instant,
    /// When the reproducers' reruns must end (after the lanes).
    repro_end: Instant,
}

impl Plan {
    /// Shares out the time until the budget's end between `phases` (in run order): each lane
    /// gives fixed shares first and splits the rest by weight. The lanes get at least the
    /// budget's floor, and fixed shares even past the budget; the reproducers come after both.
    pub fn new(budget: &Budget, phases: &[Phase], jobs: usize, fixed: FixedShares) -> Plan {
        let now = Instant::now();
        let until_reports = budget.phases_end().saturating_duration_since(now);
        let repro = if phases.contains(&Phase::Repro) {
            until_reports
                .mul_f64(REPRO_SHARE)
                .clamp(REPRO_MIN, REPRO_MAX)
        } else {
            Duration::ZERO
        };
        let left = until_reports.saturating_sub(repro).max(budget.floor());
        let phases: Vec<Phase> = phases
            .iter()
            .copied()
            .filter(|p| *p != Phase::Repro)
            .collect();
        let phases = phases.as_slice();
        let concurrent = jobs >= 2 && phases.contains(&Phase::Stress) && phases.len() > 1;
        let lanes: Vec<Vec<Phase>> = if concurrent {
            let (stress, suites) = phases.iter().partition(|p| **p == Phase::Stress);
            vec![stress, suites]
        } else {
            vec![phases.to_vec()]
        };
        let fixed_share = |phase: Phase| fixed.of(phase);
        let mut shares = Vec::new();
        let mut longest_lane = left;
        for lane in lanes {
            let taken: Duration = lane.iter().filter_map(|p| fixed_share(*p)).sum();
            let free = left.saturating_sub(taken);
            let free_weight: u32 = lane
                .iter()
                .filter(|p| fixed_share(**p).is_none())
                .map(|p| weight(*p))
                .sum();
            for &phase in &lane {
                let share = fixed_share(phase).unwrap_or_else(|| {
                    free.mul_f64(f64::from(weight(phase)) / f64::from(free_weight.max(1)))
                });
                shares.push((phase, share));
            }
            longest_lane = longest_lane.max(taken);
        }
        let end = now + longest_lane;
        let repro_end = end + repro;
        // Back in run order.
        shares.sort_by_key(|(p, _)| phases.iter().position(|q| q == p));
        if !repro.is_zero() {
            shares.push((Phase::Repro, repro));
        }
        Plan {
            concurrent,
            shares,
            end,
            repro_end,
        }
    }

    pub fn includes(&self, phase: Phase) -> bool {
        self.shares.iter().any(|(p, _)| *p == phase)
    }

    /// When a phase starting now must stop: its share, or the lane's end for the last phase
    /// of its lane (which inherits what the earlier ones left).
    pub fn deadline(&self, phase: Phase, fixed: FixedShares) -> Instant {
        let now = Instant::now();
        let share = self.share(phase);
        if phase == Phase::Repro {
            // Its whole share even after a lane overran: an unproven problem is the report a
            // maintainer distrusts.
            return self.repro_end.max(now + share);
        }
        if fixed.of(phase).is_some() {
            return now + share;
        }
        let last_of_lane = self
            .shares
            .iter()
            .filter(|(p, _)| *p != Phase::Repro)
            .rev()
            .find(|(p, _)| !self.concurrent || (*p == Phase::Stress) == (phase == Phase::Stress))
            .is_some_and(|(p, _)| *p == phase);
        if last_of_lane {
            self.end.max(now)
        } else {
            (now + share).min(self.end.max(now))
        }
    }

    /// When the last phase of the suites' lane must stop.
    pub fn suites_end(&self, fixed: FixedShares) -> Instant {
        [Phase::Tests, Phase::ParallelTests]
            .into_iter()
            .filter(|p| self.includes(*p))
            .map(|p| self.deadline(p, fixed))
            .max()
            .unwrap_or_else(Instant::now)
    }

    fn share(&self, phase: Phase) -> Duration {
        self.shares
            .iter()
            .find(|(p, _)| *p == phase)
            .map_or(Duration::ZERO, |(_, s)| *s)
    }

    /// The record of the plan.
    pub fn record(&self, budget: &Budget, setup_secs: f64) -> Schedule {
        Schedule {
            budget_secs: budget.total().as_secs_f64(),
            setup_secs,
            concurrent: self.concurrent,
            shares: self
                .shares
                .iter()
                .map(|(phase, secs)| PhaseShare {
                    phase: *phase,
                    secs: secs.as_secs_f64(),
                })
                .collect(),
        }
    }
}

fn weight(phase: Phase) -> u32 {
    WEIGHTS.iter().find(|(p, _)| *p == phase).map_or(1, |w| w.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Phase; 3] = [Phase::Stress, Phase::Tests, Phase::ParallelTests];

    fn secs(plan: &Plan, phase: Phase) -> u64 {
        assert!(plan.includes(phase));
        plan.share(phase).as_secs()
    }

    #[test]
    fn two_slots_give_stress_the_whole_time_beside_the_suites() {
        let budget = Budget::start(Duration::from_secs(630));
        let plan = Plan::new(&budget, &ALL, 2, FixedShares::default());
        assert!(plan.concurrent);
        assert!((599..=600).contains(&secs(&plan, Phase::Stress)));
        assert!((239..=240).contains(&secs(&plan, Phase::Tests)));
        assert!((359..=360).contains(&secs(&plan, Phase::ParallelTests)));
        // The parallel suite ends with the lane, whatever the plain suite left.
        let parallel_end = plan.deadline(Phase::ParallelTests, FixedShares::default());
        let tests_end = plan.deadline(Phase::Tests, FixedShares::default());
        assert!(parallel_end > tests_end);
        assert_eq!(parallel_end, plan.end);
    }

    #[test]
    fn one_slot_runs_the_phases_in_turn_by_weight() {
        let budget = Budget::start(Duration::from_secs(1030));
        let plan = Plan::new(&budget, &ALL, 1, FixedShares::default());
        assert!(!plan.concurrent);
        assert!((499..=500).contains(&secs(&plan, Phase::Stress)));
        assert!((199..=200).contains(&secs(&plan, Phase::Tests)));
        assert!((299..=300).contains(&secs(&plan, Phase::ParallelTests)));
    }

    #[test]
    fn fixed_shares_win_and_missing_phases_leave_their_time_to_the_rest() {
        let budget = Budget::start(Duration::from_secs(330));
        let fixed = FixedShares {
            stress: Some(Duration::from_secs(42)),
            test_phase: None,
        };
        let plan = Plan::new(&budget, &[Phase::Stress, Phase::ParallelTests], 1, fixed);
        assert_eq!(secs(&plan, Phase::Stress), 42);
        assert!((257..=258).contains(&secs(&plan, Phase::ParallelTests)));
        assert!(!plan.includes(Phase::Tests));
        let deadline = plan.deadline(Phase::Stress, fixed);
        assert!(deadline <= Instant::now() + Duration::from_secs(42));
    }

    #[test]
    fn the_reproducers_get_their_share_after_the_lanes() {
        let budget = Budget::start(Duration::from_secs(630));
        let mut phases = ALL.to_vec();
        phases.push(Phase::Repro);
        let plan = Plan::new(&budget, &phases, 2, FixedShares::default());
        assert!((89..=90).contains(&secs(&plan, Phase::Repro)));
        assert!((509..=510).contains(&secs(&plan, Phase::Stress)));
        assert!(plan.deadline(Phase::Repro, FixedShares::default()) > plan.end);
    }

    #[test]
    fn a_budget_spent_by_setup_still_leaves_the_phases_a_floor() {
        let budget = Budget::start(Duration::from_secs(10));
        let mut phases = ALL.to_vec();
        phases.push(Phase::Repro);
        let plan = Plan::new(&budget, &phases, 2, FixedShares::default());
        assert_eq!(secs(&plan, Phase::Stress), 30);
        assert_eq!(secs(&plan, Phase::Tests), 12);
        assert_eq!(secs(&plan, Phase::ParallelTests), 18);
        assert_eq!(secs(&plan, Phase::Repro), 20);
        let stress_end = plan.deadline(Phase::Stress, FixedShares::default());
        assert!(stress_end >= Instant::now() + Duration::from_secs(29));
        assert!(plan.deadline(Phase::Repro, FixedShares::default()) > plan.end);
    }

    #[test]
    fn fixed_shares_past_the_budget_push_the_reproducers_after_them() {
        let budget = Budget::start(Duration::from_secs(60));
        let fixed = FixedShares {
            stress: Some(Duration::from_secs(200)),
            test_phase: None,
        };
        let phases = [Phase::Stress, Phase::Tests, Phase::Repro];
        let plan = Plan::new(&budget, &phases, 2, fixed);
        assert_eq!(secs(&plan, Phase::Stress), 200);
        assert!(plan.end >= Instant::now() + Duration::from_secs(199));
        assert!(plan.deadline(Phase::Repro, fixed) >= plan.end + Duration::from_secs(20));
    }

    #[test]
    fn the_reproducers_keep_their_share_when_a_lane_overran() {
        let budget = Budget::start(Duration::from_secs(630));
        let phases = [Phase::Stress, Phase::Tests, Phase::Repro];
        let mut plan = Plan::new(&budget, &phases, 2, FixedShares::default());
        // As if both lanes and the reproducers' own window were over already.
        plan.end = Instant::now() - Duration::from_secs(120);
        plan.repro_end = plan.end + Duration::from_secs(90);
        let deadline = plan.deadline(Phase::Repro, FixedShares::default());
        assert!(deadline >= Instant::now() + Duration::from_secs(89));
    }

    #[test]
    fn the_suites_lane_ends_with_its_last_phase() {
        let budget = Budget::start(Duration::from_secs(630));
        let plan = Plan::new(&budget, &ALL, 2, FixedShares::default());
        assert_eq!(plan.suites_end(FixedShares::default()), plan.end);
        let stress_only = Plan::new(&budget, &[Phase::Stress], 2, FixedShares::default());
        assert!(stress_only.suites_end(FixedShares::default()) <= Instant::now());
    }
}
