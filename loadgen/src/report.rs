//! What a run prints: each step as it goes, and the results as Markdown
//! tables. `docs/benchmarks.md` quotes the tables as printed, so their
//! text is made here only.

use std::{fmt, time::Instant};

/// A step of the run, named when it starts and timed on the same line
/// when it is done: `signing up 50 users… 1.2 s`.
pub struct Step {
    started: Instant,
}

impl Step {
    pub fn start(what: impl fmt::Display) -> Self {
        print!("{what}… ");
        Self {
            started: Instant::now(),
        }
    }

    pub fn done(self) {
        println!("{:.1} s", self.started.elapsed().as_secs_f64());
    }
}

/// Says what the sending step sends; `aside` adds what else happens
/// meanwhile (an attack, a kill), empty for nothing.
pub fn print_sending(total: u32, rate: u32, seconds: u32, aside: &str) {
    println!("sending {total} events ({rate} per second for {seconds} s){aside}…");
}

/// A Markdown table: a header, then a row per line.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|&column| column.to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Prints the table after a blank line, which sets it apart from the
    /// steps above it.
    pub fn print(&self) {
        println!();
        print!("{self}");
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line =
            |f: &mut fmt::Formatter<'_>, cells: &[String]| writeln!(f, "| {} |", cells.join(" | "));
        line(f, &self.header)?;
        writeln!(f, "|{}", "---|".repeat(self.header.len()))?;
        for row in &self.rows {
            line(f, row)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_markdown() {
        let mut table = Table::new(&["attack", "answers"]);
        table.row(vec!["flood".into(), "3 × 429".into()]);
        assert_eq!(
            table.to_string(),
            "| attack | answers |\n|---|---|\n| flood | 3 × 429 |\n"
        );
    }
}
