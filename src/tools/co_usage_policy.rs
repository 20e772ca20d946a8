//! `CoUsagePolicy`: which co-usage is shared, so that no single tenant can steer the
//! `OFTEN_USED_WITH` edges every other tenant's ranking reads.
//!
//! Co-usage is learned from each tenant's own feedback and served queries, which that tenant
//! controls completely. So an edge `from → to` is shared only once `min_tenants` distinct tenants
//! have had a query served by both tools, and every tenant weighs at most `per_tenant_cap`
//! queries in it: repeating a pair a thousand times counts as `per_tenant_cap` times, and so does
//! using `from` alone a thousand times (which would otherwise dilute everyone's confidence).

use crate::tools::tool_graph::OftenUsedWith;

/// The quorum and the cap; `tools.coUsage` in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoUsagePolicy {
    /// Distinct tenants that must have used both tools together before the edge is shared.
    pub min_tenants: u64,
    /// Queries of one tenant that count at most, per tool and per pair.
    pub per_tenant_cap: u64,
}

impl Default for CoUsagePolicy {
    fn default() -> Self {
        Self { min_tenants: 3, per_tenant_cap: 5 }
    }
}

/// One tenant's queries behind an edge `from → to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contribution {
    /// Its queries served by `from`.
    pub served_from: u64,
    /// Its queries served by both `from` and `to` (at most `served_from`).
    pub served_both: u64,
}

impl CoUsagePolicy {
    /// How many of a tenant's `queries` count.
    pub fn capped(&self, queries: u64) -> u64 {
        queries.min(self.per_tenant_cap)
    }

    /// The shared edge `from → to`, or `None` while too few tenants back it.
    ///
    /// `capped_served_from` is the sum of [`Self::capped`] of every tenant's queries served by
    /// `from`; `contributions` are those of the tenants with a query served by both.
    /// `co_occurrences` sums each tenant's capped queries served by both. `confidence` is each
    /// tenant's own share of `from`'s queries that `to` served too, weighted by its capped queries
    /// served by `from`: below the cap this is the plain ratio, and a tenant far above it keeps its
    /// true share instead of the cap turning a rare pair into a certain one.
    pub fn edge(
        &self,
        from: &str,
        to: &str,
        capped_served_from: u64,
        contributions: impl IntoIterator<Item = Contribution>,
    ) -> Option<OftenUsedWith> {
        let (mut tenants, mut co_occurrences, mut weighted_share) = (0u64, 0u64, 0.0f64);
        for contribution in contributions.into_iter().filter(|c| c.served_both > 0) {
            let served_from = contribution.served_from.max(contribution.served_both);
            tenants += 1;
            co_occurrences += self.capped(contribution.served_both);
            weighted_share += self.capped(served_from) as f64 * contribution.served_both as f64 / served_from as f64;
        }
        (tenants >= self.min_tenants.max(1)).then(|| OftenUsedWith {
            from: from.to_string(),
            to: to.to_string(),
            confidence: (weighted_share / capped_served_from.max(1) as f64).min(1.0),
            co_occurrences,
            tenants,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: CoUsagePolicy = CoUsagePolicy { min_tenants: 2, per_tenant_cap: 5 };

    fn each(served_from: u64, served_both: u64) -> Contribution {
        Contribution { served_from, served_both }
    }

    #[test]
    fn one_tenant_is_no_quorum_however_often_it_repeats_a_pair() {
        assert_eq!(POLICY.edge("a", "b", 5, [each(1_000, 1_000)]), None);
        // Tenants that used `from` without `to` back nothing.
        assert_eq!(POLICY.edge("a", "b", 10, [each(1_000, 1_000), each(5, 0)]), None);
    }

    #[test]
    fn below_the_cap_the_counts_are_the_plain_ones() {
        let edge = POLICY.edge("a", "b", 4, [each(3, 2), each(1, 1)]).unwrap();
        assert_eq!((edge.co_occurrences, edge.tenants), (3, 2));
        assert!((edge.confidence - 0.75).abs() < 1e-9, "{edge:?}");
    }

    #[test]
    fn a_tenant_weighs_at_most_the_cap_and_keeps_its_share() {
        // 1,000 queries served by `a`, 100 of them with `b`: counts as 5, of which a tenth with `b`.
        let edge = POLICY.edge("a", "b", 5 + 2, [each(1_000, 100), each(2, 2)]).unwrap();
        assert_eq!((edge.co_occurrences, edge.tenants), (5 + 2, 2));
        assert!((edge.confidence - (0.5 + 2.0) / 7.0).abs() < 1e-9, "{edge:?}");
    }

    #[test]
    fn confidence_never_exceeds_one() {
        let edge = POLICY.edge("a", "b", 1, [each(9, 9), each(9, 9)]).unwrap();
        assert_eq!(edge.confidence, 1.0);
    }
}
