//! How text becomes search terms, the same way for tools, queries and past queries.
//!
//! Lowercase ASCII words, split at punctuation, `snake_case` and `camelCase` boundaries (tool names
//! like `getWeatherForecast` carry most of their meaning in their parts), English stop words
//! dropped, and a light suffix stemmer so `forecasts`, `forecasting` and `forecast` meet. It does not
//! decide how terms are weighted (the index does).

/// Words too common in queries and descriptions to tell tools apart.
const STOP_WORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been", "but", "by", "can",
    "could", "do", "does", "for", "from", "give", "has", "have", "help", "how", "i", "if", "in", "into", "is", "it",
    "its", "let", "like", "me", "my", "need", "of", "on", "or", "our", "please", "so", "some", "such", "that", "the",
    "their", "them", "then", "there", "these", "this", "to", "us", "want", "was", "we", "what", "when", "where",
    "which", "who", "will", "with", "would", "you", "your",
];

/// Appends the terms of `text` to `out`.
pub(crate) fn push_terms(text: &str, out: &mut Vec<String>) {
    for word in text.split(|c: char| !c.is_ascii_alphanumeric()) {
        for part in camel_parts(word) {
            let lower = part.to_ascii_lowercase();
            if lower.is_empty() || STOP_WORDS.binary_search(&lower.as_str()).is_ok() {
                continue;
            }
            out.push(stem(lower));
        }
    }
}

/// The terms of `text`.
pub(crate) fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    push_terms(text, &mut out);
    out
}

/// Splits `getHTTPResponse2` into `get`, `HTTP`, `Response2`: a new part starts at an upper-case
/// letter that follows a lower-case one, or that precedes a lower-case one after capitals.
pub(crate) fn camel_parts(word: &str) -> impl Iterator<Item = &str> {
    let bytes = word.as_bytes();
    let mut starts = vec![0];
    for i in 1..bytes.len() {
        let (prev, here) = (bytes[i - 1], bytes[i]);
        let next_lower = bytes.get(i + 1).is_some_and(u8::is_ascii_lowercase);
        if here.is_ascii_uppercase() && (prev.is_ascii_lowercase() || (prev.is_ascii_uppercase() && next_lower)) {
            starts.push(i);
        }
    }
    starts.push(bytes.len());
    // Only ASCII boundaries are ever chosen, so the slices stay on char boundaries.
    (0..starts.len() - 1).map(move |k| &word[starts[k]..starts[k + 1]])
}

/// A light English stemmer (plural, `-ing`, `-ed`, `-ly`, final `e`): enough to join word forms in tool
/// descriptions without the surprises of aggressive stemming.
fn stem(mut word: String) -> String {
    let len = word.len();
    if len <= 3 || word.bytes().any(|b| b.is_ascii_digit()) {
        return word;
    }
    if word.ends_with("ies") && len > 4 {
        word.truncate(len - 3);
        word.push('y');
    } else if word.ends_with("sses") {
        word.truncate(len - 2);
    } else if word.ends_with('s') && !word.ends_with("ss") && !word.ends_with("us") && !word.ends_with("is") {
        word.truncate(len - 1);
    } else if word.ends_with("ing") && len > 5 {
        word.truncate(len - 3);
    } else if (word.ends_with("ed") || word.ends_with("ly")) && len > 4 {
        word.truncate(len - 2);
    }
    // `update`, `updated`, `updating` all end as `updat`.
    if word.len() > 4 && word.ends_with('e') {
        word.pop();
    }
    word
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted_for_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn splits_camel_and_snake_case_and_stems() {
        assert_eq!(terms("getWeatherForecasts"), ["get", "weather", "forecast"]);
        assert_eq!(terms("updated updating update"), ["updat", "updat", "updat"]);
        assert_eq!(terms("evidence_type"), ["evidenc", "type"]);
        assert_eq!(terms("getHTTPResponse"), ["get", "http", "respons"]);
        assert_eq!(terms("Find the cities for me"), ["find", "city"]);
    }
}
