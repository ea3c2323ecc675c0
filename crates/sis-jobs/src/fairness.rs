//! The jobs each project runs on this node, so that one project cannot hold
//! every job worker (`JobsConfig::project_max`): the jobs of a project at its
//! limit are left in the queue for other nodes, or until one of its jobs ends.

use std::collections::HashMap;
use std::sync::Arc;

pub(crate) struct Fairness {
    max: usize,
    running: std::sync::Mutex<HashMap<String, usize>>,
    /// Leases are taken one at a time, so that two workers cannot both take
    /// a project's last free place.
    pub(crate) leasing: tokio::sync::Mutex<()>,
}

/// A running job's place in its project's count; given back when dropped.
pub(crate) struct ProjectSlot {
    fair: Arc<Fairness>,
    project: String,
}

impl Fairness {
    pub(crate) fn new(max: usize) -> Fairness {
        Fairness {
            max: max.max(1),
            running: std::sync::Mutex::new(HashMap::new()),
            leasing: tokio::sync::Mutex::new(()),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // the counts stay consistent even if a holder panicked
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The projects that run as many jobs here as they may.
    pub(crate) fn busy(&self) -> Vec<String> {
        let mut busy: Vec<String> = self
            .counts()
            .iter()
            .filter(|(_, n)| **n >= self.max)
            .map(|(p, _)| p.clone())
            .collect();
        busy.sort();
        busy
    }

    pub(crate) fn take(self: &Arc<Self>, project: &str) -> ProjectSlot {
        *self.counts().entry(project.to_string()).or_insert(0) += 1;
        ProjectSlot {
            fair: self.clone(),
            project: project.to_string(),
        }
    }
}

impl Drop for ProjectSlot {
    fn drop(&mut self) {
        let mut counts = self.fair.counts();
        if let Some(n) = counts.get_mut(&self.project) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.project);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_at_its_limit_is_busy_until_a_job_ends() {
        let fair = Arc::new(Fairness::new(2));
        let a1 = fair.take("a");
        assert!(fair.busy().is_empty());
        let a2 = fair.take("a");
        let _b = fair.take("b");
        assert_eq!(fair.busy(), vec!["a".to_string()]);
        drop(a1);
        assert!(fair.busy().is_empty());
        drop(a2);
        assert!(
            fair.counts().get("a").is_none(),
            "an idle project is forgotten"
        );
        assert_eq!(fair.counts().get("b"), Some(&1));
    }

    #[test]
    fn a_limit_of_zero_means_one() {
        let fair = Arc::new(Fairness::new(0));
        let _a = fair.take("a");
        assert_eq!(fair.busy(), vec!["a".to_string()]);
    }
}
