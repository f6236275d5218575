//! The crate's layering (src/lib.rs): a module imports only from layers below its own, so
//! there is no import cycle and the domain library never reaches into the subcommands.
//! Read from the `crate::` paths in the code of every file under `src/` (comments skipped).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module and its layer; a module may use modules of lower layers only.
const LAYERS: [(&str, usize); 12] = [
    ("error", 0),
    ("util", 1),
    ("kernels", 1),
    ("data", 2),
    ("backbone", 2),
    ("device", 2),
    ("dist", 2),
    ("eval", 3),
    ("methods", 3),
    ("faces", 3),
    ("train", 4),
    ("app", 5),
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules named by `crate::` paths in `code`, including `crate::{a, b::c}`.
fn crate_imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the brace group, nested groups skipped.
            let (mut depth, mut item) = (0usize, String::new());
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(head(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(ch);
                }
            }
            found.insert(head(&item));
        } else {
            found.insert(head(rest));
        }
    }
    found.retain(|m| !m.is_empty() && m != "self");
    found
}

fn head(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn no_module_imports_a_module_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward = Vec::new();
    let mut unknown = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "main" || top == "lib" {
            continue;
        }
        let Some(own) = layer(&top) else {
            unknown.push(format!("{}: module `{top}` has no layer", rel.display()));
            continue;
        };
        let code: String = std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for m in crate_imports(&code) {
            if m == top || m == "Error" || m == "Result" {
                continue;
            }
            match layer(&m) {
                Some(l) if l < own => {}
                Some(l) => upward.push(format!(
                    "{}: `{top}` (layer {own}) uses `crate::{m}` (layer {l})",
                    rel.display()
                )),
                None => unknown.push(format!("{}: `crate::{m}` has no layer", rel.display())),
            }
        }
    }
    assert!(
        upward.is_empty() && unknown.is_empty(),
        "layering broken (see LAYERS in tests/it/layers.rs and the map in src/lib.rs):\n{}",
        [upward, unknown].concat().join("\n")
    );
}

#[test]
fn import_parser_reads_groups_and_paths() {
    let code = "use crate::{data::{Entry, Split}, error::Result};\nlet x = crate::util::hex(&b);";
    let got: Vec<String> = crate_imports(code).into_iter().collect();
    assert_eq!(got, ["data", "error", "util"]);
}
