//! `connectors eval-selection` on the two development sets of eval/tool-retrieval: the real
//! binary, the real engine, and the quality goals of the README's "Tool selection" (beat plain BM25 and BM25 with
//! history concatenated on every metric). Latency is the benchmark's business, not this test's.

use std::path::{Path, PathBuf};
use std::process::Command;

/// recall@5, nDCG@10, MRR to beat: the better of the README's two reference columns.
const GOALS: &[(&str, [f64; 3])] = &[("seal-tools", [0.761, 0.806, 0.927]), ("metatool", [0.751, 0.739, 0.808])];

fn sets_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("eval/tool-retrieval")
}

fn metric(report: &str, name: &str) -> f64 {
    report
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no `{name}` in the report:\n{report}"))
}

#[test]
fn selection_beats_both_references_on_both_development_sets() {
    let dir = sets_dir();
    let out_dir = tempfile::tempdir().unwrap();
    for (set, goals) in GOALS {
        let set_dir = dir.join(set);
        // Missing data is a failure, never a silent pass: these files are part of the repository.
        for file in ["catalog.jsonl", "queries.jsonl", "history.jsonl", "LICENSE"] {
            let path = set_dir.join(file);
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            assert!(
                size > 0,
                "{} is missing or empty: the evaluation data lives in eval/tool-retrieval/ (see its README.md)",
                path.display()
            );
        }
        let output_file = out_dir.path().join(format!("{set}.jsonl"));
        let output = Command::new(env!("CARGO_BIN_EXE_connectors"))
            .arg("eval-selection")
            .args(["--catalog".as_ref(), set_dir.join("catalog.jsonl").as_os_str()])
            .args(["--queries".as_ref(), set_dir.join("queries.jsonl").as_os_str()])
            .args(["--history".as_ref(), set_dir.join("history.jsonl").as_os_str()])
            .args(["--output".as_ref(), output_file.as_os_str()])
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{set}: {}\n{report}", String::from_utf8_lossy(&output.stderr));
        println!("{set}:\n{report}");
        let measured = [metric(&report, "recall@5"), metric(&report, "nDCG@10"), metric(&report, "MRR")];
        for ((name, value), goal) in ["recall@5", "nDCG@10", "MRR"].iter().zip(measured).zip(goals) {
            assert!(value > *goal, "{set}: {name} {value:.3} does not beat {goal:.3}");
        }
        // One line per query, each with the query, at most 10 tool ids and a latency.
        let queries = std::fs::read_to_string(set_dir.join("queries.jsonl")).unwrap();
        let lines = std::fs::read_to_string(&output_file).unwrap();
        assert_eq!(lines.lines().count(), queries.lines().filter(|l| !l.trim().is_empty()).count());
        for line in lines.lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(value["query"].is_string() && value["latencyMs"].is_number(), "{line}");
            assert!(value["tools"].as_array().is_some_and(|tools| tools.len() <= 10), "{line}");
        }
    }
}

/// With the sentence-embedding model (`.ci/run` fetches it and sets CONNECTORS_TEST_EMBEDDING_MODEL),
/// selection without history ranks by meaning as well as by words: better than by words alone on
/// metatool, whose queries rarely use a tool's words. (Seal-tools, 4,076 tools to embed, is left
/// to `bench tools`, which prints its figures with the model.)
#[test]
fn meaning_lifts_selection_without_history() {
    let Ok(model) = std::env::var("CONNECTORS_TEST_EMBEDDING_MODEL") else {
        println!(
            "skipped: CONNECTORS_TEST_EMBEDDING_MODEL not set (scripts/fetch-embedding-model.sh prints a directory for it)"
        );
        return;
    };
    let dir = sets_dir();
    let cold = |set: &str, model: Option<&str>| -> f64 {
        let set_dir = dir.join(set);
        let mut command = Command::new(env!("CARGO_BIN_EXE_connectors"));
        command
            .arg("eval-selection")
            .env_remove("CONNECTORS_EMBEDDING_MODEL")
            .args(["--catalog".as_ref(), set_dir.join("catalog.jsonl").as_os_str()])
            .args(["--queries".as_ref(), set_dir.join("queries.jsonl").as_os_str()]);
        if let Some(model) = model {
            command.args(["--embedding-model", model]);
        }
        let output = command.output().unwrap();
        let report = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{set}: {}\n{report}", String::from_utf8_lossy(&output.stderr));
        println!("{set}, model {model:?}:\n{report}");
        metric(&report, "nDCG@10")
    };
    let (words, meaning) = (cold("metatool", None), cold("metatool", Some(&model)));
    assert!(meaning >= words + 0.05, "metatool nDCG@10: {meaning:.3} with the model, {words:.3} without");
}
