//! The user guide's commands are real: every `cft …` (and `cargo run --release -- …`) line of a
//! `sh` block in `README.md` and `docs/src/*.md` parses with the binary's own parser, so a
//! renamed or removed flag fails here rather than in a reader's terminal. Lines are joined at
//! trailing backslashes; comments, environment assignments and shell variables are handled as a
//! shell would (a variable becomes `0`).

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Splits a command line as a POSIX shell does for the cases the guide uses: single and double
/// quotes, backslash escapes outside quotes.
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut cur, mut quote, mut in_word) = (Vec::new(), String::new(), None::<char>, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    in_word = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// The `cft` command lines of a Markdown file's `sh` blocks, with their line numbers.
fn commands(path: &Path) -> Vec<(usize, Vec<String>)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out: Vec<(usize, Vec<String>)> = Vec::new();
    let (mut in_sh, mut pending): (bool, Option<(usize, String)>) = (false, None);
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with("```") {
            in_sh = line == "```sh" || line == "```bash";
            continue;
        }
        if !in_sh || line.starts_with('#') {
            continue;
        }
        let (start, joined) = match pending.take() {
            Some((s, before)) => (s, format!("{before} {line}")),
            None => (i + 1, line.to_string()),
        };
        if let Some(cont) = joined.strip_suffix('\\') {
            pending = Some((start, cont.to_string()));
            continue;
        }
        // A trailing comment, variables, and the chain's first command.
        let code = joined.split(" # ").next().unwrap_or("").split(" && ").next().unwrap_or("");
        let code = code.replace("${SLURM_ARRAY_TASK_ID}", "0").replace("$SLURM_ARRAY_TASK_ID", "0");
        let mut words = shell_words(&code);
        while words.first().is_some_and(|w| w.contains('=') && !w.starts_with('-')) {
            words.remove(0);
        }
        let args: Vec<String> = match words.first().map(String::as_str) {
            Some("cft") => words,
            Some("cargo") if words.iter().take(4).map(String::as_str).eq(["cargo", "run", "--release", "--"]) => {
                std::iter::once("cft".to_string()).chain(words.into_iter().skip(4)).collect()
            }
            _ => continue,
        };
        out.push((start, args));
    }
    out
}

#[test]
fn every_command_the_guide_shows_parses_with_the_binarys_parser() {
    let mut pages = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs/src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    let (mut checked, mut failures) = (0, Vec::new());
    for page in &pages {
        for (line, args) in commands(page) {
            checked += 1;
            if let Err(e) = cft_cli::try_parse_from(&args) {
                let first = e.to_string().lines().next().unwrap_or("").to_string();
                failures.push(format!("{}:{line}: `{}`: {first}", page.display(), args.join(" ")));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {checked} commands do not parse:\n{}", failures.len(), failures.join("\n"));
    assert!(checked >= 20, "the guide shows {checked} commands; the test must find them");
    // Every page of the book is listed in its summary.
    let summary = std::fs::read_to_string(repo().join("docs/src/SUMMARY.md")).unwrap();
    for page in &pages[1..] {
        let name = page.file_name().unwrap().to_string_lossy();
        assert!(name == "SUMMARY.md" || summary.contains(&format!("({name})")), "{name} is not in SUMMARY.md");
    }
}

#[test]
fn the_shell_splitter_reads_quotes_and_escapes() {
    assert_eq!(
        shell_words(r#"cft run "a b.toml" --weights 'coco_{percent}.safetensors' x\ y"#),
        ["cft", "run", "a b.toml", "--weights", "coco_{percent}.safetensors", "x y"]
    );
}
