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
