//! HMDB51 (Kuehne et al., ICCV 2011): 6,766 clips of 51 actions, 3 official splits of 70
//! train / 30 test clips per class.
//!
//! `testTrainMulti_7030_splits/` holds one file per class and split,
//! `<class>_test_split<N>.txt`, naming every clip of the class with 1 (train), 2 (test) or
//! 0 (unused in this split):
//! ```text
//! April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1
//! Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi 2
//! ```
//! The clip is `root/<class>/<name>.avi`, or with `media = "frames"` the folder
//! `root/<class>/<name>/`. Classes are the sorted class names of the split's files.

use std::path::{Path, PathBuf};

use super::{
    ClassSource, Files, FormatInfo, Label, Listing, RawEntry, content_lines, find_annotations,
    locate_exact, problem, read_text,
};
use crate::data::config::{DatasetConfig, Media, Split};
use crate::error::{Error, Result};

/// HMDB51: classes from the split files' names, 3 splits.
pub(crate) const FORMAT: FormatInfo = FormatInfo {
    name: "hmdb51",
    folds: Some(3),
    media: Media::Videos,
    media_only: None,
    frame_template: None,
    flip_refused: None,
    classes: ClassSource::Read(classes),
    files: Files::Official {
        hint: "the `testTrainMulti_7030_splits` folder (holding `<class>_test_splitN.txt`)",
        fixed_splits: Some(
            "hmdb51 splits are the 51 per-class files of `annotations`; \
             a single list file cannot replace them",
        ),
    },
    read,
};

/// The split files of the configured fold: `(class, file)`, sorted by class.
fn split_files(cfg: &DatasetConfig) -> Result<Vec<(String, PathBuf)>> {
    let fold = cfg.fold.expect("validated: hmdb51 has a fold");
    let suffix = format!("_test_split{fold}.txt");
    let list = |d: &Path| -> Vec<(String, PathBuf)> {
        let Ok(rd) = std::fs::read_dir(d) else {
            return Vec::new();
        };
        let mut files: Vec<(String, PathBuf)> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let class = name.strip_suffix(&suffix)?.to_string();
                Some((class, e.path()))
            })
            .collect();
        files.sort();
        files
    };
    let dir = find_annotations(
        cfg,
        &["", "testTrainMulti_7030_splits"],
        |d| !list(d).is_empty(),
        &format!("`<class>{suffix}` files"),
    )?;
    Ok(list(&dir))
}

/// Sorted class names.
fn classes(cfg: &DatasetConfig) -> Result<Vec<String>> {
    Ok(split_files(cfg)?.into_iter().map(|(c, _)| c).collect())
}

/// Reads the clips marked 1 ([`Split::Train`]) or 2 ([`Split::Test`]) in every class file.
fn read(cfg: &DatasetConfig, split: Split) -> Result<Listing> {
    let wanted = match split {
        Split::Train => "1",
        Split::Test => "2",
        Split::Val => {
            return Err(Error::Input(
                "hmdb51 has no validation list: the validation split is held out of train".into(),
            ));
        }
    };
    let mut listing = Listing::default();
    for (class, file) in split_files(cfg)? {
        let text = read_text(&file)?;
        for (n, line) in content_lines(&text) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [clip, mark] = fields.as_slice() else {
                listing.problems.push(problem(
                    &file,
                    n,
                    format!(
                        "expected `name.avi 0|1|2`, found {} field(s): `{line}`",
                        fields.len()
                    ),
                ));
                continue;
            };
            if !matches!(*mark, "0" | "1" | "2") {
                listing.problems.push(problem(
                    &file,
                    n,
                    format!(
                        "`{mark}` is not a split mark: expected 1 (train), 2 (test) or 0 (unused)"
                    ),
                ));
                continue;
            }
            if *mark != wanted {
                continue;
            }
            let (source, missing) = locate_exact(cfg, cfg.root.join(&class).join(clip));
            listing.entries.push(RawEntry {
                source,
                labels: vec![Label::Name(class.clone())],
                origin: (file.clone(), n),
                missing,
            });
        }
    }
    Ok(listing)
}
