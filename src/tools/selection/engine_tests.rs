use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::tools::catalog::Tool;
use crate::tools::selection::dense::ToolVector;

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

fn catalog() -> Catalog {
    let tool = |integration: &str, name: &str, category: &str, description: &str| {
        Tool::new(integration, name, category, description, json!({"type": "object", "properties": {"text": {}}}))
    };
    Catalog::new(vec![
        tool("weather", "getForecast", "weather", "Weather forecast for a city"),
        tool("weather", "getAirQuality", "weather", "Air quality index for a city"),
        tool("mail", "sendEmail", "communication", "Send an email message"),
        tool("slack", "postMessage", "communication", "Post a message to a Slack channel"),
        tool("github", "createPullRequest", "development", "Open a pull request on a repository"),
        tool("github", "createIssue", "development", "Open an issue on a repository"),
        tool("jira", "createTicket", "development", "Create a ticket in a project"),
        tool("calendar", "createEvent", "productivity", "Create a calendar event"),
        tool("docs", "createDocument", "productivity", "Create a document"),
        tool("sheets", "createSpreadsheet", "productivity", "Create a spreadsheet"),
        tool("drive", "createFolder", "productivity", "Create a folder"),
        tool("notes", "createNote", "productivity", "Create a note"),
        tool("travel", "planTrip", "travel", "Plan an itinerary"),
    ])
    .unwrap()
}

fn ids(selection: &Selection) -> Vec<String> {
    selection.tiers.ids().map(str::to_string).collect()
}

fn served(query: &str, tools: &[&str]) -> ServedQuery {
    ServedQuery { query: query.to_string(), tools: tools.iter().map(|t| t.to_string()).collect() }
}

#[test]
fn the_best_lexical_match_comes_first() {
    let engine = SelectionEngine::new(catalog());
    let selection =
        engine.select(&tenant("acme"), "what is the weather forecast in Paris", None, &SelectOptions::default());
    assert_eq!(ids(&selection)[0], "weather.getForecast");
    assert_eq!(selection.total_tools, 13);
    assert!(selection.token_usage <= selection.token_budget);
}

#[test]
fn max_tools_caps_the_answer() {
    let engine = SelectionEngine::new(catalog());
    let query = "create a new thing";
    let all = engine.select(&tenant("acme"), query, None, &SelectOptions::default());
    assert_eq!(all.tiers.len(), 8, "every `create` tool matches");
    for max_tools in [0, 1, 3, 5] {
        let options = SelectOptions { max_tools, ..SelectOptions::default() };
        let some = engine.select(&tenant("acme"), query, None, &options);
        assert_eq!(ids(&some), ids(&all)[..max_tools]);
    }
}

#[test]
fn allowed_categories_restrict_the_candidates() {
    let engine = SelectionEngine::new(catalog());
    let options =
        SelectOptions { allowed_categories: vec!["Development".into(), "travel".into()], ..SelectOptions::default() };
    let selection = engine.select(&tenant("acme"), "create a calendar event or an issue", None, &options);
    assert_eq!(selection.total_tools, 4);
    assert!(!ids(&selection).is_empty());
    for id in ids(&selection) {
        let category = &engine.catalog().get(&id).unwrap().category;
        assert!(category == "development" || category == "travel", "{id} is in {category}");
    }
}

#[test]
fn a_tenants_own_tools_are_invisible_to_others() {
    let mut tools = catalog().tools().to_vec();
    tools.push(Tool::new("secret", "launchRocket", "space", "Launch a rocket", json!({})).owned_by(tenant("acme")));
    let engine = SelectionEngine::new(Catalog::new(tools).unwrap());
    let query = "launch the rocket";
    assert_eq!(ids(&engine.select(&tenant("acme"), query, None, &SelectOptions::default())), ["secret.launchRocket"]);
    assert!(ids(&engine.select(&tenant("globex"), query, None, &SelectOptions::default())).is_empty());
}

#[test]
fn informative_history_lifts_the_tools_that_served_similar_queries() {
    let mut engine = SelectionEngine::new(catalog());
    let acme = tenant("acme");
    let query = "where should we go for the offsite";
    assert!(ids(&engine.select(&acme, query, None, &SelectOptions::default())).is_empty());
    for place in ["Lisbon", "Berlin", "Oslo", "Rome", "Vienna", "Prague"] {
        engine
            .remember(&acme, &served(&format!("where should we go for the offsite in {place}"), &["travel.planTrip"]));
    }
    assert!(engine.blend_weight(&acme) > 0.0);
    assert_eq!(ids(&engine.select(&acme, query, None, &SelectOptions::default()))[0], "travel.planTrip");
}

#[test]
fn history_that_adds_nothing_leaves_the_lexical_ranking_alone() {
    let mut engine = SelectionEngine::new(catalog());
    let acme = tenant("acme");
    let query = "create a calendar event about the quarterly budget review";
    let before = ids(&engine.select(&acme, query, None, &SelectOptions::default()));
    // The lexical ranking already puts the served tool first; the votes could only add noise
    // (the mail queries look alike), so they get no weight.
    for n in 0..20 {
        let topic = format!("about the quarterly budget review with finance {n}");
        engine.remember(&acme, &served(&format!("create a calendar event {topic}"), &["calendar.createEvent"]));
        engine.remember(&acme, &served(&format!("send an email {topic}"), &["mail.sendEmail"]));
    }
    assert_eq!(engine.blend_weight(&acme), 0.0);
    assert_eq!(ids(&engine.select(&acme, query, None, &SelectOptions::default())), before);
}

#[test]
fn tools_often_used_with_a_leader_are_lifted() {
    let mut engine = SelectionEngine::new(catalog());
    let acme = tenant("acme");
    let query = "open a pull request";
    let before = ids(&engine.select(&acme, query, None, &SelectOptions::default()));
    assert!(!before.contains(&"slack.postMessage".to_string()));
    let edge = |co_occurrences| OftenUsedWith {
        from: "github.createPullRequest".into(),
        to: "slack.postMessage".into(),
        confidence: 0.9,
        co_occurrences,
        tenants: 3,
    };
    // Too few co-occurrences to trust.
    engine.set_co_usage("github.createPullRequest", vec![edge(2)]);
    assert_eq!(ids(&engine.select(&acme, query, None, &SelectOptions::default())), before);
    engine.set_co_usage("github.createPullRequest", vec![edge(30)]);
    let after = ids(&engine.select(&acme, query, None, &SelectOptions::default()));
    assert_eq!(after[0], "github.createPullRequest");
    assert!(after.contains(&"slack.postMessage".to_string()), "{after:?}");
}

/// Unit vectors along axis `axis` of a 3-dimensional space, with a little of axis 2.
fn vector(axis: usize, lean: f32) -> ToolVector {
    let mut v = [0.0f32, 0.0, lean];
    v[axis] = (1.0 - lean * lean).sqrt();
    v.into()
}

/// The vectors of the tools `vectors` names by id, keyed as the selector keys them.
fn vectors_of(engine: &SelectionEngine, vectors: &[(&str, ToolVector)]) -> HashMap<String, ToolVector> {
    vectors
        .iter()
        .map(|(id, vector)| {
            let tool = engine.catalog().tools().iter().find(|t| t.id == *id).unwrap();
            (crate::tools::selection::dense::embedded_text(tool), vector.clone())
        })
        .collect()
}

#[test]
fn a_tool_alike_in_meaning_ranks_with_no_word_in_common() {
    let mut engine = SelectionEngine::new(catalog());
    let acme = tenant("acme");
    let query = "where should we go for the offsite";
    assert!(ids(&engine.select(&acme, query, None, &SelectOptions::default())).is_empty());
    let vectors = vectors_of(&engine, &[("travel.planTrip", vector(0, 0.1)), ("mail.sendEmail", vector(1, 0.2))]);
    engine.attach_vectors(&vectors);
    let selection = engine.select(&acme, query, Some(&vector(0, 0.2)), &SelectOptions::default());
    // The mail tool's cosine (0.04) is below the floor: it says nothing.
    assert_eq!(ids(&selection), ["travel.planTrip"]);
    let score = selection.tiers.tier1[0].score;
    assert!(score > 0.0 && score <= 1.0, "{score}");
    // A new catalog keeps the vectors of the tools it still has.
    engine.replace_catalog(catalog(), &vectors);
    assert_eq!(
        ids(&engine.select(&acme, query, Some(&vector(0, 0.2)), &SelectOptions::default())),
        ["travel.planTrip"]
    );
}

#[test]
fn meaning_adds_to_words_without_drowning_them() {
    let mut engine = SelectionEngine::new(catalog());
    let acme = tenant("acme");
    let query = "create a calendar event";
    // The query's vector is a little closer to the note tool's than to the event tool's.
    let vectors =
        vectors_of(&engine, &[("calendar.createEvent", vector(0, 0.5)), ("notes.createNote", vector(0, 0.4))]);
    engine.attach_vectors(&vectors);
    let ranked = ids(&engine.select(&acme, query, Some(&vector(0, 0.4)), &SelectOptions::default()));
    assert_eq!(ranked[0], "calendar.createEvent", "{ranked:?}");
    assert_eq!(ranked[1], "notes.createNote", "{ranked:?}");
}

const QUERIES: &[&str] = &[
    "create a calendar event",
    "send an email to the team",
    "open a pull request",
    "weather forecast for tomorrow",
    "plan a trip to the coast",
    "post a message in the channel",
    "make a new folder for the docs",
];

fn tool_ids() -> Vec<String> {
    catalog().tools().iter().map(|t| t.id.clone()).collect()
}

proptest! {
    /// Two worlds that differ only in the query texts another tenant sent (same tools served,
    /// so the shared co-usage is the same) rank identically for `globex`.
    #[test]
    fn another_tenants_query_text_never_changes_a_ranking(
        history in prop::collection::vec((0usize..QUERIES.len(), 0usize..QUERIES.len(), prop::collection::vec(0usize..13, 1..3)), 0..30),
        own in prop::collection::vec((0usize..QUERIES.len(), 0usize..13), 0..10),
    ) {
        let tools = tool_ids();
        let (acme, globex) = (tenant("acme"), tenant("globex"));
        let mut one = SelectionEngine::new(catalog());
        let mut other = SelectionEngine::new(catalog());
        for (query, tool) in &own {
            let own = served(QUERIES[*query], &[tools[*tool].as_str()]);
            one.remember(&globex, &own);
            other.remember(&globex, &own);
        }
        for (text_one, text_other, served_by) in &history {
            let served_by: Vec<&str> = served_by.iter().map(|i| tools[*i].as_str()).collect();
            one.remember(&acme, &served(QUERIES[*text_one], &served_by));
            other.remember(&acme, &served(&format!("{} and more", QUERIES[*text_other]), &served_by));
        }
        for query in QUERIES {
            let options = SelectOptions::default();
            prop_assert_eq!(one.select(&globex, query, None, &options), other.select(&globex, query, None, &options));
        }
    }
}
