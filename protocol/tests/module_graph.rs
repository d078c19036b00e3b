//! The modules of `protocol/src` import each other without a cycle: each can be read knowing
//! only the modules it uses (issue 19, "no import cycles in `protocol/`").
//!
//! The graph is read from the source text, in test builds too (`#[cfg(test)]` modules count):
//! a module depends on the module that defines an item it names in a `use` or in a path in its
//! code (`crate::…`, `super::…`, `self::…`, a child module's name, or a name a `use` bound to a
//! module); a re-export (`pub use`) is such a use too. A name used through a re-export is
//! followed to the module that defines it, and the crate root's re-exports are only its table of
//! contents, not uses (`crate::Event` is a use of `event`, and `lib.rs` uses nothing). An inline
//! `mod tests { … }` is part of its file. rustfmt's layout is assumed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type ModPath = Vec<String>;

/// One module file of the crate.
struct Module {
    text: String,
    /// `use` statements (the tree after `use`, one string each), with whether each is a
    /// re-export and whether it is inside an inline module of the file.
    uses: Vec<Use>,
    /// Code lines outside `use` statements, comments and string literals removed, with whether
    /// each is inside an inline module.
    code: Vec<(String, bool)>,
    /// Child modules declared with `mod name;`.
    children: BTreeSet<String>,
}

struct Use {
    tree: String,
    reexport: bool,
    inline: bool,
}

#[test]
fn protocol_modules_import_each_other_without_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    if let Some(cycle) = find_cycle(&graph) {
        let names: Vec<String> = cycle.iter().map(display).collect();
        panic!(
            "import cycle in protocol/src: {}\n(move what both sides use into a module of its own)",
            names.join(" -> ")
        );
    }
}

/// The checker itself finds a cycle, through a re-export, a child module's name and `super`.
#[test]
fn the_checker_finds_a_parent_child_cycle() {
    let dir = std::env::temp_dir().join(format!("module-graph-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::write(
        dir.join("lib.rs"),
        "pub mod a;\npub use a::Thing;\npub const LIMIT: usize = 1;\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("a.rs"),
        "mod b;\npub use b::helper;\n\npub struct Thing;\n\nfn run() {\n    b::helper();\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("a/b.rs"),
        "use super::Thing;\nuse crate::LIMIT;\n\npub fn helper() {}\n\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
    )
    .unwrap();
    let graph = module_graph(&dir);
    let cycle = find_cycle(&graph).map(|c| c.iter().map(display).collect::<Vec<_>>());
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        cycle,
        Some(vec![
            "crate::a".into(),
            "crate::a::b".into(),
            "crate::a".into()
        ])
    );
}

fn display(module: &ModPath) -> String {
    std::iter::once("crate")
        .chain(module.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("::")
}

/// Every module of the crate under `src` and the modules it depends on.
fn module_graph(src: &Path) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let mut modules = BTreeMap::new();
    for file in rust_files(src) {
        let path = module_path(src, &file);
        let text = std::fs::read_to_string(&file).expect("a source file is readable");
        modules.insert(path, read_module(&text));
    }
    let mut graph = BTreeMap::new();
    for (path, module) in &modules {
        let mut deps = BTreeSet::new();
        let aliases = aliases(&modules, path, module);
        // The root's re-exports are the crate's table of contents.
        for u in module
            .uses
            .iter()
            .filter(|u| !(u.reexport && path.is_empty()))
        {
            for names in expand_use(&u.tree) {
                if let Some(dep) = resolve(&modules, path, u.inline, &names, &BTreeMap::new()) {
                    deps.insert(dep);
                }
            }
        }
        for (line, inline) in &module.code {
            for names in code_paths(line) {
                if let Some(dep) = resolve(&modules, path, *inline, &names, &aliases) {
                    deps.insert(dep);
                }
            }
        }
        deps.remove(path);
        graph.insert(path.clone(), deps);
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("protocol/src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `src/lib.rs` is the root.
fn module_path(src: &Path, file: &Path) -> ModPath {
    let rel = file
        .strip_prefix(src)
        .expect("a file under src")
        .with_extension("");
    let mut parts: ModPath = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

fn read_module(text: &str) -> Module {
    let mut uses = Vec::new();
    let mut code = Vec::new();
    let mut children = BTreeSet::new();
    // Indentation of each open inline module (`mod tests {`), closed by `}` at that indentation.
    let mut inline: Vec<usize> = Vec::new();
    let mut pending: Option<Use> = None;
    for raw in text.lines() {
        let line = strip(raw);
        let trimmed = line.trim();
        let indent = raw.len() - raw.trim_start().len();
        if let Some(mut u) = pending.take() {
            u.tree.push_str(trimmed);
            if trimmed.ends_with(';') {
                uses.push(u);
            } else {
                pending = Some(u);
            }
            continue;
        }
        if inline.last() == Some(&indent) && trimmed == "}" {
            inline.pop();
            continue;
        }
        let item = strip_visibility(trimmed);
        if let Some(rest) = item.strip_prefix("use ") {
            let u = Use {
                tree: rest.to_owned(),
                reexport: item.len() != trimmed.len(),
                inline: !inline.is_empty(),
            };
            if trimmed.ends_with(';') {
                uses.push(u);
            } else {
                pending = Some(u);
            }
            continue;
        }
        if let Some(rest) = item.strip_prefix("mod ") {
            if let Some(name) = rest.strip_suffix(';') {
                children.insert(name.trim().to_owned());
                continue;
            }
            if rest.ends_with('{') {
                inline.push(indent);
                continue;
            }
        }
        code.push((line, !inline.is_empty()));
    }
    Module {
        text: text.to_owned(),
        uses,
        code,
        children,
    }
}

/// `pub`, `pub(crate)`, `pub(super)`, `pub(in …)` taken off the front.
fn strip_visibility(item: &str) -> &str {
    let Some(rest) = item.strip_prefix("pub") else {
        return item;
    };
    if let Some(rest) = rest.strip_prefix(' ') {
        return rest;
    }
    match rest
        .strip_prefix('(')
        .and_then(|r| r.find(')').map(|i| &r[i + 1..]))
    {
        Some(rest) => rest.trim_start(),
        None => item,
    }
}

/// The line without its `//` comment and with its string and char literals emptied.
fn strip(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        if in_str {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    in_str = false;
                    out.push('"');
                }
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push('"');
            }
            // A char literal (`'"'`, `'\''`), not a lifetime.
            '\'' => {
                let ahead: Vec<char> = chars.clone().take(3).collect();
                let skip = match ahead.as_slice() {
                    ['\\', _, '\''] => 3,
                    [_, '\'', ..] => 2,
                    _ => 0,
                };
                for _ in 0..skip {
                    chars.next();
                }
            }
            '/' if chars.peek() == Some(&'/') => break,
            _ => out.push(c),
        }
    }
    out
}

/// The paths a `use` tree names: `a::{b, c::{d as e}}` is `a::b` and `a::c::d`.
fn expand_use(tree: &str) -> Vec<ModPath> {
    // `x as y` is written `x@y`, then the spaces go.
    let tree: String = tree
        .replace(" as ", "@")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let tree = tree.trim_end_matches(';');
    let mut out = Vec::new();
    expand(tree, &mut Vec::new(), &mut out);
    out
}

fn expand(tree: &str, prefix: &mut ModPath, out: &mut Vec<ModPath>) {
    match tree.find('{') {
        None => {
            let path = tree.split('@').next().unwrap_or(tree);
            let mut names = prefix.clone();
            names.extend(
                path.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            out.push(names);
        }
        Some(open) => {
            let head = &tree[..open];
            let inner = &tree[open + 1..tree.len() - 1];
            let depth = prefix.len();
            prefix.extend(
                head.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            for part in split_top(inner) {
                if part == "self" {
                    out.push(prefix.clone());
                } else if !part.is_empty() {
                    expand(part, prefix, out);
                }
            }
            prefix.truncate(depth);
        }
    }
}

/// `a, b::{c, d}, e` split at its top-level commas.
fn split_top(list: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in list.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&list[start..]);
    parts
}

/// Every `a::b::c` path in a line of code (identifiers joined by `::`).
fn code_paths(line: &str) -> Vec<ModPath> {
    let mut out = Vec::new();
    let mut current: ModPath = Vec::new();
    let mut ident = String::new();
    let mut rest = line;
    loop {
        let c = rest.chars().next();
        match c {
            Some(c) if c.is_alphanumeric() || c == '_' => {
                ident.push(c);
                rest = &rest[c.len_utf8()..];
            }
            _ if rest.starts_with("::") && !ident.is_empty() => {
                current.push(std::mem::take(&mut ident));
                rest = &rest[2..];
            }
            _ => {
                if !ident.is_empty() {
                    current.push(std::mem::take(&mut ident));
                }
                if current.len() > 1 {
                    out.push(std::mem::take(&mut current));
                }
                current.clear();
                match c {
                    Some(c) => rest = &rest[c.len_utf8()..],
                    None => break,
                }
            }
        }
    }
    out
}

/// The names this module's `use`s bind to modules (`use crate::dialects::raw;`).
fn aliases(
    modules: &BTreeMap<ModPath, Module>,
    path: &ModPath,
    module: &Module,
) -> BTreeMap<String, ModPath> {
    let mut out = BTreeMap::new();
    for u in &module.uses {
        for names in expand_use(&u.tree) {
            let Some(target) = module_of(modules, path, u.inline, &names) else {
                continue;
            };
            if let Some(last) = names.last() {
                out.insert(last.clone(), target);
            }
        }
    }
    out
}

/// The module `names` is, when it is one (not an item).
fn module_of(
    modules: &BTreeMap<ModPath, Module>,
    from: &ModPath,
    inline: bool,
    names: &[String],
) -> Option<ModPath> {
    let (mut at, rest) = start(modules, from, inline, names, &BTreeMap::new())?;
    for name in rest {
        at.push(name.clone());
        if !modules.contains_key(&at) {
            return None;
        }
    }
    Some(at)
}

/// Where a path starts: the module its first segment names, and the segments after it.
fn start<'a>(
    modules: &BTreeMap<ModPath, Module>,
    from: &ModPath,
    inline: bool,
    names: &'a [String],
    aliases: &BTreeMap<String, ModPath>,
) -> Option<(ModPath, &'a [String])> {
    let (first, rest) = names.split_first()?;
    let mut at = match first.as_str() {
        "crate" => Vec::new(),
        // In an inline module, `super` is the file's module.
        "super" if inline => from.clone(),
        "super" => from[..from.len().checked_sub(1)?].to_vec(),
        "self" => from.clone(),
        name if modules[from].children.contains(name) => {
            let mut child = from.clone();
            child.push(name.to_owned());
            child
        }
        name => aliases.get(name)?.clone(),
    };
    // `super::super::x`
    let mut rest = rest;
    while let Some((next, after)) = rest.split_first() {
        if next != "super" {
            break;
        }
        at.pop()?;
        rest = after;
    }
    Some((at, rest))
}

/// The module that defines the item `names` leads to, from module `from`.
fn resolve(
    modules: &BTreeMap<ModPath, Module>,
    from: &ModPath,
    inline: bool,
    names: &[String],
    aliases: &BTreeMap<String, ModPath>,
) -> Option<ModPath> {
    let (mut at, rest) = start(modules, from, inline, names, aliases)?;
    for name in rest {
        let mut child = at.clone();
        child.push(name.clone());
        if !modules.contains_key(&child) {
            // An item (or a glob, or a path through an item, `Type::method`).
            return Some(follow(modules, at, name, 0));
        }
        at = child;
    }
    Some(at)
}

/// The module that defines `name`, found from module `at` through its re-exports.
fn follow(modules: &BTreeMap<ModPath, Module>, at: ModPath, name: &str, depth: usize) -> ModPath {
    let Some(module) = modules.get(&at) else {
        return at;
    };
    if depth > 8 || name == "*" || defines(&module.text, name) {
        return at;
    }
    for u in module.uses.iter().filter(|u| u.reexport) {
        for names in expand_use(&u.tree) {
            let last = names.last().map(String::as_str);
            let target = if last == Some(name) {
                resolve(modules, &at, u.inline, &names, &BTreeMap::new())
            } else if last == Some("*") {
                module_of(modules, &at, u.inline, &names[..names.len() - 1])
                    .filter(|m| modules.get(m).is_some_and(|m| defines(&m.text, name)))
            } else {
                None
            };
            if let Some(target) = target {
                return follow(modules, target, name, depth + 1);
            }
        }
    }
    at
}

/// Whether `text` defines an item called `name`.
fn defines(text: &str, name: &str) -> bool {
    [
        "fn", "struct", "enum", "const", "static", "type", "trait", "union",
    ]
    .iter()
    .any(|kind| {
        text.match_indices(&format!("{kind} {name}")).any(|(i, m)| {
            let after = text[i + m.len()..].chars().next();
            !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
    }) || text.contains(&format!("macro_rules! {name}"))
}

/// A cycle of the graph, first module repeated at the end, if there is one.
fn find_cycle(graph: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Option<Vec<ModPath>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        graph: &BTreeMap<ModPath, BTreeSet<ModPath>>,
        node: &ModPath,
        marks: &mut BTreeMap<ModPath, Mark>,
        stack: &mut Vec<ModPath>,
    ) -> Option<Vec<ModPath>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let at = stack.iter().position(|m| m == node)?;
                let mut cycle = stack[at..].to_vec();
                cycle.push(node.clone());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.clone(), Mark::Open);
        stack.push(node.clone());
        for dep in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(graph, dep, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(node.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(graph, node, &mut marks, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}
