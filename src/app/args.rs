//! Command-line values the subcommands share, read into what the library takes: `--method`
//! (a method name or a TOML file with a `[method]` table), a run config with its `--set
//! KEY=VALUE` overrides and shortcut flags, and the Python interpreter of the benchmarks.

use std::path::Path;

use crate::error::{Error, Result};
use crate::methods::MethodConfig;
use crate::train::config::RunConfig;

/// `--method`: a method name with its defaults, or a TOML file (a run config works) whose
/// `[method]` table is used.
///
/// # Errors
/// A file that cannot be read, is not TOML or has no valid `[method]` table; a name that is
/// no method. Each names the argument.
pub fn method(arg: &str) -> Result<MethodConfig> {
    let path = Path::new(arg);
    if path.is_file() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Input(format!("reading {arg}: {e}")))?;
        let doc: toml::Value = toml::from_str(&text)
            .map_err(|e| Error::Input(format!("{arg}: not valid TOML: {e}")))?;
        let table = doc
            .get("method")
            .cloned()
            .ok_or_else(|| Error::Input(format!("{arg}: there is no [method] table")))?;
        return table
            .try_into()
            .map_err(|e| Error::Input(format!("{arg}: [method]: {e}")));
    }
    toml::from_str(&format!("kind = {arg:?}")).map_err(|e| {
        Error::Input(format!(
            "--method `{arg}` is neither a file nor a method name: {e}"
        ))
    })
}

/// The run-config overrides of a command line: each `--set KEY=VALUE` (trimmed), then each
/// shortcut flag given, as `(dotted key, TOML value)` in that order.
///
/// # Errors
/// A `--set` without `=`.
pub fn overrides(
    set: &[String],
    shortcuts: Vec<(&str, Option<String>)>,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for s in set {
        let (k, v) = s.split_once('=').ok_or_else(|| {
            Error::Input(format!(
                "--set `{s}`: expected KEY=VALUE, e.g. train.lr=3e-4"
            ))
        })?;
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    out.extend(
        shortcuts
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?))),
    );
    Ok(out)
}

/// The run config at `path` with the command line's overrides ([`overrides`]) applied and
/// every field checked ([`RunConfig::from_file`]).
///
/// # Errors
/// Those of [`overrides`] and [`RunConfig::from_file`].
pub fn run_config(
    path: &Path,
    set: &[String],
    shortcuts: Vec<(&str, Option<String>)>,
) -> Result<RunConfig> {
    RunConfig::from_file(path, &overrides(set, shortcuts)?)
}

/// The Python of the benchmarks' PyTorch side: `--python`, else `$VIDAPTER_PYTHON`, else
/// `python3`.
pub fn python(arg: Option<String>) -> String {
    arg.or_else(|| std::env::var("VIDAPTER_PYTHON").ok())
        .unwrap_or_else(|| "python3".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_come_in_order_and_need_an_equals_sign() {
        let set = vec![" train.lr = 3e-4".to_string(), "out=x".to_string()];
        let got = overrides(
            &set,
            vec![
                ("train.epochs", Some("5".into())),
                ("train.batch_size", None),
            ],
        )
        .unwrap();
        assert_eq!(
            got,
            [
                ("train.lr".to_string(), "3e-4".to_string()),
                ("out".into(), "x".into()),
                ("train.epochs".into(), "5".into()),
            ]
        );
        let err = overrides(&["nokey".into()], Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--set `nokey`: expected KEY=VALUE, e.g. train.lr=3e-4"
        );
    }

    #[test]
    fn a_method_is_a_name_or_a_file_with_a_method_table() {
        assert_eq!(method("fe_adapter").unwrap().name(), "fe_adapter");
        let err = method("bogus").unwrap_err().to_string();
        assert!(
            err.starts_with("--method `bogus` is neither a file nor a method name: "),
            "{err}"
        );
        let dir = crate::util::tempdir().unwrap();
        let file = dir.path().join("m.toml");
        std::fs::write(&file, "[method]\nkind = \"linear_probe\"\n").unwrap();
        let arg = file.to_str().unwrap();
        assert_eq!(method(arg).unwrap().name(), "linear_probe");
        std::fs::write(&file, "x = 1\n").unwrap();
        assert_eq!(
            method(arg).unwrap_err().to_string(),
            format!("{arg}: there is no [method] table")
        );
    }
}
