//! The project's documentation stands on its own: no file of the repository points at notes
//! outside it (`../shared/...`, a workstation's absolute path), every relative Markdown link
//! reaches a file of the repository (and, with `#anchor`, one of its headings), and no
//! Markdown file links to the web: docs are read offline, from a clone.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use switchboard_tests::repo_root;

/// Directories that are not the project's own text: build output, installed packages, test
/// artifacts, version control.
const SKIPPED_DIRS: &[&str] = &["target", "node_modules", ".git", "artifacts"];

/// Extensions of the files whose text is checked for outside references.
const TEXT_FILES: &[&str] = &[
    "md", "rs", "toml", "sh", "html", "js", "yml", "yaml", "conf",
];

/// Text that names something outside the repository.
const OUTSIDE: &[&str] = &["../shared/", "/work/"];

/// Every file under `dir` whose extension is in `extensions`, skipping [`SKIPPED_DIRS`].
fn files(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_ref()) {
                files(&path, extensions, out);
            }
        } else if path
            .extension()
            .is_some_and(|e| extensions.contains(&e.to_string_lossy().as_ref()))
        {
            out.push(path);
        }
    }
}

/// `text` without its fenced code blocks (examples there are not links).
fn prose(text: &str) -> String {
    text.split("```").step_by(2).collect::<Vec<_>>().join("\n")
}

/// The targets of the inline Markdown links `[text](target)` in `text`.
fn link_targets(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split([')', ' ']).next())
        .filter(|target| !target.is_empty())
        .map(str::to_owned)
        .collect()
}

/// GitHub's anchor for a heading line: lower case, punctuation but `-` and `_` dropped, spaces
/// to hyphens.
fn anchor_of(heading: &str) -> String {
    heading
        .trim_start_matches('#')
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(markdown: &Path) -> Vec<String> {
    prose(&std::fs::read_to_string(markdown).unwrap())
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(anchor_of)
        .collect()
}

#[test]
fn no_file_refers_outside_the_repository() {
    let root = repo_root();
    let mut all = Vec::new();
    files(&root, TEXT_FILES, &mut all);
    assert!(all.len() > 100, "found only {} files", all.len());
    let this_file = root.join("tests/tests/docs_self_contained.rs");
    let mut found = Vec::new();
    for path in all.iter().filter(|p| **p != this_file) {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            if OUTSIDE.iter().any(|outside| line.contains(outside)) {
                found.push(format!(
                    "{}:{}: {}",
                    path.strip_prefix(&root).unwrap().display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "outside references:\n{}",
        found.join("\n")
    );
}

#[test]
fn markdown_links_stay_in_the_repository_and_resolve() {
    let root = repo_root();
    let mut markdown = Vec::new();
    files(&root, &["md"], &mut markdown);
    assert!(
        markdown.iter().any(|p| p.ends_with("docs/architecture.md")),
        "docs/architecture.md is part of the docs"
    );
    let mut broken = Vec::new();
    for path in &markdown {
        let text = prose(&std::fs::read_to_string(path).unwrap());
        let shown = path.strip_prefix(&root).unwrap().display();
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                broken.push(format!("{shown}: links outside the repository: {target}"));
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let resolved = if file.is_empty() {
                path.clone()
            } else {
                path.parent().unwrap().join(file)
            };
            if !resolved.exists() {
                broken.push(format!("{shown}: no such file: {target}"));
            } else if !anchor.is_empty()
                && resolved.extension().is_some_and(|e| e == "md")
                && !anchors(&resolved).iter().any(|a| a == anchor)
            {
                broken.push(format!("{shown}: no such heading: {target}"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_links_the_architecture_page() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    assert!(link_targets(&readme).contains(&"docs/architecture.md".to_owned()));
}
