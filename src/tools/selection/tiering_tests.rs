use proptest::prelude::*;
use serde_json::json;

use super::*;

fn tool(n: usize, description_len: usize, parameters: usize) -> Tool {
    let properties: serde_json::Map<String, serde_json::Value> =
        (0..parameters).map(|p| (format!("param{p}"), json!({"type": "string"}))).collect();
    Tool::new(
        format!("int{n}"),
        format!("tool{n}"),
        "Cat",
        "d".repeat(description_len),
        json!({"properties": properties}),
    )
}

fn ranked(tools: &[Tool]) -> Vec<Ranked<'_>> {
    tools.iter().enumerate().map(|(i, tool)| Ranked { tool, score: 1.0 / (i + 1) as f64 }).collect()
}

#[test]
fn a_generous_budget_fills_3_then_5_then_the_rest() {
    let tools: Vec<Tool> = (0..10).map(|n| tool(n, 40, 2)).collect();
    let (tiers, usage) = tier(&ranked(&tools), 100_000, false);
    assert_eq!((tiers.tier1.len(), tiers.tier2.len(), tiers.tier3.len()), (3, 5, 2));
    assert_eq!(tiers.ids().collect::<Vec<_>>(), tools.iter().map(|t| t.id.as_str()).collect::<Vec<_>>());
    assert_eq!(tiers.tier2[0].parameters, ["param0", "param1"]);
    assert_eq!(tiers.tier3[0].load_url, "/api/v1/tools/int8.tool8");
    let expected: usize = tiers.tier1.iter().map(estimate_tokens).sum::<usize>()
        + tiers.tier2.iter().map(estimate_tokens).sum::<usize>()
        + tiers.tier3.iter().map(estimate_tokens).sum::<usize>();
    assert_eq!(usage, expected);
}

#[test]
fn the_json_shapes_are_the_documented_ones() {
    let tools = [tool(0, 5, 1), tool(1, 5, 1), tool(2, 5, 1), tool(3, 5, 1), tool(4, 5, 1), tool(5, 5, 1)];
    let mut ranked = ranked(&tools);
    ranked.truncate(4);
    let (tiers, _) = tier(&ranked, 100_000, false);
    let value = serde_json::to_value(&tiers).unwrap();
    assert_eq!(
        value["tier1"][0],
        json!({"id": "int0.tool0", "name": "tool0", "category": "Cat", "description": "ddddd", "score": 1.0})
    );
    assert_eq!(
        value["tier2"][0],
        json!({"id": "int3.tool3", "name": "tool3", "category": "Cat", "description": "ddddd", "score": 0.25, "parameters": ["param0"]})
    );
    let (tiers, _) = tier(&ranked, 100_000, true);
    assert!(serde_json::to_value(&tiers).unwrap()["tier1"][0]["inputSchema"]["properties"]["param0"].is_object());
}

#[test]
fn a_tight_budget_downgrades_the_last_ranked_first_then_drops_from_the_end() {
    let tools: Vec<Tool> = (0..10).map(|n| tool(n, 400, 3)).collect();
    let ranked = ranked(&tools);
    let (full, full_usage) = tier(&ranked, 100_000, false);
    let (tiers, usage) = tier(&ranked, full_usage - 1, false);
    assert!(usage < full_usage);
    assert_eq!((tiers.tier1.len(), tiers.tier2.len(), tiers.tier3.len()), (3, 4, 3));
    assert_eq!(tiers.len(), full.len());
    let (tiers, usage) = tier(&ranked, 40, false);
    assert!(usage <= 40 && tiers.tier1.is_empty() && tiers.tier2.is_empty() && !tiers.tier3.is_empty());
    let (tiers, usage) = tier(&ranked, 0, false);
    assert!(tiers.is_empty() && usage == 0);
}

proptest! {
    #[test]
    fn any_list_and_budget_gives_ranked_bounded_tiers_within_budget(
        shapes in prop::collection::vec((0usize..600, 0usize..8), 0..25),
        budget in 0usize..6000,
        include_schemas: bool,
    ) {
        let tools: Vec<Tool> = shapes.iter().enumerate().map(|(n, (len, params))| tool(n, *len, *params)).collect();
        let ranked = ranked(&tools);
        let (tiers, usage) = tier(&ranked, budget, include_schemas);
        prop_assert!(usage <= budget);
        prop_assert!(tiers.tier1.len() <= TIER1_SIZE && tiers.tier2.len() <= TIER2_SIZE);
        // Read in tier order, the tools are a prefix of the ranking.
        let returned: Vec<&str> = tiers.ids().collect();
        let expected: Vec<&str> = tools.iter().take(returned.len()).map(|t| t.id.as_str()).collect();
        prop_assert_eq!(returned, expected);
        // A lower tier only after the higher ones are full, unless the budget forced a downgrade.
        let (full, full_usage) = tier(&ranked, usize::MAX, include_schemas);
        if full_usage <= budget {
            prop_assert_eq!(&tiers, &full);
        }
        let counted: usize = tiers.tier1.iter().map(estimate_tokens).sum::<usize>()
            + tiers.tier2.iter().map(estimate_tokens).sum::<usize>()
            + tiers.tier3.iter().map(estimate_tokens).sum::<usize>();
        prop_assert_eq!(usage, counted);
    }
}
