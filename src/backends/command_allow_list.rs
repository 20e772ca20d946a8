//! Which commands tenants' `stdio` servers may run, and with which arguments.
//!
//! An entry is a command template: the command, matched exactly, and one pattern per argument. A
//! command alone allows no argument at all: an allow-listed interpreter (`python3`, `node`, `sh`)
//! with a tenant's arguments runs whatever the tenant writes, so the operator spells out what the
//! arguments may be. Patterns are globs: `*` stands for any run of characters within one argument,
//! `?` for one character, and a last pattern `**` for any number of further arguments.
//!
//! The command is an absolute path (`/opt/mcp/bin/notes-server`), which allows exactly that file,
//! or a bare name (`mcp-server-time`), looked up in the children's `PATH`. Nothing is normalised
//! or matched by prefix or base name: `/tmp/x/npx` does not pass as `npx`, `npx2` not as `npx`,
//! `/usr/bin/../bin/sh` not as `/usr/bin/sh`, so the operator reads in the configuration exactly
//! what can run. Relative paths (`./server`, `bin/server`) are refused as entries: they would
//! resolve against a tenant's directory, which the tenant's own servers can write to.

use std::path::Path;

use serde::Deserialize;

/// A pattern that matches any number of remaining arguments; only as the last pattern.
const ANY_REST: &str = "**";

/// An entry as configured: `"/usr/bin/notes-server"` or `{command: ..., args: [...]}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CommandEntry {
    Command(String),
    Template {
        command: String,
        #[serde(default)]
        args: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct CommandTemplate {
    command: String,
    args: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandAllowList {
    templates: Vec<CommandTemplate>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadCommandEntry {
    #[error("allow-list entry `{0}`: use an absolute path or a bare command name")]
    Command(String),
    #[error(
        "allow-list entry `{command}`: argument pattern `{pattern}` must be free of NUL, and `**` may only come last"
    )]
    Pattern { command: String, pattern: String },
}

impl CommandAllowList {
    pub fn new(entries: impl IntoIterator<Item = CommandEntry>) -> Result<Self, BadCommandEntry> {
        let templates = entries.into_iter().map(template).collect::<Result<_, _>>()?;
        Ok(Self { templates })
    }

    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// Whether some template allows running `command` with exactly `args`.
    pub fn permits(&self, command: &str, args: &[String]) -> bool {
        self.templates.iter().any(|template| template.command == command && arguments_match(&template.args, args))
    }
}

fn template(entry: CommandEntry) -> Result<CommandTemplate, BadCommandEntry> {
    let (command, args) = match entry {
        CommandEntry::Command(command) => (command, Vec::new()),
        CommandEntry::Template { command, args } => (command, args),
    };
    let bare = !command.is_empty() && !command.contains('/');
    let absolute = Path::new(&command).is_absolute();
    if !(bare || absolute) || command.contains('\0') || command.trim() != command {
        return Err(BadCommandEntry::Command(command));
    }
    let last = args.len().saturating_sub(1);
    if let Some(pattern) =
        args.iter().enumerate().find(|(at, p)| p.contains('\0') || (p.as_str() == ANY_REST && *at != last))
    {
        return Err(BadCommandEntry::Pattern { command, pattern: pattern.1.clone() });
    }
    Ok(CommandTemplate { command, args })
}

fn arguments_match(patterns: &[String], args: &[String]) -> bool {
    match patterns.split_last() {
        Some((tail, rest)) if tail == ANY_REST => {
            args.len() >= rest.len() && rest.iter().zip(args).all(|(pattern, arg)| glob(pattern, arg))
        }
        _ => patterns.len() == args.len() && patterns.iter().zip(args).all(|(pattern, arg)| glob(pattern, arg)),
    }
}

/// `*` any run of characters, `?` one character, everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // The classic two-pointer match with backtracking to the last `*`: linear in practice, and
    // never exponential.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn list(entries: &[(&str, &[&str])]) -> CommandAllowList {
        CommandAllowList::new(entries.iter().map(|(command, args)| CommandEntry::Template {
            command: (*command).into(),
            args: args.iter().map(|arg| (*arg).into()).collect(),
        }))
        .expect("valid")
    }

    fn args(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).into()).collect()
    }

    #[test]
    fn entries_are_absolute_paths_or_bare_names() {
        for bad in ["", "./server", "bin/server", " sleep", "sleep ", "a\0b"] {
            let refused = CommandAllowList::new([CommandEntry::Command(bad.into())]);
            assert_eq!(refused, Err(BadCommandEntry::Command(bad.into())), "{bad:?}");
        }
        let misplaced = CommandEntry::Template { command: "node".into(), args: args(&["**", "x"]) };
        assert!(matches!(CommandAllowList::new([misplaced]), Err(BadCommandEntry::Pattern { .. })));
    }

    #[test]
    fn a_bare_command_allows_no_arguments() {
        let list = CommandAllowList::new([CommandEntry::Command("/opt/mcp/notes".into())]).unwrap();
        assert!(list.permits("/opt/mcp/notes", &[]));
        assert!(!list.permits("/opt/mcp/notes", &args(&["--config", "/etc/shadow"])));
        assert!(!list.permits("notes", &[]), "no matching by base name");
    }

    #[test]
    fn an_interpreter_runs_only_the_scripts_its_template_names() {
        let list = list(&[("python3", &["-m", "mcp_server_*"]), ("node", &["/opt/mcp/*.js", "**"])]);
        assert!(list.permits("python3", &args(&["-m", "mcp_server_time"])));
        assert!(!list.permits("python3", &args(&["-c", "print(open('/data/master.key').read())"])));
        assert!(!list.permits("python3", &args(&["-m", "mcp_server_time", "--extra"])), "one pattern per argument");
        assert!(!list.permits("python3", &args(&["-m"])));
        assert!(list.permits("node", &args(&["/opt/mcp/notes.js"])));
        assert!(list.permits("node", &args(&["/opt/mcp/notes.js", "--port", "1"])));
        assert!(!list.permits("node", &args(&["-e", "require('fs')"])));
    }

    #[test]
    fn globs_match_as_documented() {
        for (pattern, text, expected) in [
            ("*", "", true),
            ("*", "anything/at all", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*.js", "x.js", true),
            ("*.js", "x.jsx", false),
            ("--port=*", "--port=8080", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ] {
            assert_eq!(glob(pattern, text), expected, "{pattern} ~ {text}");
        }
    }

    proptest! {
        /// A pattern without wildcards matches exactly itself.
        #[test]
        fn a_literal_pattern_matches_only_itself(literal in "[a-z0-9/._-]{0,12}", other in "[a-z0-9/._-]{0,12}") {
            prop_assert!(glob(&literal, &literal));
            prop_assert_eq!(glob(&literal, &other), literal == other);
        }
    }
}
