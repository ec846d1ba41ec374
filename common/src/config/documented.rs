//! Every configuration key is documented where people look for it: in `config.yaml`, with
//! its default, and in the README's configuration table. The keys are read from the
//! configuration's own definition (its defaults, serialised), so a key added to the code and
//! not to the documents fails here.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::Config;

/// The dotted paths of every key of `value`: the leaves, and maps that are empty by default
/// (such as `thumbnail.presets`), which are keys whose values are maps.
fn key_paths(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(members) if !members.is_empty() => {
            for (name, member) in members {
                let path = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                key_paths(member, &path, out);
            }
        }
        _ => {
            out.insert(prefix.to_owned());
        }
    }
}

/// The keys of the default configuration.
fn keys() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    key_paths(
        &serde_json::to_value(Config::default()).unwrap(),
        "",
        &mut keys,
    );
    keys
}

fn read(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)).unwrap()
}

#[test]
fn every_key_is_in_the_readme_table() {
    let readme = read("README.md");
    let start = readme
        .find("## Configuration")
        .expect("a configuration section");
    // The first cell of each row of the table: the keys it documents, in backticks, each
    // written in full.
    let documented: BTreeSet<String> = readme[start..]
        .lines()
        .take_while(|line| !line.starts_with("## ") || line.starts_with("## Configuration"))
        .filter(|line| line.starts_with("| `"))
        .flat_map(|line| {
            let cell = line.split('|').nth(1).unwrap_or_default();
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let keys = keys();
    let missing: Vec<&String> = keys
        .iter()
        .filter(|key| !documented.contains(*key))
        .collect();
    assert!(missing.is_empty(), "not in the README's table: {missing:?}");
    let unknown: Vec<&String> = documented.difference(&keys).collect();
    assert!(
        unknown.is_empty(),
        "in the README's table, not a key: {unknown:?}"
    );
}

#[test]
fn every_key_is_in_config_yaml() {
    let file: Value = serde_norway::from_str(&read("config.yaml")).unwrap();
    let mut written = BTreeSet::new();
    key_paths(&file, "", &mut written);
    // A key whose default is a map may be written with entries (an example preset).
    let covered = |key: &String| {
        written.contains(key)
            || written
                .iter()
                .any(|path| path.starts_with(&format!("{key}.")))
    };
    let keys = keys();
    let missing: Vec<&String> = keys.iter().filter(|key| !covered(key)).collect();
    assert!(missing.is_empty(), "not in config.yaml: {missing:?}");
}
