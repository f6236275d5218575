//! What `vidapter data check` prints: a text summary of a [`CheckReport`] per split, and the
//! merge of several splits' reports into the one bad-entry list.
//!
//! Kept in the library so the binary only parses arguments and calls (and so the layout is
//! tested without running the binary).

use std::fmt::Write;

use super::Dataset;
use super::check::{CheckReport, Finding, Verdict};
use super::config::Split;

/// Every verdict, in report order, with the label printed for it.
const VERDICTS: [(Verdict, &str); 5] = [
    (Verdict::Annotation, "annotation"),
    (Verdict::Unreadable, "unreadable"),
    (Verdict::ZeroFrames, "zero frames"),
    (Verdict::Truncated, "truncated"),
    (Verdict::TooShort, "too short"),
];

/// The summary of one split: entries, clean entries, counts by verdict, the range of
/// decoded frame counts, the first `max_findings` findings, and a class histogram in
/// class-map order (classes without a readable clip show 0).
///
/// ```text
/// train: 6 entries, 3 clean
///   annotation      2
///   unreadable      1
///   ...
///   frames          12..30 per clip
///   class           clips
///   abseiling       2
/// ```
pub fn render(
    split: Split,
    dataset: &Dataset,
    report: &CheckReport,
    max_findings: usize,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{split}: {} entries, {} clean, {} listed",
        report.entries,
        report.clean,
        report.findings.len()
    );
    for (verdict, label) in VERDICTS {
        let _ = writeln!(out, "  {label:<14}{:>8}", report.count(verdict));
    }
    match report.frames_range {
        Some((lo, hi)) => {
            let _ = writeln!(out, "  {:<14}{lo}..{hi} per clip", "frames");
        }
        None => {
            let _ = writeln!(out, "  {:<14}none decoded", "frames");
        }
    }
    for f in report.findings.iter().take(max_findings) {
        let _ = writeln!(out, "  ! {}: {}", label_of(f.verdict), f.problem);
    }
    if report.findings.len() > max_findings {
        let _ = writeln!(
            out,
            "  ! ... {} more in the bad-entry list",
            report.findings.len() - max_findings
        );
    }
    let width = dataset
        .classes
        .names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let _ = writeln!(out, "  {:<width$}  {:>8}", "class", "clips");
    for name in &dataset.classes.names {
        let n = report.histogram.get(name).copied().unwrap_or(0);
        let _ = writeln!(out, "  {name:<width$}  {n:>8}");
    }
    out
}

fn label_of(verdict: Verdict) -> &'static str {
    VERDICTS
        .iter()
        .find(|(v, _)| *v == verdict)
        .map(|(_, l)| *l)
        .expect("every verdict has a label")
}

/// One report holding every finding of `reports` once (a line shared by two splits, as
/// HMDB51's split files are, is listed once); counts are summed and the histogram merged.
pub fn merge(reports: &[CheckReport]) -> CheckReport {
    let mut findings: Vec<Finding> = Vec::new();
    let mut merged = CheckReport {
        entries: 0,
        clean: 0,
        findings: Vec::new(),
        histogram: Default::default(),
        frames_range: None,
        seconds: 0.0,
    };
    for r in reports {
        merged.entries += r.entries;
        merged.seconds += r.seconds;
        merged.clean += r.clean;
        for f in &r.findings {
            if !findings
                .iter()
                .any(|g| g.verdict == f.verdict && g.problem == f.problem)
            {
                findings.push(f.clone());
            }
        }
        for (k, v) in &r.histogram {
            *merged.histogram.entry(k.clone()).or_insert(0) += v;
        }
        merged.frames_range = match (merged.frames_range, r.frames_range) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (x, y) => x.or(y),
        };
    }
    merged.findings = findings;
    merged
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::data::{ClassMap, Problem};

    fn finding(verdict: Verdict, line: usize) -> Finding {
        Finding {
            verdict,
            problem: Problem {
                path: "list.txt".into(),
                line: Some(line),
                reason: "bad".into(),
            },
        }
    }

    fn report(findings: Vec<Finding>, histogram: &[(&str, usize)]) -> CheckReport {
        CheckReport {
            entries: 4,
            clean: 2,
            findings,
            histogram: histogram
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<BTreeMap<_, _>>(),
            frames_range: Some((3, 30)),
            seconds: 1.0,
        }
    }

    #[test]
    fn render_lists_counts_findings_and_every_class() {
        let dataset = Dataset {
            entries: Vec::new(),
            classes: ClassMap::new(vec!["b".into(), "a".into(), "empty".into()]),
            problems: Vec::new(),
        };
        let r = report(
            vec![
                finding(Verdict::Truncated, 2),
                finding(Verdict::Annotation, 5),
            ],
            &[("a", 1), ("b", 2)],
        );
        let text = render(Split::Val, &dataset, &r, 1);
        assert!(
            text.starts_with("val: 4 entries, 2 clean, 2 listed\n"),
            "{text}"
        );
        assert!(text.contains("  truncated            1\n"), "{text}");
        assert!(text.contains("  frames        3..30 per clip\n"), "{text}");
        assert!(text.contains("  ! truncated: list.txt:2: bad\n"), "{text}");
        assert!(text.contains("1 more in the bad-entry list"), "{text}");
        // Class-map order, zero counts shown.
        let b = text.find("  b ").unwrap();
        let a = text.find("  a ").unwrap();
        assert!(b < a, "{text}");
        assert!(text.contains("  empty         0\n"), "{text}");
    }

    #[test]
    fn merge_lists_a_shared_finding_once() {
        let shared = finding(Verdict::Annotation, 7);
        let m = merge(&[
            report(
                vec![shared.clone(), finding(Verdict::TooShort, 1)],
                &[("a", 1)],
            ),
            report(vec![shared], &[("a", 2)]),
        ]);
        assert_eq!(m.findings.len(), 2);
        assert_eq!(m.entries, 8);
        assert_eq!(m.histogram["a"], 3);
    }
}
