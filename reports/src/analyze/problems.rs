//! Problems: the grain a maintainer fixes at. A problem is one piece of shared state with its
//! owner and one fix; every racing site pair (TSan root cause) on that state falls under it.
//! Crashes, hangs and broken invariants seen in the same scenarios, with the problem's code
//! on their stacks, are linked to it instead of standing alone.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::sites::Site;
use crate::model::{Origin, RunRecord};
use crate::results::*;

/// The fix kinds, most specific first: a problem takes the most specific fix its sites call for.
const FIX_PRIORITY: [FixKind; 10] = [
    FixKind::StrongReferenceApi,
    FixKind::TwoObjectCriticalSection,
    FixKind::LockOrder,
    FixKind::ModuleState,
    FixKind::Atomic,
    FixKind::ThreadLocal,
    FixKind::CriticalSection,
    FixKind::PyMutex,
    FixKind::DeclareGil,
    FixKind::Investigate,
];

/// Groups sites by owner into problem findings.
pub(super) fn problems(run: &RunRecord, mut sites: Vec<Site>) -> Vec<Finding> {
    merge_shared_code(&mut sites);
    let mut by_owner: BTreeMap<Owner, Vec<Site>> = BTreeMap::new();
    for site in sites {
        by_owner.entry(site.owner.clone()).or_default().push(site);
    }
    by_owner
        .into_iter()
        .map(|(owner, sites)| problem(run, owner, sites))
        .collect()
}

/// Racing code with no owner the evidence names is grouped by the functions it shares: a
/// helper called from several places (`resize` against every reader of the buffer it
/// replaces) is one problem. The group is named by its hub, the function in the most site
/// pairs, so the id does not change when a run sees one more pair.
pub(super) fn merge_shared_code(sites: &mut [Site]) {
    let code: Vec<usize> = (0..sites.len())
        .filter(|&i| matches!(sites[i].owner, Owner::Code { .. }))
        .collect();
    let functions = |i: usize| match &sites[i].owner {
        Owner::Code { functions } => functions.clone(),
        _ => Vec::new(),
    };
    // Union-find over the sites, joined when they share a function.
    let mut parent: Vec<usize> = (0..sites.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut first_with: BTreeMap<String, usize> = BTreeMap::new();
    for &i in &code {
        for function in functions(i) {
            match first_with.get(&function) {
                Some(&j) => {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    parent[a] = b;
                }
                None => {
                    first_with.insert(function, i);
                }
            }
        }
    }
    let mut pairs_with: BTreeMap<(usize, String), usize> = BTreeMap::new();
    for &i in &code {
        let group = root(&mut parent, i);
        for function in functions(i) {
            *pairs_with.entry((group, function)).or_default() += 1;
        }
    }
    let hubs: BTreeMap<usize, String> =
        pairs_with
            .iter()
            .fold(BTreeMap::new(), |mut hubs, ((group, function), n)| {
                let better = hubs.get(group).is_none_or(|hub: &String| {
                    let best = pairs_with[&(*group, hub.clone())];
                    *n > best
                });
                if better {
                    hubs.insert(*group, function.clone());
                }
                hubs
            });
    for &i in &code {
        let group = root(&mut parent, i);
        if let Some(hub) = hubs.get(&group) {
            sites[i].owner = Owner::Code {
                functions: vec![hub.clone()],
            };
        }
    }
}

fn problem(run: &RunRecord, owner: Owner, mut sites: Vec<Site>) -> Finding {
    // The most severe, then most frequent, site pair stands for the problem.
    sites.sort_by(|a, b| {
        b.pair
            .severity
            .cmp(&a.pair.severity)
            .then(b.pair.count.cmp(&a.pair.count))
            .then(a.pair.id.cmp(&b.pair.id))
    });
    let id = problem_id(&owner);
    let mut operations: Vec<String> = sites.iter().flat_map(|s| s.entry_points.clone()).collect();
    operations.sort();
    operations.dedup();
    let mut origins: Vec<Origin> = sites
        .iter()
        .flat_map(|s| s.root_cause.origins.iter().map(|o| o.origin.clone()))
        .collect();
    origins.sort();
    origins.dedup();
    let mut related: Vec<String> = sites.iter().flat_map(|s| s.statics.clone()).collect();
    related.sort();
    related.dedup();
    let mut variables: Vec<String> = sites
        .iter()
        .filter_map(|s| s.pair.variable.clone())
        .collect();
    variables.sort();
    variables.dedup();
    let site_fixes: Vec<&Fix> = sites.iter().map(|s| &s.fix).collect();
    let fix = problem_fix(&owner, &site_fixes, &operations);
    let first = &sites[0];
    Finding {
        reproducer: run
            .reproductions
            .get(&id)
            .cloned()
            .or_else(|| super::commands::origin_reproducer(run, &origins)),
        title: title(&owner, &operations),
        kind: first.pair.kind.clone(),
        rule: super::sites::tsan_rule(&first.root_cause.kind),
        severity: sites
            .iter()
            .map(|s| s.pair.severity)
            .max()
            .unwrap_or(Severity::Medium),
        status: None,
        category: Category::Race,
        variable: (!variables.is_empty()).then(|| variables.join(", ")),
        locations: first.pair.locations.clone(),
        count: sites.iter().map(|s| s.pair.count).sum(),
        origins,
        fix,
        related,
        new: None,
        owner: Some(owner),
        operations,
        sites: sites.into_iter().map(|s| s.pair).collect(),
        id,
    }
}

/// `problem-` + a hash of the owner: the same state gets the same id across runs, machines
/// and compilers (owners name types, functions and variables, never lines or addresses).
/// The id of the problem of `owner` (stable across runs).
pub fn problem_id(owner: &Owner) -> String {
    let key = serde_json::to_string(owner).expect("owners serialize");
    format!(
        "problem-{}",
        &hex::encode(Sha256::digest(key.as_bytes()))[..16]
    )
}

/// `Vector` of `pkg._ext.Vector`.
pub(super) fn short_type(qualified: &str) -> &str {
    qualified.rsplit('.').next().unwrap_or(qualified)
}

/// The most specific fix the sites call for; a critical section names every operation. An
/// atomic makes one word whole, so it is the problem's fix only when every site asks for it:
/// sites that need a lock as well are fixed by the lock.
fn problem_fix(owner: &Owner, site_fixes: &[&Fix], operations: &[String]) -> Fix {
    let all_atomic = site_fixes.iter().all(|f| f.kind == FixKind::Atomic);
    let chosen = FIX_PRIORITY
        .iter()
        .filter(|kind| **kind != FixKind::Atomic || all_atomic)
        .find_map(|kind| site_fixes.iter().find(|f| f.kind == *kind))
        .map(|f| (*f).clone())
        .unwrap_or_else(|| site_fixes[0].clone());
    match (chosen.kind, owner) {
        (FixKind::CriticalSection, Owner::Object { .. }) if !operations.is_empty() => Fix {
            action: format!(
                "Hold `Py_BEGIN_CRITICAL_SECTION(self)` … `Py_END_CRITICAL_SECTION()` around the bodies of {} (Argument Clinic: `@critical_section`), readers included.",
                operations.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ")
            ),
            ..chosen
        },
        _ => chosen,
    }
}

fn title(owner: &Owner, operations: &[String]) -> String {
    let ops = match operations {
        [] => String::new(),
        ops => format!(
            ": {}",
            ops.iter()
                .map(|o| format!("`{o}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    match owner {
        Owner::Global {
            name,
            function: Some(function),
        } => format!("The static `{name}` of `{function}` is shared by every thread{ops}"),
        Owner::Global { name, .. } => {
            format!("The module-wide variable `{name}` is shared by every thread{ops}")
        }
        Owner::ModuleState { field: Some(field) } => {
            format!("The module state's `{field}` is shared by every thread{ops}")
        }
        Owner::ModuleState { field: None } => {
            format!("The module state is shared by every thread{ops}")
        }
        Owner::Object {
            type_name,
            receiver: Receiver::SelfObject,
        } => format!(
            "`{}` objects are changed and read from several threads without a lock{ops}",
            short_type(type_name)
        ),
        Owner::Object {
            type_name,
            receiver: Receiver::Argument,
        } => format!(
            "A `{0}` method reads another `{0}` it was given while that object changes{ops}",
            short_type(type_name)
        ),
        Owner::HeapBlock {
            allocated_in,
            type_name,
        } => {
            let held = type_name
                .as_deref()
                .map(|t| format!(" held by `{}` objects", short_type(t)))
                .unwrap_or_default();
            format!("The state `{allocated_in}` allocates{held} is shared without a lock{ops}")
        }
        Owner::LockOrder { functions } => format!(
            "Mutexes are taken in opposite orders in {}",
            functions
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(" and ")
        ),
        Owner::Code { functions } => format!(
            "Data `{}` and its callers share without a lock{ops}",
            functions.join("`, `")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(kind: FixKind) -> Fix {
        Fix {
            kind,
            action: String::new(),
            reason: String::new(),
        }
    }

    fn object() -> Owner {
        Owner::Object {
            type_name: "T".into(),
            receiver: Receiver::SelfObject,
        }
    }

    #[test]
    fn one_site_with_an_atomic_side_does_not_make_a_locked_objects_fix_an_atomic() {
        let (atomic, lock) = (fix(FixKind::Atomic), fix(FixKind::CriticalSection));
        let ops = ["T.add".to_string(), "T.pop".to_string()];
        let chosen = problem_fix(&object(), &[&lock, &atomic, &lock], &ops);
        assert_eq!(chosen.kind, FixKind::CriticalSection);
        assert!(
            chosen.action.contains("`T.add`, `T.pop`"),
            "{}",
            chosen.action
        );
        assert_eq!(
            problem_fix(&object(), &[&atomic, &atomic], &ops).kind,
            FixKind::Atomic
        );
    }
}
