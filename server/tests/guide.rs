//! `docs/guide.md` quotes the repository's own code: each Rust, SQL and
//! TOML block there follows a `<!-- quote: PATH -->` line and must appear,
//! line for line, in that file. So the guide's code compiles (its files
//! do), and the guide cannot fall behind the code it walks through.

use std::path::{Path, PathBuf};

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("server/ is inside the repository")
        .to_owned()
}

/// A fenced block of the guide, with the file it says it quotes.
#[derive(Debug)]
struct Block {
    /// Line number of the opening fence, for messages.
    line: usize,
    language: String,
    quotes: Option<String>,
    lines: Vec<String>,
}

/// Every fenced block of `guide`, its lines without the fence's indent.
fn blocks(guide: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut quote: Option<String> = None;
    let mut lines = guide.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let trimmed = line.trim_start();
        if let Some(path) = trimmed
            .strip_prefix("<!-- quote: ")
            .and_then(|rest| rest.strip_suffix(" -->"))
        {
            quote = Some(path.to_owned());
            continue;
        }
        let Some(language) = trimmed.strip_prefix("```") else {
            if !trimmed.is_empty() {
                quote = None;
            }
            continue;
        };
        let indent = line.len() - trimmed.len();
        let mut block = Block {
            line: number + 1,
            language: language.trim().to_owned(),
            quotes: quote.take(),
            lines: Vec::new(),
        };
        for (_, line) in lines.by_ref() {
            if line.trim_start().starts_with("```") {
                break;
            }
            let unindented = line.get(indent..).unwrap_or("").trim_end();
            block.lines.push(unindented.to_owned());
        }
        blocks.push(block);
    }
    blocks
}

/// Whether `needle` is a run of consecutive lines of `haystack`.
fn contains_lines(haystack: &str, needle: &[String]) -> bool {
    let lines: Vec<&str> = haystack.lines().map(str::trim_end).collect();
    !needle.is_empty()
        && lines
            .windows(needle.len())
            .any(|window| window.iter().zip(needle).all(|(a, b)| *a == b.as_str()))
}

#[test]
fn every_code_block_of_the_guide_is_in_the_file_it_quotes() {
    let guide = std::fs::read_to_string(root().join("docs/guide.md")).expect("docs/guide.md");
    let blocks = blocks(&guide);
    let checked: Vec<&Block> = blocks
        .iter()
        .filter(|block| matches!(block.language.as_str(), "rust" | "sql" | "toml"))
        .collect();
    assert!(
        checked.len() >= 10,
        "the guide's code blocks were not found"
    );
    for block in checked {
        let path = block.quotes.as_deref().unwrap_or_else(|| {
            panic!(
                "docs/guide.md:{}: a {} block without a `<!-- quote: PATH -->` line before it",
                block.line, block.language
            )
        });
        let source = std::fs::read_to_string(root().join(path))
            .unwrap_or_else(|error| panic!("docs/guide.md:{}: {path}: {error}", block.line));
        assert!(
            contains_lines(&source, &block.lines),
            "docs/guide.md:{}: this block is no longer in {path}:\n{}",
            block.line,
            block.lines.join("\n")
        );
    }
}

#[test]
fn a_block_is_found_only_where_its_lines_follow_each_other() {
    let source = "fn a() {\n    one();\n    two();\n}\n";
    let lines = |text: &str| text.lines().map(str::to_owned).collect::<Vec<_>>();
    assert!(contains_lines(source, &lines("    one();\n    two();")));
    assert!(!contains_lines(source, &lines("    two();\n    one();")));
    assert!(!contains_lines(source, &lines("one();")));
    let guide = "<!-- quote: a.rs -->\n  ```rust\n  fn a() {}\n  ```\n\n```sh\nls\n```\n";
    let found = blocks(guide);
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].quotes.as_deref(), Some("a.rs"));
    assert_eq!(found[0].lines, ["fn a() {}"]);
    assert_eq!(found[1].quotes, None);
}

/// The guide's prose, without its fenced blocks and comments.
fn prose(guide: &str) -> String {
    let mut prose = String::new();
    let mut fenced = false;
    for line in guide.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced && !trimmed.starts_with("<!--") {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    prose
}

/// The inline code spans of `prose`: `like_this`.
fn code_spans(prose: &str) -> Vec<&str> {
    prose.split('`').skip(1).step_by(2).collect()
}

/// The names a code span gives that must exist, by kind.
#[derive(Debug, PartialEq, Eq)]
enum Named<'a> {
    /// A file or folder of the repository: `app/src/topics.rs`.
    Path(&'a str),
    /// An environment variable or constant: `LIMIT_NOTIFY`.
    Constant(&'a str),
    /// A function, test, type or method: `use_room`, `AppContext`.
    Item(&'a str),
}

fn named_in(span: &str) -> Vec<Named<'_>> {
    // What the build makes, and other programs' settings (systemd's
    // `EnvironmentFile=`), are not the repository's to have.
    if span.starts_with("target/") || span.ends_with('=') {
        return Vec::new();
    }
    // A path: no spaces, and it starts with one of the repository's own
    // folders or files (`20/min` and `text/html` are not paths).
    let top = span.split('/').next().unwrap_or_default();
    if !span.contains(' ') && span.contains('/') && !top.is_empty() && root().join(top).exists() {
        let path = span.split(['#', ':']).next().unwrap_or(span);
        if !path.contains('*') && !path.contains('<') && !path.contains('{') {
            return vec![Named::Path(path)];
        }
        return Vec::new();
    }
    // Text and JSON name nothing to look up.
    if span.contains('"') || span.starts_with('{') {
        return Vec::new();
    }
    span.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.len() >= 4 && !word.starts_with(|c: char| c.is_ascii_digit()))
        .filter_map(|word| {
            let upper_snake =
                word.contains('_') && !word.contains(|c: char| c.is_ascii_lowercase());
            let snake = word.contains('_') && word.contains(|c: char| c.is_ascii_lowercase());
            let camel = word.starts_with(|c: char| c.is_ascii_uppercase())
                && word.contains(|c: char| c.is_ascii_lowercase())
                && word[1..].contains(|c: char| c.is_ascii_uppercase());
            if upper_snake {
                Some(Named::Constant(word))
            } else if snake || camel {
                Some(Named::Item(word))
            } else {
                None
            }
        })
        .collect()
}

/// The repository's code (not its documents: a name the guide gives
/// must be in code, not only in other prose), as one text.
fn all_the_code() -> String {
    fn walk(dir: &Path, text: &mut String) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if !matches!(
                    name.as_ref(),
                    "target" | "node_modules" | ".git" | "test-results"
                ) {
                    walk(&path, text);
                }
            } else if (["rs", "ts", "sql", "toml", "css", "sh"]
                .iter()
                .any(|extension| name.ends_with(&format!(".{extension}")))
                || path
                    .parent()
                    .is_some_and(|parent| parent.ends_with("scripts")))
                && let Ok(content) = std::fs::read_to_string(&path)
            {
                text.push_str(&content);
                text.push('\n');
            }
        }
    }
    let mut text = String::new();
    walk(&root(), &mut text);
    text
}

/// Whether `word` is in `text` as a whole word.
fn has_word(text: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        !text[..at].ends_with(is_word) && !text[at + word.len()..].starts_with(is_word)
    })
}

/// Names the guide gives that belong to the programs around ours (nginx's
/// settings, in the deploy recipe), not to the repository.
const OTHER_PROGRAMS: &[&str] = &["proxy_set_header"];

#[test]
fn every_path_and_name_in_the_guides_prose_exists() {
    let guide = std::fs::read_to_string(root().join("docs/guide.md")).expect("docs/guide.md");
    let everything = all_the_code();
    let mut checked = 0;
    let mut missing = Vec::new();
    for span in code_spans(&prose(&guide)) {
        for named in named_in(span) {
            checked += 1;
            let exists = match named {
                Named::Path(path) => root().join(path).exists(),
                Named::Constant(word) | Named::Item(word) => {
                    OTHER_PROGRAMS.contains(&word) || has_word(&everything, word)
                }
            };
            if !exists {
                missing.push(format!("{named:?} (in `{span}`)"));
            }
        }
    }
    assert!(
        checked >= 40,
        "only {checked} names found in the guide's prose"
    );
    assert!(
        missing.is_empty(),
        "docs/guide.md names what the repository does not have:\n{}",
        missing.join("\n")
    );
}

#[test]
fn names_are_told_apart_in_code_spans() {
    assert_eq!(
        named_in("app/src/topics.rs"),
        [Named::Path("app/src/topics.rs")]
    );
    assert_eq!(
        named_in("docs/protocol.md#recovery"),
        [Named::Path("docs/protocol.md")]
    );
    assert_eq!(named_in("LIMIT_NOTIFY"), [Named::Constant("LIMIT_NOTIFY")]);
    assert_eq!(
        named_in("acting_user(Action::Notify)"),
        [Named::Item("acting_user")]
    );
    assert_eq!(named_in("AppContext"), [Named::Item("AppContext")]);
    assert_eq!(named_in("topic:release-notes"), Vec::<Named>::new());
    assert_eq!(named_in("\"is typing\""), Vec::<Named>::new());
    assert_eq!(named_in("target/release/server"), Vec::<Named>::new());
    assert_eq!(named_in("20/min"), Vec::<Named>::new());
    assert_eq!(named_in("text/html"), Vec::<Named>::new());
    let everything = "fn use_room() {}\nlet use_rooms = 1;";
    assert!(has_word(everything, "use_room"));
    assert!(!has_word(everything, "use_roo"));
    assert_eq!(code_spans("a `b` c `d e` f"), ["b", "d e"]);
}
